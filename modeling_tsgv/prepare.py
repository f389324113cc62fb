"""Prepare a dataset once, so training reads frames at GPU rates: each video's frames on a time grid, at the model's
short side, JPEG-encoded, in a `datasets` Arrow store (memory-mapped, shared by every process of a machine).

    python -m modeling_tsgv.prepare outputs/prepared/charades --dataset charades-sta --video_dir /data/Charades_v1_480 \
        --annotations charades_sta_train.txt charades_sta_test.txt --durations Charades_v1_train.csv Charades_v1_test.csv
    python run_grounding.py --dataset charades-sta ... --prepared_dir outputs/prepared/charades

Why this shape: decoding a camera file's 32 jittered frames costs 350-480 ms on one core (long GOPs: every frame
needs its keyframe's group decoded first), while decoding 32 JPEGs of 224 px costs about 15 ms
(benchmarks/input_pipeline.py). Each video keeps `grid_frames` frames (default 256) at the centres of equal segments
of its duration, so a training run's jittered sampling (one random time per segment of `num_frames` segments) still
draws a different frame per epoch: each of its segments holds `grid_frames / num_frames` stored frames. Storage does
not grow with a video's length (about 4 MB per video at 224 px, quality 90).

The store: `<folder>/prepared.json` (the settings; a folder made with other settings is refused, never overwritten)
and shards `<folder>/shard-<n>/` (`Dataset.save_to_disk`, each written under a temporary name and renamed when
complete, so a reader never sees half a shard). A row records the source file's path, size and modification time:
a video whose file changed is prepared again (a new shard; the newest row wins). The command is parallel over the
cores, resumable (finished videos are skipped), and lists the videos it could not read in `failed.json` (tried
again next time). The grounding pipeline keeps reading plain video files.
"""

import argparse
import json
import logging
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import datasets
import numpy as np
import torch

from .files import write_text_atomic
from .video import VideoDecodeError, open_video, sample_times_s, set_decoder_threads

logger = logging.getLogger(__name__)

STORE_VERSION = 1
FEATURES = datasets.Features(
    {
        "video_id": datasets.Value("string"),
        "source_path": datasets.Value("string"),
        "source_size": datasets.Value("int64"),
        "source_mtime_ns": datasets.Value("int64"),
        "duration_s": datasets.Value("float64"),
        "times_s": datasets.Sequence(datasets.Value("float64")),
        "jpeg": datasets.Sequence(datasets.Value("binary")),
        "height": datasets.Value("int32"),
        "width": datasets.Value("int32"),
    }
)


class PreparedStoreError(ValueError):
    """A store folder that cannot be used as asked (other settings, not a store); one line naming the folder."""


def source_stamp(path: str) -> tuple[int, int] | None:
    """(size in bytes, modification time in ns) of a video file; None when it cannot be read."""
    try:
        stat = os.stat(path)
    except (OSError, TypeError):
        return None
    return stat.st_size, stat.st_mtime_ns


def prepare_video(video_id: str, path: str, short_side: int, grid_frames: int, quality: int) -> dict:
    """One store row: the frames shown at the centres of `grid_frames` equal segments of the video, decoded straight
    to `short_side` px and JPEG-encoded at `quality`, with their presentation times (seconds). Raises
    VideoDecodeError naming the file."""
    from torchvision.io import encode_jpeg

    stamp = source_stamp(path)
    if stamp is None:
        raise VideoDecodeError(f"{path}: video file not found")
    with open_video(path, "auto", short_side) as source:
        if not source.duration_s or source.duration_s <= 0:
            raise VideoDecodeError(f"{path}: cannot tell the video's duration")
        targets_s = sample_times_s(source.duration_s, grid_frames, "uniform")
        frames, times_s = zip(*source.frames_at(targets_s))
        duration_s = float(source.duration_s)
    jpeg = [
        encode_jpeg(torch.from_numpy(f).permute(2, 0, 1).contiguous(), quality=quality).numpy().tobytes()
        for f in frames
    ]
    return {
        "video_id": video_id,
        "source_path": str(path),
        "source_size": stamp[0],
        "source_mtime_ns": stamp[1],
        "duration_s": duration_s,
        "times_s": [float(t) for t in times_s],
        "jpeg": jpeg,
        "height": int(frames[0].shape[0]),
        "width": int(frames[0].shape[1]),
    }


def one_thread_per_process() -> None:
    """Initialiser of a pool of worker processes, one per core: each decodes and computes with one thread.

    Also what lets a forked worker run torch at all once its parent has used torch's thread pool: a forked child
    that enters an OpenMP parallel region waits forever on the parent's threads, which it does not have (the
    DataLoader sets one thread in its workers for the same reason). Takes and returns nothing."""
    torch.set_num_threads(1)
    set_decoder_threads(1)


