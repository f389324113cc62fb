"""Annotation readers -> `datasets.Dataset` (one row per video), lazy frame decoding, and batch collators.

Row schema (one row per video):
    video_id (str), video_path (str or None), duration_s (float), sentences (list[str]), query_ids (list[str]),
    spans_s (list per query of [start_s, end_s] moments; a query may have several, or none for label-less test rows)

Validation, counted and reported in one log line per file:
    - sentences are stripped; an empty sentence drops its query;
    - a moment with start >= end, a negative or non-finite time, or a start at/after the video's end is dropped, and a
      query left without moments is dropped (label-less rows, which never had moments, are kept);
    - an end past the video's duration (by more than 1e-6 s: ActivityNet stores durations as float noise) is clipped;
    - exact duplicate queries (same video, raw sentence, raw moments) are counted and kept unless `drop_duplicates=True`
      (published TACoS numbers count them);
    - an unparseable line is dropped; a video file missing from `video_dir` drops its queries and is reported by path.
"""

import csv
import json
import logging
import math
import os
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import torch

from .processing_tsgv import DEFAULT_MAX_TEXT_LENGTH
from .video import VideoDecodeError, read_frames, video_duration_s

logger = logging.getLogger(__name__)

FORMATS = ("charades-sta", "activitynet", "qvhighlights", "tacos", "jsonl")
VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v")
END_TOLERANCE_S = 1e-6
BLANK_FRAME_SIZE = 16  # px: the stand-in frames of a video that failed to decode (resized by the processor)


@dataclass
class RawQuery:
    """One query as a reader found it, before validation. `moments_s` is None for label-less rows."""

    video_id: str
    sentence: str
    moments_s: list | None
    query_id: str
    duration_s: float | None = None
    video_path: str | None = None


@dataclass
class AnnotationStats:
    """What a reader kept, dropped and fixed in one file.

    `ends_past_video` counts every parsed moment ending past the video (also those then dropped for another reason);
    `clipped_ends` counts the kept moments whose end was clipped."""

    path: str
    queries_read: int = 0
    queries_kept: int = 0
    videos_kept: int = 0
    moments_kept: int = 0
    dropped: Counter = field(default_factory=Counter)  # reason -> queries (or lines) dropped
    dropped_moments: Counter = field(default_factory=Counter)  # reason -> moments dropped
    clipped_ends: int = 0
    ends_past_video: int = 0
    stripped_sentences: int = 0
    duplicates: int = 0
    label_less: int = 0
    missing_videos: list = field(default_factory=list)

    def summary(self) -> str:
        """One line: what was read, kept, dropped (with reasons) and clipped."""
        parts = [
            f"{os.path.basename(self.path)}: {self.queries_kept:,d} queries over {self.videos_kept:,d} videos "
            f"({self.moments_kept:,d} moments) from {self.queries_read:,d} read"
        ]
        if self.dropped:
            parts.append("dropped queries: " + ", ".join(f"{k} {v:,d}" for k, v in sorted(self.dropped.items())))
        if self.dropped_moments:
            parts.append(
                "dropped moments: " + ", ".join(f"{k} {v:,d}" for k, v in sorted(self.dropped_moments.items()))
            )
        if self.clipped_ends:
            parts.append(
                f"ends clipped to the video's duration: {self.clipped_ends:,d} "
                f"(moments ending past the video, dropped ones included: {self.ends_past_video:,d})"
            )
        if self.stripped_sentences:
            parts.append(f"sentences with stray spaces stripped: {self.stripped_sentences:,d}")
        if self.duplicates:
            parts.append(f"exact duplicate queries: {self.duplicates:,d}")
        if self.label_less:
            parts.append(f"label-less queries: {self.label_less:,d}")
        if self.missing_videos:
            parts.append(f"missing videos: {len(self.missing_videos):,d} (first: {self.missing_videos[0]})")
        return "; ".join(parts)


# ---------------------------------------------------------------------------------------------------------------------
# Parsers: one per format, each yields RawQuery (or None for an unparseable line/entry)
# ---------------------------------------------------------------------------------------------------------------------


def _parse_charades_sta(path: Path):
    """`VID start end##sentence` per line (seconds; no duration)."""
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, 1):
            if not line.strip():
                continue
            head, sep, sentence = line.rstrip("\n").partition("##")
            fields = head.split()
            try:
                start_s, end_s = float(fields[1]), float(fields[2])
                if not sep or len(fields) != 3:
                    raise ValueError
            except (ValueError, IndexError):
                yield None
                continue
            yield RawQuery(fields[0], sentence, [[start_s, end_s]], f"{fields[0]}:{line_number}")


