"""Stand-in for transformers' `utils/fetch_hub_objects_for_ci.py` (not in the sdist).

transformers' CI downloads the Hub files (sample images, videos, audio) that `test_processing_common.py` names by URL
and maps each URL to its local copy. Our tests download nothing, so a URL stays a URL: the only tests that read
these files are the chat-template tests, which apply to processors with a chat template (tsgv's has none).
"""


def url_to_local_path(url: str, return_url_if_not_found: bool = True) -> str:
    """`url` unchanged (no local copies are made here); the signature is transformers'."""
    return url
