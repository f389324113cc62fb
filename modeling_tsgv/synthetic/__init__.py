"""The built-in synthetic world (`world.py`: coloured shapes that move, grow, change colour... and the sentences that
describe them, rendered to real mp4 files) and the stage 1 that pretrains the backbones shipped for it
(`pretraining.py`, with `--objective recognition` in `stage1_recognition.py`).

A subpackage of its own, imported only when the synthetic dataset or stage 1 is used (a run on real data never
imports it). `python -m modeling_tsgv.synthetic OUT` writes a world; `python -m modeling_tsgv.synthetic.pretraining`
runs stage 1.
"""

from .world import *  # noqa: F403 (the world's names, as `modeling_tsgv.synthetic.<name>`)
from .world import __all__  # noqa: F401
