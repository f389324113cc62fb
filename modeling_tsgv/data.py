"""Training-time data: frames decoded lazily per row (`FrameTransform`), and video-centric / query-centric batch
collators. Rows come from `annotations.py` (one row per video; its docstring has the schema)."""

import logging
import os
import zlib

import numpy as np
import torch

from .processing_tsgv import DEFAULT_MAX_TEXT_LENGTH, decode_short_side, frames_uint8
from .text_states import SentenceStates
from .video import VideoDecodeError, VideoFrames, read_frames, sample_times_s, set_decoder_threads

logger = logging.getLogger(__name__)

BLANK_FRAME_SIZE = 16  # px: the stand-in frames of a video that failed to decode (resized by the processor)


def item_rng(seed: int, epoch: int, key: str) -> np.random.Generator:
    """A generator that depends only on (seed, epoch, item key): the same random frames / queries for an item in an
    epoch whatever order or process fetched it in, so a resumed run sees exactly the data of an uninterrupted one."""
    return np.random.default_rng([seed, epoch, zlib.crc32(key.encode("utf-8"))])


class FrameTransform:
    """`Dataset.set_transform` callable: decodes each video's frames on access (in DataLoader workers).

    Adds `pixel_values` ((T, 3, H, W) float tensor from the video processor), `frame_times_s` ((T,) seconds) and
    `decode_error` (str, "" when the video decoded) to the row; frames are sampled by time over the annotated duration
    ("uniform" for eval, "random" jitter for training). A video that fails to decode (missing, truncated, no frames)
    does not stop the batch: its row gets blank frames and the error, which the collators report (training drops the
    row; evaluation keeps it and scores its queries as misses). Nothing decoded is kept after the batch is built.

    Args:
        video_processor: resizes / normalises frames (e.g. `TSGVProcessor.video_processor`).
        num_frames: T.
        spacing: where frames fall in their segments: "uniform" (centres) or "random" (jittered, for training).
        backend: decoder, see `read_frames`.
        seed: with a seed, the jitter of an item depends only on (seed, epoch, video and query ids); call
            `set_epoch` each epoch (`EpochCallback` does it for the Trainer). Without, it draws from torch's RNG.
        reading_dir: when set, each process writes the path it is about to decode to `<reading_dir>/<pid>`, so the
            file a DataLoader worker was reading when it died can be named (see `file_being_read`).
        prepared: a `prepare.PreparedStore`: a video stored from its file as it is now is read from it (the frames
            stored at or before each sampled time; no video decoding), the others are decoded from their files.
        uint8: give `pixel_values` resized and cropped but still uint8 (a quarter of float32's bytes through the
            DataLoader); `processing_tsgv.normalize_frames` finishes them on the accelerator (`TSGVTrainer` does).
    """

    def __init__(
        self,
        video_processor,
        num_frames: int,
        spacing: str = "uniform",
        backend: str = "auto",
        seed: int | None = None,
        reading_dir: str | None = None,
        prepared=None,
        uint8: bool = False,
    ):
        self.video_processor = video_processor
        self.prepared, self.uint8 = prepared, uint8
        self.num_frames = num_frames
        self.spacing = spacing
        self.backend = backend
        self.seed = seed
        self.reading_dir = reading_dir
        self.short_side = decode_short_side(video_processor)  # decoded straight to the size the processor wants
        self.epoch = 0

    def set_epoch(self, epoch: int):
        self.epoch = epoch

    def _read(self, video_id, path: str, duration_s: float, rng) -> VideoFrames:
        """A row's frames: from the prepared store when it holds the file as it is now, else decoded from it."""
        if self.prepared is not None and self.prepared.is_current(str(video_id), str(path)):
            targets_s = sample_times_s(float(duration_s), self.num_frames, self.spacing, rng)
            frames, times_s = self.prepared.frames(str(video_id), targets_s)
            return VideoFrames(frames, times_s, float(duration_s), "prepared")
        return read_frames(
            path, self.num_frames, self.spacing, self.backend, rng, duration_s, short_side=self.short_side
        )

    def _rng(self, batch: dict, i: int) -> np.random.Generator:
        if self.seed is None:
            return np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))
        return item_rng(self.seed, self.epoch, f"{batch['video_id'][i]}/{batch['query_ids'][i][:1]}")

    def __call__(self, batch: dict) -> dict:
        if torch.utils.data.get_worker_info() is not None:  # a DataLoader worker: one of many, one decoder thread
            set_decoder_threads(1)
        frames, times_s, errors = [], [], []
        for i, (path, duration_s) in enumerate(zip(batch["video_path"], batch["duration_s"])):
            if path is None:
                raise VideoDecodeError("this dataset has no video paths: load it with video_dir=...")
            rng = self._rng(batch, i) if self.spacing == "random" else None
            if self.reading_dir is not None:
                with open(os.path.join(self.reading_dir, str(os.getpid())), "w") as f:
                    f.write(str(path))
            try:
                video = self._read(batch["video_id"][i], path, duration_s, rng)
            except (VideoDecodeError, OSError) as err:  # skipped and reported by the collator, not fatal here
                logger.warning(f"cannot decode {path}: {err}")
                errors.append(f"{type(err).__name__}: {err}")
                frames.append(torch.zeros(self.num_frames, BLANK_FRAME_SIZE, BLANK_FRAME_SIZE, 3, dtype=torch.uint8))
                times_s.append(torch.zeros(self.num_frames))
                continue
            errors.append("")
            frames.append(torch.from_numpy(video.frames))
            times_s.append(torch.from_numpy(video.times_s))
        # one processor call for the whole batch of videos: (B, T, 3, H, W), float, or uint8 (normalised later)
        if self.uint8:
            pixel_values = frames_uint8(self.video_processor, frames)
        else:
            pixel_values = self.video_processor(frames, return_tensors="pt")["pixel_values"]
        return {
            **batch,
            "pixel_values": list(pixel_values),
            "frame_times_s": times_s,
            "decode_error": errors,
        }