def _parse_activitynet(path: Path):
    """`{video_id: {"duration": s, "timestamps": [[s, e], ...], "sentences": [...]}}`."""
    data = _load_json(path)
    for video_id, entry in data.items():
        sentences, stamps = entry.get("sentences", []), entry.get("timestamps", [])
        for i, sentence in enumerate(sentences):
            if i >= len(stamps) or len(stamps[i]) != 2:
                yield None
                continue
            yield RawQuery(video_id, sentence, [list(stamps[i])], f"{video_id}:{i}", entry.get("duration"))
        for _ in range(len(stamps) - len(sentences)):
            yield None  # a timestamp without its sentence


def _parse_qvhighlights(path: Path):
    """JSON Lines `{"qid", "query", "duration", "vid", "relevant_windows"?}` (also lighthouse's Charades/TACoS/ANet)."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                moments = record.get("relevant_windows")
                yield RawQuery(
                    str(record["vid"]),
                    record["query"],
                    None if moments is None else [list(w) for w in moments],
                    str(record.get("qid", "")),
                    record.get("duration"),
                )
            except (ValueError, KeyError, TypeError):
                yield None


def _parse_tacos(path: Path):
    """2D-TAN's `{"sXX-dYY.avi": {"timestamps": [[start_frame, end_frame]], "sentences", "fps", "num_frames"}}`;
    frames -> seconds by the file's fps. A `.jsonl` path is read as lighthouse's seconds-based QVHighlights layout."""
    if path.suffix == ".jsonl":
        yield from _parse_qvhighlights(path)
        return
    for key, entry in _load_json(path).items():
        video_id = os.path.splitext(key)[0]
        fps = float(entry["fps"])
        duration_s = entry["num_frames"] / fps if entry.get("num_frames") else None
        for i, (frames, sentence) in enumerate(zip(entry["timestamps"], entry["sentences"])):
            if len(frames) != 2:
                yield None
                continue
            yield RawQuery(video_id, sentence, [[frames[0] / fps, frames[1] / fps]], f"{video_id}:{i}", duration_s)


def _parse_jsonl(path: Path):
    """tsgv's generic JSON Lines, one query per line:
    `{"video_id", "sentence", "start_s", "end_s"}` or `"windows_s": [[s, e], ...]`; optional `"duration_s"`,
    `"video_path"` (relative to `video_dir`) and `"query_id"`."""
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if "windows_s" in record:
                    moments = record["windows_s"]
                elif "start_s" in record:
                    moments = [[record["start_s"], record["end_s"]]]
                else:
                    moments = None
                yield RawQuery(
                    str(record["video_id"]),
                    record["sentence"],
                    moments,
                    str(record.get("query_id", f"{record['video_id']}:{line_number}")),
                    record.get("duration_s"),
                    record.get("video_path"),
                )
            except (ValueError, KeyError, TypeError):
                yield None


_PARSERS = {
    "charades-sta": _parse_charades_sta,
    "activitynet": _parse_activitynet,
    "qvhighlights": _parse_qvhighlights,
    "tacos": _parse_tacos,
    "jsonl": _parse_jsonl,
}


def _load_json(path: Path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except ValueError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err


# ---------------------------------------------------------------------------------------------------------------------
# Durations and video paths
# ---------------------------------------------------------------------------------------------------------------------


def load_durations(durations) -> dict[str, float]:
    """Video durations in seconds from a `{video_id: seconds}` mapping, a JSON file holding one, or a Charades
    `Charades_v1_*.csv` (columns `id` and `length`); several files may be given as a list."""
    if durations is None:
        return {}
    if isinstance(durations, dict):
        return {str(k): float(v) for k, v in durations.items()}
    if isinstance(durations, (list, tuple)):
        merged = {}
        for item in durations:
            merged.update(load_durations(item))
        return merged
    path = Path(durations)
    if path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not {"id", "length"} <= set(reader.fieldnames or ()):
                raise ValueError(f"{path}: a durations CSV needs the columns 'id' and 'length'")
            return {row["id"]: float(row["length"]) for row in reader}
    table = _load_json(path)
    # {id: seconds} or {id: {"duration": seconds, ...}} (VSLNet's charades.json, ActivityNet-style metadata)
    return {str(k): float(v["duration"] if isinstance(v, dict) else v) for k, v in table.items()}


def _find_video(video_dir: Path, video_id: str, relative_path: str | None) -> Path | None:
    """The video file of `video_id` in `video_dir` (given relative path, else id + a known extension), or None."""
    candidates = [video_dir / relative_path] if relative_path else []
    candidates += [video_dir / f"{video_id}{ext}" for ext in VIDEO_EXTENSIONS] + [video_dir / video_id]
    return next((c for c in candidates if c.is_file()), None)


# ---------------------------------------------------------------------------------------------------------------------
# Validation and grouping
# ---------------------------------------------------------------------------------------------------------------------


def _clean_moments(moments_s: list, duration_s: float, stats: AnnotationStats) -> list:
    """Drop bad moments, clip ends past the video; returns the kept [start_s, end_s] moments."""
    kept = []
    for moment in moments_s:
        try:
            start_s, end_s = float(moment[0]), float(moment[1])
        except (TypeError, ValueError, IndexError):
            stats.dropped_moments["unparseable"] += 1
            continue
        past_end = end_s > duration_s + END_TOLERANCE_S
        stats.ends_past_video += past_end
        if not (math.isfinite(start_s) and math.isfinite(end_s)) or start_s < 0:
            stats.dropped_moments["negative or non-finite time"] += 1
        elif start_s >= end_s:
            stats.dropped_moments["start >= end"] += 1
        elif start_s >= duration_s:
            stats.dropped_moments["start at/after the video's end"] += 1
        else:
            stats.clipped_ends += past_end
            kept.append([start_s, min(end_s, duration_s)])
    return kept


def _video_path_and_duration(query, video_dir, durations, stats, cache):
    """Resolve (video_path or None, duration_s or None) for a query's video, once per video."""
    if query.video_id in cache:
        return cache[query.video_id]
    path = None
    if video_dir is not None:
        path = _find_video(video_dir, query.video_id, query.video_path)
        if path is None:
            shown = video_dir / (query.video_path or f"{query.video_id}{VIDEO_EXTENSIONS[0]}")
            stats.missing_videos.append(str(shown))
    duration = query.duration_s if query.duration_s is not None else durations.get(query.video_id)
    if duration is None and path is not None:
        try:
            duration = video_duration_s(path)
        except VideoDecodeError as err:
            logger.warning("%s", err)
    cache[query.video_id] = (None if path is None else str(path), None if duration is None else float(duration))
    return cache[query.video_id]


