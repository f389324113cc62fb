"""Annotation readers -> rows / `datasets.Dataset` (one row per video), with their validation. No torch: baselines,
benchmarks and tools read annotations without the model stack (decoding and batching are in `data.py`).

Row schema (one row per video):
    video_id (str), video_path (str or None), duration_s (float), sentences (list[str]), query_ids (list[str]),
    spans_s (list per query of [start_s, end_s] moments; a query may have several, or none for label-less test rows),
    saliency_s (list per query of rated clips [start_s, end_s, rating_1, rating_2, rating_3]: QVHighlights' 2-s clips
    with their three annotators' 0-4 saliency ratings; empty where a dataset has none),
    absent (list per query of bool: the sentence is known not to occur in the video, e.g. `"absent": true` in tsgv's
    jsonl; such a query has no moments, and is scored right when the model rejects it)

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
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import datasets

from .video import VideoDecodeError, video_duration_s

logger = logging.getLogger(__name__)

FORMATS = ("charades-sta", "activitynet", "qvhighlights", "tacos", "jsonl")
VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v")
END_TOLERANCE_S = 1e-6


@dataclass
class RawQuery:
    """One query as a reader found it, before validation. `moments_s` is None for label-less rows."""

    video_id: str
    sentence: str
    moments_s: list | None
    query_id: str
    duration_s: float | None = None
    video_path: str | None = None
    ratings_s: list | None = None  # [[start_s, end_s, r1, r2, r3], ...] (QVHighlights' saliency_scores)
    absent: bool = False  # the sentence is known not to occur in the video (it has no moments)


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
    absent: int = 0
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
        if self.absent:
            parts.append(f"absent queries (known not to occur): {self.absent:,d}")
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
                    ratings_s=_clip_ratings(record),
                )
            except (ValueError, KeyError, TypeError):
                yield None


QVHIGHLIGHTS_CLIP_S = 2.0  # QVHighlights rates 2-s clips


def _clip_ratings(record: dict) -> list | None:
    """QVHighlights' `relevant_clip_ids` + `saliency_scores` -> [[start_s, end_s, r1, r2, r3], ...] (None without
    them, or when the two lists do not pair up)."""
    clip_ids, scores = record.get("relevant_clip_ids"), record.get("saliency_scores")
    if not clip_ids or not scores or len(clip_ids) != len(scores):
        return None
    return [[c * QVHIGHLIGHTS_CLIP_S, (c + 1) * QVHIGHLIGHTS_CLIP_S, *map(float, r)] for c, r in zip(clip_ids, scores)]


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
    `"video_path"` (relative to `video_dir`) and `"query_id"`; `"absent": true` (and no moments) for a sentence known
    not to occur in the video."""
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
                    absent=bool(record.get("absent", False)),
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
    if query.absent and query.moments_s:
        stats.dropped["absent query with moments"] += 1
        return
    if query.absent:
        moments = []
        stats.absent += 1
    elif query.moments_s is None:
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
            "saliency_s": [],
            "absent": [],
        },
    )
    row["sentences"].append(sentence)
    row["query_ids"].append(query.query_id)
    row["spans_s"].append(moments)
    row["saliency_s"].append(query.ratings_s or [])
    row["absent"].append(query.absent)


DATASET_FEATURES = datasets.Features(
    {
        "video_id": datasets.Value("string"),
        "video_path": datasets.Value("string"),
        "duration_s": datasets.Value("float64"),
        "sentences": datasets.Sequence(datasets.Value("string")),
        "query_ids": datasets.Sequence(datasets.Value("string")),
        "spans_s": datasets.Sequence(datasets.Sequence(datasets.Sequence(datasets.Value("float64")))),
        "saliency_s": datasets.Sequence(datasets.Sequence(datasets.Sequence(datasets.Value("float64")))),
        "absent": datasets.Sequence(datasets.Value("bool")),
    }
)
PER_QUERY_COLUMNS = ("sentences", "query_ids", "spans_s", "saliency_s", "absent")


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
        `datasets.Dataset` with columns video_id, video_path, duration_s, sentences, query_ids, spans_s and
        saliency_s (seconds; the module docstring).
        The reader's `AnnotationStats` is logged; use `read_annotations` to get it.
    """
    rows, _ = read_annotations(path, format, video_dir, durations, drop_duplicates)
    return rows_to_dataset(rows)


def rows_to_dataset(rows: list[dict]) -> datasets.Dataset:
    """`read_annotations` rows -> a `datasets.Dataset` with the fixed schema `DATASET_FEATURES` (one row per video);
    rows built elsewhere without `saliency_s` get none."""
    defaults = {
        "saliency_s": lambda row: [[] for _ in row["sentences"]],
        "absent": lambda row: [False] * len(row["sentences"]),
    }
    rows = [{**{k: make(row) for k, make in defaults.items() if k not in row}, **row} for row in rows]
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
                for name in PER_QUERY_COLUMNS:
                    if name in batch:
                        out[name].append([batch[name][i][q]])
        return out

    return dataset.map(split, batched=True, features=dataset.features)


__all__ = [
    "FORMATS",
    "AnnotationStats",
    "read_annotations",
    "load_annotations",
    "load_durations",
    "explode_queries",
    "rows_to_dataset",
]