def _prepare_one(job: tuple) -> tuple[str, dict | None, str | None]:
    video_id, path, settings = job
    try:
        return video_id, prepare_video(video_id, path, **settings), None
    except VideoDecodeError as error:
        return video_id, None, str(error)


def store_problem(folder: str | os.PathLike) -> str | None:
    """Why `folder` cannot be read as a prepared store (None: it can), in words naming it; what `PreparedStore` and
    `run_grounding.py --prepared_dir` refuse."""
    if not (Path(folder) / "prepared.json").is_file():
        return f"{folder}: no prepared.json, so not a store made by `python -m modeling_tsgv.prepare`"
    return None


class PreparedStore:
    """A store made by `prepare` (see the module docstring), read lazily: one memory-mapped `datasets.Dataset` per
    shard, and an index video_id -> (shard, row) of the newest row per video.

    Args:
        folder: the store's folder (with `prepared.json`).
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        problem = store_problem(self.folder)
        if problem:
            raise PreparedStoreError(problem)
        settings_path = self.folder / "prepared.json"
        self.settings = json.loads(settings_path.read_text())
        self.shards = [datasets.load_from_disk(str(shard)) for shard in self._shard_folders()]
        self.index: dict[str, tuple[int, int]] = {}
        self._stamps: dict[str, tuple[str, int, int]] = {}
        for number, shard in enumerate(self.shards):
            columns = shard.select_columns(["video_id", "source_path", "source_size", "source_mtime_ns"])
            for row, record in enumerate(columns.to_list()):
                self.index[record["video_id"]] = (number, row)  # later shards are newer
                self._stamps[record["video_id"]] = (
                    record["source_path"], record["source_size"], record["source_mtime_ns"]
                )  # fmt: skip

    def _shard_folders(self) -> list[Path]:
        return sorted(p for p in self.folder.glob("shard-*") if p.is_dir() and not p.name.endswith(".tmp"))

    def __len__(self) -> int:
        return len(self.index)

    def is_current(self, video_id: str, path: str | None = None) -> bool:
        """Whether `video_id` is stored from the file as it is now (same size and modification time; with `path`,
        that file; else the one it was made from)."""
        if video_id not in self._stamps:
            return False
        stored_path, size, mtime = self._stamps[video_id]
        return source_stamp(path or stored_path) == (size, mtime)

    def frames(self, video_id: str, times_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The stored frames shown at `times_s` (seconds; for each target, the last stored frame at or before it, the
        first one before it): ((T, H, W, 3) uint8 RGB, (T,) their presentation times in seconds)."""
        from torchvision.io import decode_jpeg

        shard, row = self.index[video_id]
        table = self.shards[shard].data  # the memory-mapped Arrow table: only the picked JPEGs are copied out
        stored_s = table.column("times_s")[row].values.to_numpy()
        picks = np.clip(np.searchsorted(stored_s, np.asarray(times_s, dtype=np.float64), side="right") - 1, 0, None)
        jpeg = table.column("jpeg")[row].values
        encoded = [torch.frombuffer(bytearray(jpeg[int(i)].as_py()), dtype=torch.uint8) for i in picks]
        decoded = decode_jpeg(encoded)  # list of (3, H, W) uint8
        return torch.stack(decoded).permute(0, 2, 3, 1).numpy(), stored_s[picks]


def prepare(
    folder: str | os.PathLike,
    videos: dict[str, str],
    short_side: int = 224,
    grid_frames: int = 256,
    quality: int = 90,
    num_workers: int | None = None,
    shard_videos: int = 256,
    progress: bool = True,
) -> dict:
    """Prepare `videos` (video_id -> path) into the store `folder`: the videos not stored yet, or whose file changed,
    in parallel (`num_workers` processes, default one per core), written in shards of `shard_videos`.

    Returns: {"prepared": n, "up_to_date": n, "failed": {video_id: error}}. Raises `PreparedStoreError` when the
    folder holds a store made with other settings (it is never overwritten).
    """
    from tqdm.auto import tqdm

    folder = Path(folder)
    settings = {"version": STORE_VERSION, "short_side": short_side, "grid_frames": grid_frames}
    store = open_for_writing(folder, {**settings, "jpeg_quality": quality})
    job = {"short_side": short_side, "grid_frames": grid_frames, "quality": quality}
    todo = [(v, str(p), job) for v, p in videos.items() if not store.is_current(v, str(p))]
    failed, done, pending = {}, 0, []
    numbers = [int(p.name.split("-")[1]) for p in folder.glob("shard-*") if p.name.split("-")[1].isdigit()]
    next_shard = max(numbers, default=-1) + 1
    with ProcessPoolExecutor(
        max_workers=num_workers or os.cpu_count() or 1, initializer=one_thread_per_process
    ) as pool:
        bar = tqdm(total=len(todo), desc=f"preparing {folder.name}", unit="video", disable=not progress)
        for video_id, row, error in pool.map(_prepare_one, todo, chunksize=1):
            bar.update(1)
            if error is not None:
                failed[video_id] = error
                logger.warning(f"skipped {videos[video_id]}: {error}")
                continue
            pending.append(row)
            done += 1
            if len(pending) == shard_videos:
                _write_shard(folder, next_shard, pending)
                next_shard, pending = next_shard + 1, []
        bar.close()
    if pending:
        _write_shard(folder, next_shard, pending)
    write_text_atomic(str(folder / "failed.json"), json.dumps(failed, indent=1))
    summary = {"prepared": done, "up_to_date": len(videos) - len(todo), "failed": failed}
    logger.info(
        f"{folder}: {done:,d} videos prepared, {summary['up_to_date']:,d} already up to date, {len(failed):,d} "
        f"could not be read" + (f" (listed in {folder / 'failed.json'})" if failed else "")
    )
    return summary


