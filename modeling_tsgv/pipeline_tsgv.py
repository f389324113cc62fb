"""TemporalSentenceGroundingPipeline: `pipeline("temporal-sentence-grounding", model=...)` for video files.

    >>> import modeling_tsgv  # registers the task with transformers
    >>> from transformers import pipeline
    >>> pipe = pipeline("temporal-sentence-grounding", model="path/to/tsgv-model")
    >>> pipe("kitchen.mp4", queries=["the person opens the fridge", "the person sits down"], top_k=5)
    [[{'start': 12.4, 'end': 18.8, 'score': 0.81}, ...], [...]]

How a call runs, per video:
1. The video is opened once and frames are read on a uniform time grid, streaming: each frame is decoded once and
   resized / normalised once (`modeling_tsgv.video.open_video`).
2. A video no longer than `window_s` is one window sampled exactly as in training (`num_frames` frames over the whole
   video). A longer video is covered by windows of `num_frames` grid frames overlapping by at least half a window
   (`window_overlap`), the grid stretched a little so the windows tile [0, duration] exactly. Only one window's
   frames are held at a time, so a 30-minute video needs no more memory than a 1-minute one.
3. Per window, the query-independent backbone blocks (`TSGVForGrounding.encode_video`) run once, however many queries
   are asked; clips shared with the previous window are not encoded again. The per-query part (`ground`) runs on
   chunks of `query_batch_size` queries.
4. Every time step of every window proposes a span with a score (the step's foreground probability, an absolute
   number, so scores are comparable across windows); spans are moved to seconds, 1-D NMS runs over the whole video,
   and the best `top_k` are returned.
"""

import itertools
import os
import queue
import threading
import time
from collections.abc import Iterable

import numpy as np
import torch
from transformers import AutoModel
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.base import ChunkPipeline
from transformers.utils import logging

from .configuration_tsgv import ModelFolderError, check_model_folder
from .modeling_tsgv import TSGVEncodedVideos
from .processing_tsgv import (
    TSGVProcessor,
    check_processor_matches,
    decode_short_side,
    frames_uint8,
    normalize_frames,
)
from .queries import empty_queries
from .video import VideoDecodeError, open_video
from .windows import WindowPlan, merge_windows, plan_windows, window_alignment

logger = logging.get_logger(__name__)

TASK = "temporal-sentence-grounding"
MAX_OPEN_CALLS = 8  # clip caches kept for calls still running (threads); older ones are dropped (recomputed if needed)


# what `_forward` keeps of each window's model output for `merge_windows`
WINDOW_OUTPUTS = ("step_logits", "step_offsets", "step_saliency", "relevance")


def _pad_right(ids: torch.Tensor, length: int, value: int) -> torch.Tensor:
    """(B_q, S) -> (B_q, length), filled with `value` on the right."""
    return torch.nn.functional.pad(ids, (0, length - ids.shape[1]), value=value)


def stack_windows(windows: list[dict], pad_id: int) -> dict:
    """The only windows of several videos as one model input: pixel_values (B_v, T, 3, H, W), every video's queries
    in order with their token ids right-padded to the longest (`pad_id`), `query_video_index` (B_q,), and the first
    window's `call` (the batch's timings go there)."""
    length = max(w["input_ids"].shape[1] for w in windows)
    return {
        "pixel_values": torch.cat([w["pixel_values"] for w in windows]),
        "input_ids": torch.cat([_pad_right(w["input_ids"], length, pad_id) for w in windows]),
        "attention_mask": torch.cat([_pad_right(w["attention_mask"], length, 0) for w in windows]),
        "query_video_index": torch.cat(
            [torch.full((w["input_ids"].shape[0],), v, dtype=torch.long) for v, w in enumerate(windows)]
        ),
        "call": windows[0]["call"],
    }