def read_annotations(
    path, format: str, video_dir=None, durations=None, drop_duplicates: bool = False
) -> tuple[list[dict], AnnotationStats]:
    """Read, validate and group one annotation file. Returns (rows, one per video, in first-seen order; stats)."""
    if format not in _PARSERS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    video_dir_path = None if video_dir is None else Path(video_dir)
    if video_dir_path is not None and not video_dir_path.is_dir():
        raise FileNotFoundError(f"video_dir not found: {video_dir_path}")
    duration_table = load_durations(durations)
    stats, rows, seen, cache = AnnotationStats(str(path)), {}, set(), {}
    for query in _PARSERS[format](path):
        stats.queries_read += 1
        if query is None:
            stats.dropped["unparseable line"] += 1
            continue
        _add_query(query, rows, seen, cache, stats, video_dir_path, duration_table, drop_duplicates)
    stats.videos_kept = len(rows)
    stats.queries_kept = sum(len(r["sentences"]) for r in rows.values())
    stats.moments_kept = sum(len(w) for r in rows.values() for w in r["spans_s"])
    if stats.dropped.get("no duration"):
        raise ValueError(
            f"{path}: {stats.dropped['no duration']} queries have no video duration; {format} annotations need "
            "`durations` (a Charades_v1_*.csv, a JSON {video_id: seconds} file or a dict) or a `video_dir` to read "
            "them from the videos"
        )
    logger.info("%s", stats.summary())
    return list(rows.values()), stats


