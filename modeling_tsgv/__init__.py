"""tsgv: end-to-end temporal sentence grounding in videos, as Hugging Face models.

A lazy module (PEP 562, as transformers' `_LazyModule`): importing the package loads nothing heavy, so the shell
commands answer `--help` at once. A public name (`TSGVForGrounding`, `TSGVProcessor`, ...) loads its submodule on
first use and registers tsgv with transformers: `"tsgv"` with `AutoConfig`, `AutoModel` and `AutoProcessor`, and the
task `"temporal-sentence-grounding"` with `transformers.pipeline`. `register()` does the same explicitly (for code
that only calls `transformers.pipeline(...)`); it is idempotent.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {  # public name -> submodule
    "TSGVConfig": "configuration_tsgv",
    "TSGVForGrounding": "modeling_tsgv",
    "TSGVGroundingOutput": "modeling_tsgv",
    "TSGVPreTrainedModel": "modeling_tsgv",
    "TSGVProcessor": "processing_tsgv",
    "TemporalSentenceGroundingPipeline": "pipeline_tsgv",
    "default_text_encoder_path": "processing_tsgv",
    "grounding_metrics": "metrics",
    "temporal_iou": "metrics",
}

__all__ = [*_EXPORTS, "register"]

_registered = False


def register() -> None:
    """Register tsgv with `AutoConfig` / `AutoModel` / `AutoProcessor` and the pipeline task (safe to repeat)."""
    global _registered
    if _registered:
        return
    from transformers import AutoConfig, AutoModel, AutoProcessor

    from .configuration_tsgv import TSGVConfig
    from .modeling_tsgv import TSGVForGrounding
    from .pipeline_tsgv import register_pipeline
    from .processing_tsgv import TSGVProcessor

    AutoConfig.register("tsgv", TSGVConfig, exist_ok=True)
    AutoModel.register(TSGVConfig, TSGVForGrounding, exist_ok=True)
    AutoProcessor.register(TSGVConfig, TSGVProcessor, exist_ok=True)
    register_pipeline()
    _registered = True


def __getattr__(name: str):
    """A public name on first use: its submodule loaded and tsgv registered with transformers."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    register()
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted([*globals(), *_EXPORTS])