class StageClock:
    """Seconds spent in the pipeline's model stages, without waiting for the accelerator: on the CPU, wall time; on
    an accelerator, device events recorded between the stages (no wait) and read when the call ends, after its
    outputs' copy to the CPU has waited for them anyway. Stage times then are the device's own, not the host's
    queueing time. Calls from several threads each settle their own stages."""

    def __init__(self, device: torch.device):
        self.events = device.type != "cpu" and torch.accelerator.is_available()
        self.device = device
        self._pending: list[tuple[dict, str, object, object]] = []  # (timings, stage, start, end) not yet read
        self._lock = threading.Lock()

    def on(self, device: torch.device) -> "StageClock":
        """This clock, or a new one when the pipeline has moved to another device since."""
        return self if device == self.device else StageClock(device)

    def now(self):
        """A time mark: an event recorded on the device's current stream, or `time.perf_counter()` on the CPU."""
        if not self.events:
            return time.perf_counter()
        event = torch.Event(self.device, enable_timing=True)
        event.record()
        return event

    def add(self, stage: str, start, end, timings: dict) -> None:
        """Count the stage between marks `start` and `end` into `timings` (now on the CPU, at `settle` on a device)."""
        if not self.events:
            timings[stage] += end - start
            return
        with self._lock:
            self._pending.append((timings, stage, start, end))

    def settle(self, timings: dict) -> None:
        """Read the device events of the stages counted into `timings` (waits only for those events)."""
        with self._lock:
            mine = [entry for entry in self._pending if entry[0] is timings]
            self._pending = [entry for entry in self._pending if entry[0] is not timings]
        for _, stage, start, end in mine:
            end.synchronize()
            timings[stage] += start.elapsed_time(end) / 1000.0  # ms -> s


class _DecodeAhead:
    """Runs an iterator one item ahead in a background thread, so decoding the next window overlaps the model's work
    on this one (the decoders and the resizing release the GIL). Written here because the pipelines' DataLoader
    path batches items by their first axis, which for us is queries. An error inside the iterator is raised at the
    item where it happened; `close()` stops the thread and closes the iterator (and so the video being read)."""

    def __init__(self, iterator, depth: int = 1):
        self._iterator = iterator
        self._queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._finished = False
        self._thread = threading.Thread(target=self._fill, name="tsgv-decode-ahead", daemon=True)
        self._thread.start()

    def _fill(self):
        try:
            for item in self._iterator:
                if not self._put(("item", item)):
                    return
            self._put(("end", None))
        except BaseException as err:  # handed to the consumer, raised there
            self._put(("error", err))
        finally:
            self._iterator.close()

    def _put(self, entry) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self):
        return self

    def __next__(self):
        if self._finished:
            raise StopIteration
        kind, value = self._queue.get()
        if kind == "item":
            return value
        self._finished = True
        if kind == "error":
            raise value
        raise StopIteration

    def close(self):
        self._stop.set()
        self._thread.join()


def _returns_errors(decode_errors: str) -> bool:
    """The pipeline's `decode_errors` argument ("raise" or "return") as a flag; ValueError otherwise."""
    if decode_errors not in ("raise", "return"):
        raise ValueError(f"decode_errors must be 'raise' or 'return', got {decode_errors!r}")
    return decode_errors == "return"


def _postprocess_parameters(top_k, nms_threshold, return_timeline, min_score) -> dict:
    """The pipeline's postprocess call parameters that were given, checked (ValueError naming the bad one)."""
    postprocess = {}
    if top_k is not None:
        if int(top_k) < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        postprocess["top_k"] = int(top_k)
    if nms_threshold != "unset":
        postprocess["nms_threshold"] = nms_threshold
    if min_score is not None:
        if isinstance(min_score, bool) or not isinstance(min_score, (int, float)) or not 0.0 <= min_score <= 1.0:
            raise ValueError(f"min_score must be a score in [0, 1], got {min_score!r}")
        postprocess["min_score"] = float(min_score)
    if return_timeline is not None:
        postprocess["return_timeline"] = bool(return_timeline)
    return postprocess


def tokenize_queries(processor: TSGVProcessor, sentences: list[str]):
    """`processor(text=sentences)` for one video's queries, warning about each query longer than the processor's
    `max_text_length` (only that many tokens are read). Not thread-safe: fast tokenizers keep their truncation /
    padding settings in shared state (the pipeline calls it under a lock)."""
    limit = processor.max_text_length
    # counted without cutting (a max_length this large never cuts, and keeps the tokenizer's warning quiet)
    counted = processor.tokenizer(sentences, truncation=True, max_length=10**9)["input_ids"]
    for number, ids in enumerate(counted, start=1):  # queries are numbered from 1 in every message
        if len(ids) > limit:
            logger.warning(
                f"query {number} has {len(ids):,d} tokens; only its first {limit} are read (the model's "
                "max_text_length)"
            )
    return processor(text=sentences, query_video_index=[0] * len(sentences), return_tensors="pt")