def _add_query(query, rows, seen, cache, stats, video_dir, durations, drop_duplicates):
    """Validate one RawQuery and append it to its video's row."""
    sentence = query.sentence if isinstance(query.sentence, str) else ""
    if sentence != sentence.strip():
        stats.stripped_sentences += 1
        sentence = sentence.strip()
    if not sentence:
        stats.dropped["empty sentence"] += 1
        return
    video_path, duration_s = _video_path_and_duration(query, video_dir, durations, stats, cache)
    if video_dir is not None and video_path is None:
        stats.dropped["missing video"] += 1
        return
    if duration_s is None or not duration_s > 0:
        stats.dropped["no duration"] += 1
        return
    if query.moments_s is None:
        moments = []
        stats.label_less += 1
    else:
        moments = _clean_moments(query.moments_s, duration_s, stats)
        if not moments:
            stats.dropped["no valid moment"] += 1
            return
    # "exact" duplicates: the same video, raw sentence and raw moments, as the files hold them
    key = (query.video_id, query.sentence, repr(query.moments_s))
    if key in seen:
        stats.duplicates += 1
        if drop_duplicates:
            stats.dropped["duplicate"] += 1
            return
    seen.add(key)
    row = rows.setdefault(
        query.video_id,
        {
            "video_id": query.video_id,
            "video_path": video_path,
            "duration_s": duration_s,
            "sentences": [],
            "query_ids": [],
            "spans_s": [],
        },
    )
    row["sentences"].append(sentence)
    row["query_ids"].append(query.query_id)
    row["spans_s"].append(moments)


DATASET_FEATURES = datasets.Features(
    {
        "video_id": datasets.Value("string"),
        "video_path": datasets.Value("string"),
        "duration_s": datasets.Value("float64"),
        "sentences": datasets.Sequence(datasets.Value("string")),
        "query_ids": datasets.Sequence(datasets.Value("string")),
        "spans_s": datasets.Sequence(datasets.Sequence(datasets.Sequence(datasets.Value("float64")))),
    }
)


def load_annotations(
    path, format: str, video_dir=None, durations=None, drop_duplicates: bool = False
) -> datasets.Dataset:
    """Read a grounding annotation file into a `datasets.Dataset` with one row per video.

    Args:
        path: the annotation file.
        format: "charades-sta", "activitynet", "qvhighlights" (also lighthouse's jsonl for other datasets), "tacos"
            (2D-TAN json in frames, or lighthouse's jsonl) or "jsonl" (tsgv's generic format, see `_parse_jsonl`).
        video_dir: folder of the videos (`<video_id>.mp4` etc.); videos missing there are dropped and reported.
            Without it `video_path` is None (annotation-only use, e.g. metrics).
        durations: for formats without durations (Charades-STA): a Charades_v1_*.csv, a JSON {video_id: seconds}
            file, a dict, or a list of those; else durations are read from the videos in `video_dir`.
        drop_duplicates: drop exact duplicate queries instead of only counting them.
    Returns:
        `datasets.Dataset` with columns video_id, video_path, duration_s, sentences, query_ids, spans_s (seconds).
        The reader's `AnnotationStats` is logged; use `read_annotations` to get it.
    """
    rows, _ = read_annotations(path, format, video_dir, durations, drop_duplicates)
    columns = {name: [row[name] for row in rows] for name in DATASET_FEATURES}
    return datasets.Dataset.from_dict(columns, features=DATASET_FEATURES)


def explode_queries(dataset: datasets.Dataset) -> datasets.Dataset:
    """One row per query (the video's fields repeated): the input of query-centric batching."""

    def split(batch):
        out = {name: [] for name in batch}
        for i in range(len(batch["video_id"])):
            for q in range(len(batch["sentences"][i])):
                for name in ("video_id", "video_path", "duration_s"):
                    out[name].append(batch[name][i])
                for name in ("sentences", "query_ids", "spans_s"):
                    out[name].append([batch[name][i][q]])
        return out

    return dataset.map(split, batched=True, features=dataset.features)


