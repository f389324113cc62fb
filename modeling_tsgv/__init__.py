"""tsgv: end-to-end temporal sentence grounding in videos, as Hugging Face models.

Importing this package registers `"tsgv"` with `AutoConfig`, `AutoModel` and `AutoProcessor`, and the task
`"temporal-sentence-grounding"` with `transformers.pipeline`.
"""

from transformers import AutoConfig, AutoModel, AutoProcessor

from .configuration_tsgv import TSGVConfig
from .metrics import grounding_metrics, temporal_iou
from .modeling_tsgv import TSGVForGrounding, TSGVGroundingOutput, TSGVPreTrainedModel
from .pipeline_tsgv import TemporalSentenceGroundingPipeline, register_pipeline
from .processing_tsgv import TSGVProcessor, default_text_encoder_path

AutoConfig.register("tsgv", TSGVConfig, exist_ok=True)
AutoModel.register(TSGVConfig, TSGVForGrounding, exist_ok=True)
AutoProcessor.register(TSGVConfig, TSGVProcessor, exist_ok=True)
register_pipeline()

__version__ = "0.1.0"

__all__ = [
    "TSGVConfig",
    "TSGVForGrounding",
    "TSGVGroundingOutput",
    "TSGVPreTrainedModel",
    "TSGVProcessor",
    "TemporalSentenceGroundingPipeline",
    "default_text_encoder_path",
    "grounding_metrics",
    "temporal_iou",
]