def window_frames(source, plan: WindowPlan, processor: TSGVProcessor, video: str):
    """Yield each window's frames, resized and cropped, (1, num_frames, 3, H, W) uint8 (normalised on the model's
    device by `_forward`), decoding the video once, streaming:
    window k > 0 reuses the frames it shares with window k - 1 and decodes only its `hop_frames` new ones.

    `source` is an open `modeling_tsgv.video` reader; decoder failures become `VideoDecodeError` naming `video`.
    """
    frames = source.frames_at(plan.frame_times_s())
    buffer = []  # processed frames (3, H, W) of the current window
    for window_index in range(plan.num_windows):
        needed = plan.num_frames if window_index == 0 else plan.hop_frames
        try:
            group = [next(frames)[0] for _ in range(needed)]
        except StopIteration as err:
            raise VideoDecodeError(f"{video}: the decoder returned fewer frames than asked") from err
        except VideoDecodeError:
            raise
        except Exception as err:  # decoder libraries raise many types for a broken file; report it as one
            raise VideoDecodeError(f"{video}: cannot decode video ({type(err).__name__}: {err})") from err
        pixels = frames_uint8(processor.video_processor, [np.stack(group)])[0]  # (needed, 3, H, W) uint8
        buffer = buffer[needed:] if window_index else []
        buffer.extend(pixels)
        yield torch.stack(buffer)[None]


class ClipStateCache:
    """Per pipeline call (one video), the query-independent states of the clips the next window may share, so each
    clip of a long video is encoded once (the shared blocks see one clip at a time, so a clip's states do not depend
    on the window around it). Calls from several threads each keep their own entry; at most `max_calls` are kept
    (older ones are dropped and recomputed if needed)."""

    def __init__(self, max_calls: int = MAX_OPEN_CALLS):
        self.calls: dict[int, dict[int, torch.Tensor]] = {}
        self.max_calls = max_calls
        self._lock = threading.Lock()

    def encoded_videos(self, model, pixel_values: torch.Tensor, frame_start: int, call: int) -> TSGVEncodedVideos:
        """`model.encode_video` of one window (1, T, 3, H, W) whose first frame is grid frame `frame_start`,
        encoding only the clips the previous window of `call` did not hold."""
        clip_frames = model.config.clip_frames
        clips = pixel_values.shape[1] // clip_frames
        starts = [frame_start + c * clip_frames for c in range(clips)]  # grid frame index of each clip's first frame
        cache = self.calls.get(call, {})
        missing = [c for c, s in enumerate(starts) if s not in cache]
        steps_per_clip = clip_frames // model.config.backbone_config.tubelet_size
        if len(missing) == clips:  # first window (or no clip shared): encode it as it is
            hidden = model.encode_video(pixel_values).hidden_states  # (C, N, D)
            cache = dict(zip(starts, hidden))
        else:
            if missing:
                clips_view = pixel_values.view(1, clips, clip_frames, *pixel_values.shape[2:])
                # the new clips of a window are its last ones: a slice (a list index would be copied to the device)
                contiguous = missing == list(range(missing[0], missing[-1] + 1))
                frames = clips_view[:, missing[0] : missing[-1] + 1] if contiguous else clips_view[:, missing]
                states = model.encode_video(frames.flatten(1, 2))  # (len(missing), N, D)
                cache.update({starts[c]: states.hidden_states[j] for j, c in enumerate(missing)})
            hidden = torch.stack([cache[s] for s in starts])  # (C, N, D)
        with self._lock:  # calls from several threads: eviction iterates the dict others write to
            self.calls[call] = {s: cache[s] for s in starts}  # keep only what the next window may share
            while len(self.calls) > self.max_calls:  # more calls at once, or driven by hand: oldest go
                self.calls.pop(next(iter(self.calls)))
        return TSGVEncodedVideos(hidden, 1, clips, steps_per_clip)

    def forget(self, call: int):
        """Drop what `call` kept (its video is done)."""
        with self._lock:
            self.calls.pop(call, None)