# ---------------------------------------------------------------------------------------------------------------------
# Lazy decoding and collation
# ---------------------------------------------------------------------------------------------------------------------


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
    """

    def __init__(
        self,
        video_processor,
        num_frames: int,
        spacing: str = "uniform",
        backend: str = "auto",
        seed: int | None = None,
        reading_dir: str | None = None,
    ):
        self.video_processor = video_processor
        self.num_frames = num_frames
        self.spacing = spacing
        self.backend = backend
        self.seed = seed
        self.reading_dir = reading_dir
        self.epoch = 0

    def set_epoch(self, epoch: int):
        self.epoch = epoch

    def _rng(self, batch: dict, i: int) -> np.random.Generator:
        if self.seed is None:
            return np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))
        return item_rng(self.seed, self.epoch, f"{batch['video_id'][i]}/{batch['query_ids'][i][:1]}")

    def __call__(self, batch: dict) -> dict:
        frames, times_s, errors = [], [], []
        for i, (path, duration_s) in enumerate(zip(batch["video_path"], batch["duration_s"])):
            if path is None:
                raise VideoDecodeError("this dataset has no video paths: load it with video_dir=...")
            rng = self._rng(batch, i) if self.spacing == "random" else None
            if self.reading_dir is not None:
                with open(os.path.join(self.reading_dir, str(os.getpid())), "w") as f:
                    f.write(str(path))
            try:
                video = read_frames(path, self.num_frames, self.spacing, self.backend, rng, duration_s)
            except (VideoDecodeError, OSError) as err:  # skipped and reported by the collator, not fatal here
                logger.warning(f"cannot decode {path}: {err}")
                errors.append(f"{type(err).__name__}: {err}")
                frames.append(torch.zeros(self.num_frames, BLANK_FRAME_SIZE, BLANK_FRAME_SIZE, 3, dtype=torch.uint8))
                times_s.append(torch.zeros(self.num_frames))
                continue
            errors.append("")
            frames.append(torch.from_numpy(video.frames))
            times_s.append(torch.from_numpy(video.times_s))
        # one processor call for the whole batch of videos: (B, T, 3, H, W)
        pixel_values = self.video_processor(frames, return_tensors="pt")
        return {
            **batch,
            "pixel_values": list(pixel_values["pixel_values"]),
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
    """Batch whole videos with their queries (DESIGN step 3).

    Input features: rows with `pixel_values` (T, 3, H, W), `duration_s`, `sentences`, `spans_s` (seconds).
    Output:
        pixel_values (B_v, T, 3, H, W) (or video_states (B_v, C, N, D) when the rows carry cached encode_video
        states); input_ids / attention_mask (B_q, S); query_video_index (B_q,);
        durations_s (B_v,) seconds; labels (B_q, W, 2) moments in normalised time [0, 1], padded with -100 (W = most
        moments of a query in the batch; label-less queries are all -100; no `labels` when no query has a moment).
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
    """

    def __init__(
        self,
        text_processor,
        max_queries_per_video: int | None = None,
        num_moments: int | None = None,
        seed: int | None = None,
        report: bool = False,
        drop_failed: bool = True,
    ):
        if max_queries_per_video is not None and max_queries_per_video < 1:
            raise ValueError(f"max_queries_per_video must be >= 1 or None, got {max_queries_per_video}")
        self.tokenizer = getattr(text_processor, "tokenizer", text_processor)
        self.max_text_length = getattr(text_processor, "max_text_length", DEFAULT_MAX_TEXT_LENGTH)
        self.max_queries_per_video = max_queries_per_video
        self.num_moments = num_moments
        self.seed = seed
        self.report, self.drop_failed = report, drop_failed
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
        sentences, moments, video_index = [], [], []
        for v, feature in enumerate(features):
            for q in self.select_queries(len(feature["sentences"]), str(feature.get("video_id", ""))):
                sentences.append(feature["sentences"][q])
                moments.append(
                    [[s / feature["duration_s"], e / feature["duration_s"]] for s, e in feature["spans_s"][q]]
                )
                video_index.append(v)
        if not sentences:
            raise ValueError("a batch without queries: every video in it has no sentences")
        text = self.tokenizer(
            sentences, padding=True, truncation=True, max_length=self.max_text_length, return_tensors="pt"
        )
        # decoded frames, or cached encode_video states (see feature_cache.VideoStatesCache)
        video_key = "video_states" if "video_states" in features[0] else "pixel_values"
        batch = {
            video_key: torch.stack([torch.as_tensor(f[video_key]) for f in features]),
            "input_ids": text["input_ids"],
            "attention_mask": text["attention_mask"],
            "query_video_index": torch.tensor(video_index, dtype=torch.long),
            "durations_s": torch.tensor([float(f["duration_s"]) for f in features], dtype=torch.float64),
        }
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
        return batch


class QueryCentricCollator(VideoCentricCollator):
    """One query per item (the usual batching of peer tools, kept for comparison): each query brings its own copy of
    its video, so frames are decoded and the backbone runs once per query. Use on `explode_queries(dataset)`."""

    def __call__(self, features: list[dict]) -> dict:
        counts = {len(f["sentences"]) for f in features}
        if counts != {1}:
            raise ValueError("QueryCentricCollator takes one query per row: pass explode_queries(dataset)")
        return super().__call__(features)


__all__ = [
    "FORMATS",
    "item_rng",
    "AnnotationStats",
    "read_annotations",
    "load_annotations",
    "load_durations",
    "explode_queries",
    "FrameTransform",
    "file_being_read",
    "VideoCentricCollator",
    "QueryCentricCollator",
]
