"""Does the input pipeline starve a GPU? Videos per second per CPU core through a real DataLoader, per reading path,
against what a GPU consumes.

    python benchmarks/input_pipeline.py --json benchmarks/results/input_pipeline.json
    python benchmarks/input_pipeline.py --quick          # shorter files, fewer samples (the test's settings)

Files: Charades-like (480x270, 30 fps, 30 s, keyframe every 250 frames, as camera files), ActivityNet-like (1280x720,
30 fps, 150 s, keyframe every 250) generated with PyAV, and `../shared/data/real/videos/charades.mp4` (real
Charades, 480x270, 15 fps) when present. Each sample is what training asks for: 32 frames jittered over the whole
video ("random" spacing), resized and centre-cropped to 224 px and normalised by the VideoMAE processor
(`FrameTransform`, the training transform).

Paths (`PATHS`):
- full-size decode, float32: the path before #28, every frame converted to RGB at full resolution, resized, then
  normalised to float32 on the CPU;
- decode at 224, uint8: frames decoded straight to the short side the processor wants, resized and cropped, uint8
  through the DataLoader (normalised on the accelerator: `run_grounding.py`'s default now);
- prepared store, float32 / uint8: frames read from a `python -m modeling_tsgv.prepare` store (JPEG frames on a
  256-frame grid at 224 px; no video decoding); its one-time preparation cost is printed too.

Each path runs through `torch.utils.data.DataLoader` with 1 and 2 worker processes (one decoder thread and one torch
thread each); videos/s per core = videos/s / workers. MB/s counts the pixel_values bytes crossing the DataLoader.
"cores for ..." is how many cores at that rate feed a GPU step of HF VideoMAE on one H200 in bf16
(docs/benchmarks.md's anchor): ViT-B with adapters ~300 videos/s of 32 frames, ViT-B full fine-tuning ~128, ViT-g
with adapters ~40.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import datasets
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from modeling_tsgv.data import FrameTransform  # noqa: E402
from modeling_tsgv.prepare import PreparedStore, prepare  # noqa: E402
from modeling_tsgv.processing_tsgv import TSGVProcessor  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))
from gpu_smoke import write_video  # noqa: E402

PATHS = {  # name: (decode straight to the short side, read from the prepared store, uint8 through the DataLoader)
    "full-size decode, float32 (before #28)": (False, False, False),
    "decode at 224, uint8": (True, False, True),
    "prepared store, float32": (True, True, False),
    "prepared store, uint8 (run_grounding --prepared_dir)": (True, True, True),
}
GPU_RATES = {"ViT-B scada": 300, "ViT-B full": 128, "ViT-g scada": 40}  # videos of 32 frames per second, one H200
REAL_CHARADES = REPO.parent / "shared" / "data" / "real" / "videos" / "charades.mp4"


def make_files(folder: Path, quick: bool) -> dict[str, list[str]]:
    """File kind -> video paths (generated once into `folder`)."""
    kinds = {
        "charades-like": ((480, 270), 8 if quick else 30, 30, 2 if quick else 4),
        "activitynet-like": ((1280, 720), 20 if quick else 150, 30, 1 if quick else 2),
    }
    files = {}
    for kind, ((width, height), seconds, fps, count) in kinds.items():
        files[kind] = []
        for i in range(count):
            path = folder / f"{kind}-{i}.mp4"
            if not path.exists():
                write_video(str(path), width, height, seconds, fps, seed=i)
            files[kind].append(str(path))
    if REAL_CHARADES.exists():
        files["real charades"] = [str(REAL_CHARADES)]
    return files


def rows_of(paths: list[str], samples: int) -> datasets.Dataset:
    """`samples` training rows cycling over `paths` (each read as a fresh jittered sampling)."""
    import av

    durations = {}
    for path in paths:
        with av.open(path) as container:
            stream = container.streams.video[0]
            durations[path] = float(stream.duration * stream.time_base)
    picks = [paths[i % len(paths)] for i in range(samples)]
    return datasets.Dataset.from_dict(
        {
            "video_id": [Path(p).stem for p in picks],
            "video_path": picks,
            "duration_s": [durations[p] for p in picks],
            "query_ids": [[f"{i}"] for i in range(samples)],
        }
    )


def _one_thread(_worker_id):
    from modeling_tsgv.video import set_decoder_threads

    torch.set_num_threads(1)
    set_decoder_threads(1)


def measure(rows: datasets.Dataset, transform: FrameTransform, workers: int) -> dict:
    """videos/s, videos/s per core and MB/s of pixel_values through a DataLoader with `workers` processes."""
    rows = rows.with_transform(transform)
    loader = torch.utils.data.DataLoader(
        rows, batch_size=1, num_workers=workers, collate_fn=lambda batch: batch[0]["pixel_values"],
        worker_init_fn=_one_thread, prefetch_factor=2,
    )  # fmt: skip
    iterator = iter(loader)
    first = next(iterator)  # workers started and warm
    start, count, nbytes = time.perf_counter(), 0, 0
    for pixels in iterator:
        count, nbytes = count + 1, nbytes + pixels.numel() * pixels.element_size()
    seconds = time.perf_counter() - start
    assert first.shape[-2:] == (224, 224) and first.dtype in (torch.uint8, torch.float32)
    return {
        "workers": workers,
        "videos_per_s": count / seconds,
        "videos_per_s_per_core": count / seconds / workers,
        "mb_per_s": nbytes / seconds / 2**20,
    }


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short files and few samples")
    parser.add_argument("--samples", type=int, help="samples per measurement (default 24, quick 6)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--work", help="folder for the generated files and the store (kept between runs)")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="tsgv-input-"))
    work.mkdir(parents=True, exist_ok=True)
    samples = args.samples or (6 if args.quick else 24)
    files = make_files(work, args.quick)
    processor = TSGVProcessor.from_text_encoder(image_size=224).video_processor
    all_paths = {Path(p).stem: p for paths in files.values() for p in paths}
    start = time.perf_counter()
    prepare(work / "store", all_paths, 224, 256, progress=False, num_workers=max(args.workers))
    prepare_s = time.perf_counter() - start
    store = PreparedStore(work / "store")
    rows_out = []
    for kind, paths in files.items():
        rows = rows_of(paths, samples)
        for path_name, (decoded_size, prepared, uint8) in PATHS.items():
            transform = FrameTransform(processor, 32, "random", "pyav", seed=0, prepared=store if prepared else None)
            transform.uint8 = uint8
            if not decoded_size:
                transform.short_side = None
            for workers in args.workers:
                row = {"kind": kind, "path": path_name, **measure(rows, transform, workers)}
                rows_out.append(row)
                print(json.dumps(row), flush=True)
    print(table(rows_out, prepare_s, len(all_paths), max(args.workers)))
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows_out, "prepare_s": prepare_s, "videos": len(all_paths)}))
    return rows_out


def table(rows: list[dict], prepare_s: float, videos: int, workers: int) -> str:
    rates = " | ".join(f"cores for {name} ({rate}/s)" for name, rate in GPU_RATES.items())
    lines = [
        f"file kind | path | workers | videos/s | videos/s per core | MB/s | {rates}",
        "---|---|---:|---:|---:|---:|" + "---:|" * len(GPU_RATES),
    ]
    for r in rows:
        cores = " | ".join(f"{rate / r['videos_per_s_per_core']:.0f}" for rate in GPU_RATES.values())
        lines.append(
            f"{r['kind']} | {r['path']} | {r['workers']} | {r['videos_per_s']:.1f} | {r['videos_per_s_per_core']:.1f}"
            f" | {r['mb_per_s']:.0f} | {cores}"
        )
    lines.append(f"\npreparing the store: {videos} videos in {prepare_s:.1f} s with {workers} processes")
    return "\n".join(lines)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