class VideoStream:
    """Runs the windows of a list of videos through a grounding pipeline and yields each video's result, in order.

    The windows of all videos form one stream; with `decode_ahead` a background thread decodes (and resizes) up to
    `batch_size` windows ahead while the model works on the current ones. A video of one window waits for up to
    `batch_size` - 1 more such videos and they go through the model together (one forward pass on a stacked batch,
    `stack_windows`); a longer video flushes that group first, then runs window by window (neighbouring windows share
    clips, which the pipeline's clip cache encodes once). `timings` sums the call; "decode" is the time the model
    waited for frames.
    """

    def __init__(
        self,
        pipe,
        forward_params: dict,
        postprocess_params: dict,
        batch_size: int,
        decode_ahead: bool,
        return_errors: bool = False,
    ):
        self.pipe, self.forward_params, self.postprocess_params = pipe, forward_params, postprocess_params
        self.batch_size, self.decode_ahead, self.return_errors = batch_size, decode_ahead, return_errors
        self.timings = {"decode": 0.0, "shared": 0.0, "per_query": 0.0, "total": 0.0}

    def results(self, inputs, preprocess_params: dict):
        """Yield one result per input (a video path or `{"video", "queries"}` dict), in order."""
        pipe, start = self.pipe, time.perf_counter()
        windows = self._windows(inputs, preprocess_params)
        windows = _DecodeAhead(windows, depth=self.batch_size) if self.decode_ahead else windows
        group, outputs, calls = [], [], set()  # one-window videos waiting; windows of the current longer video
        try:
            while True:
                tick = time.perf_counter()
                window = next(windows, None)
                self.timings["decode"] += time.perf_counter() - tick
                if window is not None and "decode_error" in window:  # returned in its place (`return_errors`)
                    if group:
                        yield from self._ground_group(group)
                        group = []
                    outputs = []  # the windows it had already given
                    yield window["decode_error"]
                    continue
                if window is not None and self.batch_size > 1 and window["window_index"] == 0 and window["is_last"]:
                    group.append(window)  # a one-window video: waits for the others of its group
                    if len(group) == self.batch_size:
                        yield from self._ground_group(group)
                        group = []
                    continue
                if group:  # the end, or a longer video: the waiting videos come first (results stay in order)
                    yield from self._ground_group(group)
                    group = []
                if window is None:
                    break
                calls.add(window["call"])
                outputs.append(self._forward(window))
                if window["is_last"]:
                    result = pipe.postprocess(outputs, **self.postprocess_params)
                    outputs = []
                    pipe._forget(window["call"])
                    yield result
        finally:
            windows.close()  # stops the decoding thread (if any) and closes the video being read
            for call in calls:
                pipe._forget(call)
            pipe._clock.settle(self.timings)
            self.timings["total"] = time.perf_counter() - start

    def _windows(self, inputs, preprocess_params: dict):
        """Every window of every input, in order; with `return_errors`, a video that cannot be decoded gives one
        `{"decode_error": VideoDecodeError}` item instead of (the rest of) its windows."""
        for item in inputs:
            try:
                yield from self.pipe.preprocess(item, **preprocess_params)
            except VideoDecodeError as error:
                if not self.return_errors:
                    raise
                yield {"decode_error": error}

    def _forward(self, model_inputs: dict) -> dict:
        self.pipe._timings[model_inputs["call"]] = self.timings  # the pipeline's `_forward` adds the model's share
        return self.pipe.forward(model_inputs, **self.forward_params)

    def _ground_group(self, group: list[dict]):
        """One forward pass for several one-window videos; yields each video's result, in order."""
        pipe = self.pipe
        batch = group[0] if len(group) == 1 else stack_windows(group, pipe.processor.tokenizer.pad_token_id or 0)
        try:
            out = self._forward(batch)
        finally:
            pipe._forget(batch["call"])
        first = 0
        for window in group:
            queries = window["input_ids"].shape[0]
            keys = ("step_logits", "step_offsets", "step_saliency", "relevance")
            part = {key: out[key][first : first + queries] for key in keys if key in out}
            first += queries
            yield pipe.postprocess([{**window, **part}], **self.postprocess_params)


