"""tsgv: end-to-end temporal sentence grounding in videos, as Hugging Face models.

`import modeling_tsgv` is enough, as for any plug-in package: it registers tsgv with transformers (`"tsgv"` with
`AutoConfig`, `AutoModel` and `AutoProcessor`, the task `"temporal-sentence-grounding"` with `transformers.pipeline`),
so `pipeline("temporal-sentence-grounding", model=folder)` uses the installed code with no `trust_remote_code`.
Public names (`TSGVForGrounding`, `TSGVProcessor`, ...) load their submodule on first use (PEP 562, as transformers'
`_LazyModule`). The one exception is tsgv's own console scripts (`tsgv-ground`, `tsgv-demo`): they register after
parsing their arguments, so `--help` and argument errors answer at once, before torch loads. `register()` is
idempotent.
"""

import importlib
import os
import sys

__version__ = "0.1.0"

_EXPORTS = {  # public name -> submodule
    "TSGVConfig": "configuration_tsgv",
    "TSGVForGrounding": "modeling_tsgv",
    "TSGVGroundingOutput": "outputs_tsgv",
    "TSGVEncodedVideos": "outputs_tsgv",
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


# console scripts that register themselves once their arguments are parsed (see the module docstring)
CONSOLE_SCRIPTS = ("tsgv-ground", "tsgv-demo")


def _started_as_console_script() -> bool:
    """Whether this process is one of `CONSOLE_SCRIPTS` (the program name pip's launcher gives `sys.argv[0]`)."""
    program = (getattr(sys, "argv", None) or [""])[0]
    return os.path.splitext(os.path.basename(program))[0] in CONSOLE_SCRIPTS


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


if not _started_as_console_script():
    register()
