"""Stand-in for transformers' `tests/generation/test_utils.py` (not in the sdist).

`ModelTesterMixin` only asks whether a tester class inherits `GenerationTesterMixin` (it must exactly when the model
can `generate`). A grounding model cannot generate, so the class only has to exist; transformers' real mixin holds
the generation tests, which do not apply here.
"""


class GenerationTesterMixin:
    """Marker class: testers of generative models inherit it (tsgv's does not)."""