class TemporalSentenceGroundingPipeline(ChunkPipeline):
    """Ground sentences in video files: `pipe(video, queries=..., top_k=5)` -> spans in seconds, best first.

    Inputs (first argument):
        - a video path: `pipe("v.mp4", queries=["a", "b"])` -> one list of spans per query;
          `pipe("v.mp4", queries="a")` -> one list of spans.
        - a dict `{"video": path, "queries": [...] or "..."}` (queries per video).
        - a list of paths and/or dicts -> a list with one result per video, in order; a generator -> a generator.
    Call parameters (also accepted when the pipeline is built):
        queries (`str` or `list[str]`): sentences for every video given as a path.
        top_k (`int`, defaults to 5): spans per query.
        min_score (`float`, *optional*): keep only the spans scoring at least this, possibly none (every moment
            the model believes in); a model trained by `run_grounding.py` scores calibrated probabilities.
        window_s (`float`, defaults to `config.inference_window_s`): videos longer than this are split into windows.
        window_overlap (`float`, defaults to 0.5): least fraction of a window shared with the next.
        query_batch_size (`int`, *optional*): queries per forward pass of the per-query blocks. Default: 1 on CPU
            (the fastest there, docs/benchmarks.md), 16 on GPUs.
        nms_threshold (`float`, defaults to `config.nms_threshold`): temporal IoU above which a lower-scored span is
            suppressed; `None` turns NMS off.
        return_timeline (`bool`, defaults to False): per query a dict with the spans, `times_s`, `step_scores`,
            `saliency`, `duration_s`, and `relevance` / `absent` with a relevance head (`merge_windows`).
        batch_size (`int`, defaults to 1): for a list or generator of videos, how many one-window videos (no longer
            than `window_s`) go through the model in one forward pass; longer videos run window by window.
        decode_ahead (`bool`, defaults to True): decode the next windows in a background thread meanwhile.
        decode_errors (`str`, defaults to "raise"): "return": for a list or generator of videos, a video that cannot
            be decoded gives its `VideoDecodeError` in its place among the results and the others go on.
        backend (`str`, defaults to "pyav"): video decoder ("pyav", "decord", "torchcodec", or "auto" = PyAV then
            decord); PyAV streams in constant memory whatever the video's length (docs/benchmarks.md).
    Returns:
        per query, a list of `{"start": s, "end": e, "score": p}` (seconds; score in [0, 1]), best first.
    Raises:
        `VideoDecodeError` (missing or unreadable video), `ValueError` (empty query), both naming the video.

    After each call, `last_timings_s`: seconds of decoding (+ resizing), shared blocks, per-query part and in total.
    """

    _load_processor = None  # optional: a folder saved by run_grounding holds the TSGVProcessor
    _load_tokenizer = None  # fallback when only a tokenizer was saved
    _load_image_processor = _load_video_processor = _load_feature_extractor = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # by model type, not class: loaded as remote code, the model's class and ours come from separate module copies
        if getattr(self.model.config, "model_type", None) != "tsgv" or not hasattr(self.model, "encode_video"):
            name = getattr(self.model, "name_or_path", "") or type(self.model).__name__
            raise ModelFolderError(
                f"{name}: not a tsgv model (model_type {getattr(self.model.config, 'model_type', None)!r})"
            )
        if self.processor is None:
            if self.tokenizer is None:
                raise ModelFolderError(
                    f"{self.model.name_or_path}: no processor or tokenizer saved beside the model "
                    "(save a TSGVProcessor with processor.save_pretrained, as run_grounding.py does)"
                )
            self.processor = TSGVProcessor.from_tokenizer(self.tokenizer, image_size=self.model.config.image_size)
        try:
            check_processor_matches(self.model.config, self.processor, self.model.name_or_path)
        except ValueError as err:
            raise ModelFolderError(str(err)) from err
        self.model.eval()
        # per call (so calls from several threads never mix): clip states shared with the next window, and timings
        self._calls = itertools.count()
        self._clip_cache = ClipStateCache()
        self._tokenizer_lock = threading.Lock()
        self._timings: dict[int, dict[str, float]] = {}
        self._clock = StageClock(self.device)
        self.last_timings_s: dict[str, float] = {}

    def _sanitize_parameters(
        self,
        queries=None,
        top_k=None,
        window_s=None,
        window_overlap=None,
        query_batch_size=None,
        nms_threshold="unset",
        return_timeline=None,
        min_score=None,
        backend=None,
        decode_ahead=None,
        **kwargs,
    ):
        if kwargs:
            raise TypeError(f"unknown argument(s) for the {TASK} pipeline: {sorted(kwargs)}")
        preprocess, forward = {}, {}
        if queries is not None:
            preprocess["queries"] = queries
        if window_s is not None:
            preprocess["window_s"] = float(window_s)
        if window_overlap is not None:
            preprocess["window_overlap"] = float(window_overlap)
        if backend is not None:
            preprocess["backend"] = backend
        if query_batch_size is not None:
            if int(query_batch_size) < 1:
                raise ValueError(f"query_batch_size must be >= 1, got {query_batch_size}")
            forward["query_batch_size"] = int(query_batch_size)
        if decode_ahead is not None:
            forward["decode_ahead"] = bool(decode_ahead)
        postprocess = _postprocess_parameters(top_k, nms_threshold, return_timeline, min_score)
        return preprocess, forward, postprocess

    # ------------------------------------------------------------------ calling

    def __call__(self, inputs, **kwargs):
        """See the class docstring. Videos are streamed window by window (the DataLoader machinery of other pipelines
        would batch our per-window outputs by their first axis, which here is queries, not items); `batch_size` > 1
        groups that many one-window videos into one forward pass."""
        batch_size = kwargs.pop("batch_size", None)
        if batch_size is None:
            batch_size = self._batch_size if self._batch_size is not None else 1
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1 (videos per forward pass), got {batch_size!r}")
        return_errors = _returns_errors(kwargs.pop("decode_errors", "raise"))
        if kwargs.pop("num_workers", None) not in (None, 0, 1):
            raise ValueError(
                f"num_workers is not used by the {TASK} pipeline: one background thread decodes ahead "
                "(decode_ahead=True)"
            )
        pre, fwd, post = self._sanitize_parameters(**kwargs)
        pre, fwd, post = (
            {**self._preprocess_params, **pre},
            {**self._forward_params, **fwd},
            {**self._postprocess_params, **post},
        )
        decode_ahead = fwd.pop("decode_ahead", True)
        stream = {"batch_size": batch_size, "decode_ahead": decode_ahead, "return_errors": return_errors}
        if isinstance(inputs, (str, os.PathLike, dict)):
            return list(self._run([inputs], pre, fwd, post, **stream))[0]
        if isinstance(inputs, (list, tuple)):
            return list(self._run(inputs, pre, fwd, post, **stream))
        if isinstance(inputs, Iterable):
            return self._run(inputs, pre, fwd, post, **stream)
        raise TypeError(f"expected a video path, a {{'video', 'queries'}} dict or a list of them, got {type(inputs)}")

    def _run(self, inputs, preprocess_params, forward_params, postprocess_params, **stream_params):
        """Yield one result per input video, in order (`VideoStream`); `last_timings_s` sums the whole call."""
        stream = VideoStream(self, forward_params, postprocess_params, **stream_params)
        try:
            yield from stream.results(inputs, preprocess_params)
        finally:
            self.last_timings_s = stream.timings

    def _forget(self, call: int):
        """Drop what was kept for one video's call: its clip states and timings entry."""
        self._clip_cache.forget(call)
        self._timings.pop(call, None)

    # ------------------------------------------------------------------ the three stages

    def preprocess(self, inputs, queries=None, window_s=None, window_overlap=0.5, backend="pyav"):
        """Yield one model input per window: pixel_values (1, T, 3, H, W) uint8, the tokenised queries
        and the window's place in the video. The video is decoded once, streaming."""
        if isinstance(inputs, dict):
            unknown = set(inputs) - {"video", "queries"}
            if "video" not in inputs or unknown:
                raise ValueError(f"an input dict needs the keys 'video' and 'queries' (got {sorted(inputs)})")
            video, queries = inputs["video"], inputs.get("queries", queries)
        else:
            video = inputs
        video = os.fspath(video)
        single = isinstance(queries, str)
        sentences = [queries] if single else list(queries or [])
        if not sentences:
            raise ValueError(f"{video}: no query given (pass queries=['...'])")
        empty = empty_queries(sentences)
        if empty:
            raise ValueError(f"{video}: query {empty[0] + 1} is empty: every query needs words")
        config = self.model.config
        with self._tokenizer_lock:  # a fast tokenizer keeps its truncation settings in state shared by threads
            text = tokenize_queries(self.processor, sentences)
        call = next(self._calls)  # keys this video's clip cache and timings, so concurrent calls never mix

        with open_video(video, backend, decode_short_side(self.processor.video_processor)) as source:
            if not source.duration_s or source.duration_s <= 0:
                raise VideoDecodeError(f"{video}: cannot tell the video's duration")
            plan = plan_windows(
                source.duration_s,
                config.num_frames,
                window_s or config.inference_window_s,
                window_overlap,
                window_alignment(config, window_overlap),
            )
            for window_index, pixel_values in enumerate(window_frames(source, plan, self.processor, video)):
                yield {
                    "pixel_values": pixel_values,  # (1, T, 3, H, W) uint8 until the device
                    "input_ids": text["input_ids"],
                    "attention_mask": text["attention_mask"],
                    "video": video,
                    "queries": sentences,
                    "single_query": single,
                    "window_index": window_index,
                    "frame_start": window_index * plan.hop_frames,
                    "plan": plan,
                    "call": call,
                    "is_last": window_index == plan.num_windows - 1,
                }

    def _forward(self, model_inputs, query_batch_size: int | None = None):
        call = model_inputs["call"]
        timings = self._timings.get(call) or {"shared": 0.0, "per_query": 0.0}  # VideoStream registers its dict
        clock = self._clock = self._clock.on(self.device)
        start = clock.now()
        frames, processor = model_inputs["pixel_values"], self.processor.video_processor
        model_inputs["pixel_values"] = normalize_frames(frames, processor, self.dtype)  # uint8 until the device
        if "query_video_index" in model_inputs:  # several one-window videos at once: nothing to share between them
            pixel_values = model_inputs["pixel_values"]
            states = self.model.encode_video(pixel_values)
            query_video_index = model_inputs["query_video_index"]
        else:
            states = self._clip_cache.encoded_videos(
                self.model, model_inputs["pixel_values"], model_inputs["frame_start"], call
            )
            query_video_index = torch.zeros(model_inputs["input_ids"].shape[0], dtype=torch.long, device=self.device)
        shared = clock.now()
        clock.add("shared", start, shared, timings)
        input_ids, attention_mask = model_inputs["input_ids"], model_inputs["attention_mask"]
        query_batch_size = query_batch_size or (1 if self.device.type == "cpu" else 16)
        parts = {}
        for first in range(0, input_ids.shape[0], query_batch_size):
            part = slice(first, first + query_batch_size)
            out = self.model.ground(
                states,
                input_ids[part],
                attention_mask[part],
                query_video_index[part],
                return_spans=False,  # postprocess ranks the candidates of all windows together
            )
            for key in WINDOW_OUTPUTS:
                if getattr(out, key) is not None:  # relevance: only with a relevance head
                    parts.setdefault(key, []).append(getattr(out, key).float())
        clock.add("per_query", shared, clock.now(), timings)
        keep = ("video", "queries", "single_query", "window_index", "frame_start", "plan", "is_last")
        return {key: torch.cat(outputs) for key, outputs in parts.items()} | {
            k: model_inputs[k] for k in keep if k in model_inputs
        }

    def postprocess(
        self, model_outputs, top_k: int = 5, nms_threshold="config", return_timeline: bool = False, min_score=None
    ):
        """Merge the windows' candidates in seconds, 1-D NMS over the whole video, best `top_k` per query, those
        scoring at least `min_score` (`merge_windows`); one list of spans, or one list per query."""
        config = self.model.config
        nms_threshold = config.nms_threshold if nms_threshold == "config" else nms_threshold
        calibration = getattr(config, "span_calibration", None)  # a folder saved before calibration existed: None
        results = merge_windows(model_outputs, config.backbone_config.tubelet_size, top_k, nms_threshold,
                                return_timeline, config.relevance_threshold, calibration, min_score)  # fmt: skip
        return results[0] if model_outputs[0]["single_query"] else results


def register_pipeline() -> None:
    """Register the task with transformers (idempotent); `import modeling_tsgv` calls it."""
    if TASK not in PIPELINE_REGISTRY.supported_tasks:
        PIPELINE_REGISTRY.register_pipeline(
            TASK, pipeline_class=TemporalSentenceGroundingPipeline, pt_model=AutoModel, type="multimodal"
        )


__all__ = [
    "TASK",
    "ModelFolderError",
    "TemporalSentenceGroundingPipeline",
    "WindowPlan",
    "check_model_folder",
    "plan_windows",
    "register_pipeline",
    "window_alignment",
]
