"""What a transformers `PreTrainedModel` needs of tsgv beyond the method, mixed into `TSGVPreTrainedModel`: building
from separately pretrained parts, saving a folder that loads without tsgv installed, loading safetensors only,
gradient checkpointing of the block loop, and the initialisation flags that keep handed-in weights untouched."""

import os
import shutil

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers import AutoModel, PreTrainedModel
from transformers.utils import logging

from .configuration_tsgv import CUSTOM_PIPELINES, TSGVConfig, check_model_folder
from .input_checks import checks_values
from .loss_tsgv import grounding_loss
from .spans import decode_spans
from .video_backbones import video_backbone

logger = logging.get_logger(__name__)


def call_directly(function, *args, **kwargs):
    """A checkpoint function that checkpoints nothing: `function(*args, **kwargs)` (see `_set_gradient_checkpointing`)."""
    return function(*args, **kwargs)


def block_needs_checkpoint(backbone: nn.Module, layer: nn.Module, modules: list, inputs: list) -> bool:
    """Whether `TSGVVideoBackbone._run_block` checkpoints one call: checkpointing is on (`backbone`'s flag, set by
    transformers), in training with gradients enabled, for this VideoMAE `layer` (its own flag: every n-th block), and
    something in the call needs a gradient (one of `inputs`, tensors or None, or a parameter of `modules`, modules or
    None). The call is then always non-reentrant: a reentrant checkpoint runs its first pass with gradients off, so
    a block that trains above frozen inputs (the first adapter, a partial block) would get no gradient, and the
    VideoMAE block inside would not see that it is being checkpointed (see `_set_gradient_checkpointing`)."""
    if not (backbone.gradient_checkpointing and backbone.training and torch.is_grad_enabled()):
        return False
    if not layer.gradient_checkpointing:
        return False
    if any(x is not None and x.requires_grad for x in inputs):
        return True
    return any(p.requires_grad for m in modules if m is not None for p in m.parameters())


def mark_initialized(*parts) -> None:
    """Flag every module of the given models (None skipped) as initialised: a model handed in was initialised (or
    loaded) by its own constructor, and our `post_init` must not touch it. Under ZeRO-3 with several ranks,
    `_from_config` leaves part of its modules unflagged on ranks > 0, and re-initialising their partitioned (empty)
    weights fails, e.g. BERT's `weight[padding_idx]`."""
    for part in parts:
        for module in part.modules() if part is not None else ():
            module._is_hf_initialized = True


def without_hub_kernels(model: nn.Module) -> None:
    """Switch transformers' Hub kernels off on `model` and every transformers model inside it. transformers >= 5.25
    turns them on in `from_pretrained` and fetches them from the Hub (code and binaries, e.g.
    `kernels-community/activation` for GELU) when a model on a GPU is put in train or eval mode: offline that raises,
    online it runs code tsgv did not ship and changes its numbers. tsgv runs the torch layers; whoever wants the
    kernels calls `model.set_use_kernels(True)` after building or loading."""
    for module in model.modules():
        if isinstance(module, PreTrainedModel) and getattr(module, "use_kernels", False):
            module.use_kernels = False  # transformers' setter: back to the torch implementation