def open_for_writing(folder: Path, settings: dict) -> PreparedStore:
    """The store in `folder`, created with `settings` when new; a store with other settings, or a non-empty folder
    that is no store, is refused (`PreparedStoreError`); an interrupted run's unfinished shard is removed."""
    settings_path = folder / "prepared.json"
    if settings_path.is_file():
        existing = json.loads(settings_path.read_text())
        if existing != settings:
            raise PreparedStoreError(
                f"{folder} holds a store prepared with {existing}, not {settings}: give another folder (a store is "
                "never overwritten)"
            )
    elif folder.exists() and any(folder.iterdir()):
        raise PreparedStoreError(f"{folder} is not empty and holds no prepared store: give another folder")
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(str(settings_path), json.dumps(settings, indent=1))
    for stale in folder.glob("shard-*.tmp"):  # an interrupted run's shard in the making
        shutil.rmtree(stale, ignore_errors=True)
    return PreparedStore(folder)


def _write_shard(folder: Path, number: int, rows: list[dict]) -> None:
    """Shard `number` written under a temporary name, then renamed: readers see whole shards only."""
    final = folder / f"shard-{number:05d}"
    temporary = folder / f"shard-{number:05d}.tmp"
    shutil.rmtree(temporary, ignore_errors=True)
    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # the preparing bar says it all
    try:
        datasets.Dataset.from_list(rows, features=FEATURES).save_to_disk(str(temporary))
    finally:
        if bars:
            datasets.enable_progress_bars()
    os.replace(temporary, final)


def videos_of(dataset: str, annotations: list[str], video_dir: str, durations=None) -> dict[str, str]:
    """video_id -> path of every video the annotation files name that exists in `video_dir` (the readers' rules)."""
    from .annotations import read_annotations

    videos = {}
    for path in annotations:
        rows, _ = read_annotations(path, dataset, video_dir=video_dir, durations=durations)
        videos.update((str(row["video_id"]), row["video_path"]) for row in rows if row.get("video_path"))
    return videos


def main(argv=None) -> int:
    """`python -m modeling_tsgv.prepare FOLDER --dataset ... --annotations ... --video_dir ...`; exit status 0, or
    2 for arguments that cannot work (one line on stderr)."""
    from .annotations import FORMATS

    parser = argparse.ArgumentParser(prog="python -m modeling_tsgv.prepare", description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="the store's folder (created; an existing store is completed, never replaced)")
    parser.add_argument("--dataset", required=True, choices=FORMATS)
    parser.add_argument("--annotations", nargs="+", required=True, help="annotation files (all splits to train on)")
    parser.add_argument("--video_dir", required=True)
    parser.add_argument("--durations", nargs="*", help="duration tables for formats without durations")
    parser.add_argument("--short_side", type=int, default=224, help="px (the model's image_size; default 224)")
    parser.add_argument("--grid_frames", type=int, default=256, help="frames kept per video (default 256)")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality 1-100 (default 90)")
    parser.add_argument("--num_workers", type=int, help="processes (default: one per core)")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    for name, value, low, high in (("short_side", args.short_side, 8, 4096), ("grid_frames", args.grid_frames, 1, 10**5),
                                   ("quality", args.quality, 1, 100)):  # fmt: skip
        if not low <= value <= high:
            parser.error(f"--{name} must be in [{low}, {high}], got {value}")
    try:
        videos = videos_of(args.dataset, args.annotations, args.video_dir, args.durations)
        start = time.perf_counter()
        prepare(args.folder, videos, args.short_side, args.grid_frames, args.quality, args.num_workers)
    except (PreparedStoreError, FileNotFoundError, ValueError) as error:
        print(f"prepare: error: {str(error).splitlines()[0]}", file=sys.stderr)
        return 2
    logger.info(f"done in {time.perf_counter() - start:.0f} s")
    return 0


__all__ = [
    "PreparedStore",
    "PreparedStoreError",
    "one_thread_per_process",
    "prepare",
    "prepare_video",
    "store_problem",
    "videos_of",
]

if __name__ == "__main__":
    raise SystemExit(main())
