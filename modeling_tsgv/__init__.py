"""tsgv: end-to-end temporal sentence grounding in videos, as Hugging Face models.

Importing this package registers `"tsgv"` with `AutoConfig`, `AutoModel` and `AutoProcessor`, and the task
`"temporal-sentence-grounding"` with `transformers.pipeline` (`register()`; idempotent).

The shell commands (`tsgv-ground`) are the exception: they answer `--help` and argument errors before torch and
transformers are imported (those imports take seconds), and register when they load a model. Their names are known
here because a console script can only import the package, it cannot tell it why.
"""

import importlib
import os
import sys

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
_SHELL_COMMANDS = ("tsgv-ground", "tsgv-demo")

__all__ = [*_EXPORTS, "register"]


def register() -> None:
    """Register tsgv with `AutoConfig` / `AutoModel` / `AutoProcessor` and the pipeline task (safe to repeat)."""
    from transformers import AutoConfig, AutoModel, AutoProcessor

    from .configuration_tsgv import TSGVConfig
    from .modeling_tsgv import TSGVForGrounding
    from .pipeline_tsgv import register_pipeline
    from .processing_tsgv import TSGVProcessor

    AutoConfig.register("tsgv", TSGVConfig, exist_ok=True)
    AutoModel.register(TSGVConfig, TSGVForGrounding, exist_ok=True)
    AutoProcessor.register(TSGVConfig, TSGVProcessor, exist_ok=True)
    register_pipeline()


def __getattr__(name: str):
    """The public classes on first use (only reached when the package was imported by a shell command)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    register()
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


_program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
if _program not in _SHELL_COMMANDS:
    register()
    for _name in _EXPORTS:
        globals()[_name] = getattr(importlib.import_module(f".{_EXPORTS[_name]}", __name__), _name)
    del _name