def file_being_read(reading_dir: str | None, pid: int) -> str | None:
    """The path process `pid` last started to decode, as a `FrameTransform(reading_dir=...)` recorded it; None when
    unknown."""
    if reading_dir is None:
        return None
    try:
        with open(os.path.join(reading_dir, str(pid))) as f:
            return f.read() or None
    except OSError:
        return None


class VideoCentricCollator:
    """Batch whole videos with their queries (video-centric sampling).

    Input features: rows with `pixel_values` (T, 3, H, W), `duration_s`, `sentences`, `spans_s` (seconds).
    Output:
        pixel_values (B_v, T, 3, H, W) (or video_states (B_v, C, N, D) when the rows carry cached encode_video
        states); input_ids / attention_mask (B_q, S), right-padded; text_states (B_q, S, D_text) with a
        `text_states` table; query_video_index (B_q,);
        durations_s (B_v,) seconds; labels (B_q, W, 2) moments in normalised time [0, 1], padded with -100 (W = most
        moments of a query in the batch; label-less queries are all -100; no `labels` when no query has a moment);
        saliency_labels (B_q, R, 3) rated clips (start, end, saliency) in normalised time with the annotators' mean
        rating / 4 in [0, 1], padded with -100, when a query of the batch has ratings (QVHighlights; `saliency_s`);
        relevance_labels (B_q,) 1 for a query with moments, 0 for an absent one (`absent`, or a negative), -100 for a
        label-less one, when the batch has negatives or absent queries.
    Args:
        text_processor: a `TSGVProcessor` (its tokenizer, and its `max_text_length`, so training truncates sentences
            exactly as inference does), or a bare tokenizer (then `DEFAULT_MAX_TEXT_LENGTH` tokens).
        max_queries_per_video: cap per video; when a video has more, that many are sampled without replacement.
        num_moments: pad `labels` to this many moments per query (a fixed shape, so evaluation batches concatenate);
            default: the most in the batch.
        seed: with a seed, the queries sampled for a video depend only on (seed, epoch, video id); see `set_epoch`.
        report: also put `video_ids` (B_v,) and `decode_failures` (a list of {"video_id", "video_path", "error",
            "index"}: rows whose frames failed to decode, see `FrameTransform`) into the batch, for `TSGVTrainer`
            (which takes them out before the model sees the batch). Rows that failed are dropped when
            `drop_failed`, else kept (their frames are blank) at batch position `index`.
        drop_failed: drop rows that failed to decode (training) or keep them (evaluation: every query keeps its
            place, and its prediction is scored as a miss).
        text_states: a `SentenceStates` table of the frozen text encoder's states: a batch whose sentences are all
            in it also gets `text_states` (B_q, S, D_text), looked up here on the CPU, so the model skips the
            encoder and the training step reads nothing back from the device.
        negatives_per_video: negative queries added per video, for a relevance head (`relevance.py`): sentences of
            the batch's other videos (not one of this video's own sentences, compared case-insensitively), without
            moments and with relevance label 0; drawn with `seed` like the queries. 0: none.
    """

    def __init__(
        self,
        text_processor,
        max_queries_per_video: int | None = None,
        num_moments: int | None = None,
        seed: int | None = None,
        report: bool = False,
        drop_failed: bool = True,
        text_states: SentenceStates | None = None,
        negatives_per_video: int = 0,
    ):
        if max_queries_per_video is not None and max_queries_per_video < 1:
            raise ValueError(f"max_queries_per_video must be >= 1 or None, got {max_queries_per_video}")
        self.tokenizer = getattr(text_processor, "tokenizer", text_processor)
        self.max_text_length = getattr(text_processor, "max_text_length", DEFAULT_MAX_TEXT_LENGTH)
        self.max_queries_per_video = max_queries_per_video
        self.num_moments = num_moments
        self.seed = seed
        self.report, self.drop_failed = report, drop_failed
        self.text_states = text_states
        self.negatives_per_video = negatives_per_video
        self.epoch = 0

    def set_epoch(self, epoch: int):
        self.epoch = epoch

    def select_queries(self, num_queries: int, video_id: str = "") -> list[int]:
        """Indices of the queries kept for one video (all, or a sample without replacement, in original order)."""
        cap = self.max_queries_per_video
        if cap is None or num_queries <= cap:
            return list(range(num_queries))
        if self.seed is None:
            return sorted(torch.randperm(num_queries)[:cap].tolist())
        return sorted(item_rng(self.seed, self.epoch, video_id).permutation(num_queries)[:cap].tolist())

    def __call__(self, features: list[dict]) -> dict:
        failures = [
            {
                "video_id": str(f.get("video_id")),
                "video_path": f.get("video_path"),
                "error": f["decode_error"],
                "index": i,
            }
            for i, f in enumerate(features)
            if f.get("decode_error")
        ]
        if failures and self.drop_failed:
            features = [f for f in features if not f.get("decode_error")]
            if not features:  # nothing left to learn from: the trainer skips the step
                return {"video_ids": [], "decode_failures": failures}
        batch = self._collate(features)
        if self.report:
            batch["video_ids"] = [str(f.get("video_id")) for f in features]
            batch["decode_failures"] = failures
        elif failures and self.drop_failed:
            logger.warning(f"skipped {len(failures)} video(s) that failed to decode: {failures[0]['error']}")
        return batch

    def _collate(self, features: list[dict]) -> dict:
        sentences, moments, ratings, video_index, relevance = [], [], [], [], []
        for v, feature in enumerate(features):
            duration_s = feature["duration_s"]
            rated = feature.get("saliency_s") or [[] for _ in feature["sentences"]]
            absent = feature.get("absent") or [False] * len(feature["sentences"])
            for q in self.select_queries(len(feature["sentences"]), str(feature.get("video_id", ""))):
                sentences.append(feature["sentences"][q])
                moments.append([[s / duration_s, e / duration_s] for s, e in feature["spans_s"][q]])
                ratings.append(
                    [[c[0] / duration_s, c[1] / duration_s, sum(c[2:]) / (4 * len(c[2:]))] for c in rated[q]]
                )
                video_index.append(v)
                relevance.append(0.0 if absent[q] else 1.0 if moments[-1] else -100.0)
        for v, sentence in self.negatives(features):  # for a relevance head: other videos' sentences, label 0
            sentences.append(sentence)
            moments.append([])
            ratings.append([])
            video_index.append(v)
            relevance.append(0.0)
        if not sentences:
            raise ValueError("a batch without queries: every video in it has no sentences")
        # token ids as lists first: the text-states table is keyed by them (no tensor is read back)
        ids = self.tokenizer(sentences, truncation=True, max_length=self.max_text_length)["input_ids"]
        text = self.tokenizer.pad({"input_ids": ids}, padding=True, padding_side="right", return_tensors="pt")
        # decoded frames, or cached encode_video states (see feature_cache.VideoStatesCache)
        video_key = "video_states" if "video_states" in features[0] else "pixel_values"
        batch = {
            video_key: torch.stack([torch.as_tensor(f[video_key]) for f in features]),
            "input_ids": text["input_ids"],
            "attention_mask": text["attention_mask"],
            "query_video_index": torch.tensor(video_index, dtype=torch.long),
            "durations_s": torch.tensor([float(f["duration_s"]) for f in features], dtype=torch.float64),
        }
        states = self.text_states.lookup(ids, text["input_ids"].shape[1]) if self.text_states is not None else None
        if states is not None:
            batch["text_states"] = states
        most = max(len(w) for w in moments)
        if self.num_moments is not None:
            if most > self.num_moments:
                raise ValueError(f"a query has {most} moments, more than num_moments={self.num_moments}")
            most = self.num_moments  # always present, so every evaluation batch has the same structure
        if most:
            labels = torch.full((len(moments), most, 2), -100.0)
            for q, query_moments in enumerate(moments):
                if query_moments:
                    labels[q, : len(query_moments)] = torch.tensor(query_moments).clamp(0.0, 1.0)
            batch["labels"] = labels
        if any(ratings):
            saliency = torch.full((len(ratings), max(len(r) for r in ratings), 3), -100.0)
            for q, clips in enumerate(ratings):
                if clips:
                    saliency[q, : len(clips)] = torch.tensor(clips).clamp(0.0, 1.0)
            batch["saliency_labels"] = saliency
        if self.negatives_per_video or 0.0 in relevance:
            batch["relevance_labels"] = torch.tensor(relevance)
        return batch

    def negatives(self, features: list[dict]) -> list[tuple[int, str]]:
        """(video position, sentence) of the negative queries for this batch (`negatives_per_video` per video): for
        each video, sentences of the other videos' present queries that are none of its own."""
        if not self.negatives_per_video or len(features) < 2:
            return []
        out = []
        for v, feature in enumerate(features):
            own = {sentence.strip().lower() for sentence in feature["sentences"]}
            pool = [sentence for u, other in enumerate(features) if u != v
                    for sentence, absent in zip(other["sentences"], other.get("absent") or [False] * len(other["sentences"]))
                    if not absent and sentence.strip().lower() not in own]  # fmt: skip
            if not pool:
                continue
            key = f"{feature.get('video_id', v)}:negatives"
            order = (item_rng(self.seed, self.epoch, key).permutation(len(pool)) if self.seed is not None
                     else torch.randperm(len(pool)).tolist())  # fmt: skip
            out.extend((v, pool[i]) for i in list(order)[: self.negatives_per_video])
        return out


class QueryCentricCollator(VideoCentricCollator):
    """One query per item (the usual batching of peer tools, kept for comparison): each query brings its own copy of
    its video, so frames are decoded and the backbone runs once per query. Use on `explode_queries(dataset)`."""

    def __call__(self, features: list[dict]) -> dict:
        counts = {len(f["sentences"]) for f in features}
        if counts != {1}:
            raise ValueError("QueryCentricCollator takes one query per row: pass explode_queries(dataset)")
        return super().__call__(features)


__all__ = ["item_rng", "FrameTransform", "file_being_read", "VideoCentricCollator", "QueryCentricCollator"]
