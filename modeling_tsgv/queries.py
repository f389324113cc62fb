"""What counts as a query, in one place for every entry point (processor, pipeline, shell command).

Kept free of torch and transformers so the shell commands can check their arguments before those load.
"""


def empty_queries(sentences) -> list[int]:
    """Positions (0-based indices; messages show them + 1, as queries are numbered from 1 for people) of the
    sentences that are not strings or hold no words: every query needs words."""
    return [i for i, sentence in enumerate(sentences) if not isinstance(sentence, str) or not sentence.strip()]


__all__ = ["empty_queries"]