class TSGVPreTrainedMixin:
    """transformers' hooks and overrides for `TSGVPreTrainedModel` (which comes first in its bases, so `super()` here is
    `PreTrainedModel`), and the model's thin methods over the loss and the decoding; the model file keeps the
    method."""

    @classmethod
    def is_custom_code(cls) -> bool:
        # transformers skips `_init_weights` on parameter-less modules of "custom code", assuming such code writes
        # tensors in place and would clobber loaded weights. Ours goes through `transformers.initialization` (which
        # honours loaded weights), and needs the module-level inits of `TSGVPreTrainedModel._init_weights` (adapter `up`, score prior) to run.
        return False

    def _set_gradient_checkpointing(
        self, enable: bool = True, gradient_checkpointing_func=checkpoint, every_n_layers=1
    ):
        """transformers' flags on every module that has one (VideoMAE's blocks: every `every_n_layers`-th), as every
        model keeps them; our block loop then checkpoints each flagged block together with its adapter in one call
        (one saved input per block, not two), so a VideoMAE block's own checkpoint function becomes a direct call
        (it stays a `GradientCheckpointingLayer` called through `__call__`, so FSDP / ZeRO-3 module hooks still run).
        The block loop's checkpoint is always non-reentrant (`block_needs_checkpoint` says why); the text
        encoder's layers checkpoint themselves, with the `use_reentrant` asked for."""
        super()._set_gradient_checkpointing(enable, gradient_checkpointing_func, every_n_layers)
        if enable and hasattr(self, "backbone"):
            for layer in self.backbone.video_model.encoder.layer:
                layer._gradient_checkpointing_func = call_directly

    @property
    def video_model(self) -> PreTrainedModel:
        """The VideoMAE backbone."""
        return self.backbone.video_model

    @property
    def adapters(self) -> nn.ModuleDict:
        """SCADA adapters keyed by block index (empty unless backbone_tuning="scada")."""
        return self.backbone.adapters

    @property
    def spatial_pool(self) -> nn.Module | None:
        """The sentence-weighted spatial pooling (None for mean pooling)."""
        return self.backbone.spatial_pool

    def get_input_embeddings(self) -> nn.Module:
        """The text encoder's token embeddings: the vocabulary `resize_token_embeddings` resizes (the video side has
        patch embeddings, returned by `video_model.get_input_embeddings()`)."""
        return self.text_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        """Replace the text encoder's token embeddings."""
        self.text_model.set_input_embeddings(value)

    def trainable_parameters_report(self) -> str:
        """One line in peft's format: `trainable params: N || all params: M || trainable%: P`."""
        sizes = [(getattr(p, "ds_numel", p.numel()), p.requires_grad) for p in self.parameters()]  # ZeRO-3: full size
        trainable = sum(n for n, needs_grad in sizes if needs_grad)
        total = sum(n for n, _ in sizes)
        return (
            f"trainable params: {trainable:,d} || all params: {total:,d} || trainable%: {100 * trainable / total:.4f}"
        )

    def train(self, mode: bool = True):
        """`nn.Module.train`, except that a frozen text encoder stays in eval mode: no dropout noise on features that do
        not train, so a sentence always gets the same states (which `text_states.SentenceStates` relies on)."""
        super().train(mode)
        if not self.config.train_text_encoder:
            self.text_model.eval()
        return self

    def compute_loss(
        self,
        step_logits: torch.Tensor,
        step_offsets: torch.Tensor,
        labels: torch.Tensor,
        num_items_in_batch: torch.Tensor | int | None = None,
        **extra,
    ):
        """`grounding_loss` with this model's weights: (loss, {"focal", "diou", "l1"(, "saliency", "relevance")});
        `extra`: its saliency / relevance logits and labels."""
        labels = labels.to(step_logits.device)
        checks = self._checks_values(labels)
        return grounding_loss(step_logits, step_offsets, labels, self.config, checks, num_items_in_batch, **extra)

    def decode(self, step_logits: torch.Tensor, step_offsets: torch.Tensor, max_spans: int | None = None):
        """`decode_spans` with K = min(max_spans or config.max_spans, L_t): spans (B_q, K, 2), scores (B_q, K)."""
        k = min(max_spans or self.config.max_spans, step_logits.shape[1])
        return decode_spans(step_logits, step_offsets, k, self.config.nms_threshold, self.config.span_calibration)

    def _checks_values(self, tensor) -> bool:
        """`input_checks.checks_values`, as a method so that a caller can switch value checks off for one model (fake
        tensors have no values)."""
        return checks_values(tensor)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`, plus what transformers needs to load the folder where tsgv is not
        installed (`trust_remote_code=True`): config.json's `auto_map` (AutoConfig / AutoModel) and
        `custom_pipelines` (the grounding pipeline), and the module files they name, copied beside the weights (the model
        file and what it imports, by transformers; the pipeline and what it imports, here)."""
        self.config.custom_pipelines = CUSTOM_PIPELINES
        result = super().save_pretrained(save_directory, *args, **kwargs)
        if kwargs.get("is_main_process", True):
            from transformers.dynamic_module_utils import get_relative_import_files

            pipeline_file = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pipeline_tsgv.py")
            if os.path.isfile(pipeline_file):
                for path in [pipeline_file, *get_relative_import_files(pipeline_file)]:
                    shutil.copy(path, os.path.join(save_directory, os.path.basename(path)))
            else:  # a model loaded as remote code without its pipeline file: the folder still loads as a model
                logger.warning(f"{pipeline_file} not found: {save_directory} will not carry the pipeline's code")
        return result

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """`PreTrainedModel.from_pretrained` for safetensors weights only, without Hub kernels (`without_hub_kernels`),
        then `apply_backbone_tuning` (loading replaces parameters and with them the `requires_grad` flags set in
        `__init__`). A local folder is checked
        first (`check_model_folder`): what is wrong with it comes as one `ModelFolderError` line naming the path."""
        if isinstance(pretrained_model_name_or_path, (str, os.PathLike)) and os.path.isdir(
            pretrained_model_name_or_path
        ):
            check_model_folder(pretrained_model_name_or_path)
        kwargs.setdefault("use_safetensors", True)
        loaded = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded  # output_loading_info=True: (model, loading_info)
        without_hub_kernels(model)
        model.apply_backbone_tuning()
        return loaded

    @classmethod
    def from_backbones(cls, video, text, **config_overrides) -> PreTrainedModel:
        """Build a model from separately pretrained parts.

        Args:
            video: a VideoMAE model (`VideoMAEModel`, or a pre-training / classification model whose base is used) or
                a path / Hub name that `AutoModel.from_pretrained` loads.
            text: a text encoder model, or a path / Hub name (DistilBERT, BERT, MiniLM...).
            **config_overrides: `TSGVConfig` fields (e.g. `num_frames=64, backbone_tuning="scada"`). `clip_frames` and
                `image_size` are applied while loading a backbone given by path (VideoMAE's positional table is
                sinusoidal, so both may change); for a model object they must match its config.
        Returns:
            `TSGVForGrounding` whose backbone and text weights are exactly the pretrained ones.
        """
        video = video_backbone(video, config_overrides.get("clip_frames"), config_overrides.get("image_size"))
        if isinstance(text, (str, bytes)) or hasattr(text, "__fspath__"):
            text = AutoModel.from_pretrained(text)
        # each part keeps the attention it loaded with (a composite config resets its sub-configs' choice); read
        # from the private attribute: transformers has no public getter (`set_attn_implementation` is the setter)
        attention = {
            "backbone_config": video.config._attn_implementation,
            "text_config": text.config._attn_implementation,
        }
        config = TSGVConfig(backbone_config=video.config, text_config=text.config, **config_overrides)
        # `_from_config` builds our own modules under ZeRO-3's zero.Init when DeepSpeed ZeRO-3 is configured, so they
        # are partitioned and cast (e.g. to bf16) like the parts; otherwise it is a plain constructor call
        model = cls._from_config(config, video_model=video, text_model=text)
        model.set_attn_implementation(attention)
        return model
