"""GPU smoke run of the README's real-data command: does it train, how fast, how much memory, how long it waits for data.

    python benchmarks/gpu_smoke.py --json benchmarks/results/gpu_smoke.json      # on a machine with a GPU (~8 min)
    python benchmarks/gpu_smoke.py --cpu                                          # the same stages, tiny, on the CPU

What it runs, on generated Charades-like videos (H.264, 30 s, half at 480x270 and half at 854x480, 24 fps, long
GOPs as camera files have; Charades-STA annotation files and a Charades-style durations CSV, so the real
`--dataset charades-sta` reader is used):

1. `torchrun --nproc_per_node 1 run_grounding.py --dataset charades-sta ...` with the README's shape: a random-init
   ViT-B-size VideoMAE (`--video_model vit-b`: no pretrained weights are needed to time it), 64 frames at 224 px in
   clips of 16, 8 videos per step, bf16, SCADA, the frozen text encoder's states served by the collator; frames are
   decoded every step (`--cache_video_states no`, as on the real Charades-STA, whose states would exceed the cache
   cap), validation held out from train, test scored through the pipeline; `--steps` steps.
2. The same reading a store made by `python -m modeling_tsgv.prepare` (`--prepared_dir`: no video decoding).
3. The same as 1 under DeepSpeed ZeRO-3 (`--deepspeed ds_configs/zero3.json`).
4. The grounding pipeline on one video of the test split, with the model of run 1.

Printed: a table with, per run, the median seconds per optimiser step, the peak accelerator memory, the share of the
training loop spent waiting for batches (`train_data_wait_share`, from `TSGVTrainer`), the wall time, and for the
pipeline its stage timings. `--cpu`: the same stages with a tiny backbone, 32-px frames, a few steps and small
videos (what tests/test_gpu_smoke.py runs, so the script is known to work before a GPU is lent).
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SENTENCES = [
    "person opens the door", "a person turns on the light", "person sits down on a chair", "someone drinks from a cup",
    "the person walks to the window", "a person puts a book on the table", "person closes the laptop",
    "the person picks up a towel",
]  # fmt: skip

GPU = {  # the README's Charades-STA shape, with a random-init ViT-B
    "sizes": [(480, 270), (854, 480)], "duration_s": 30.0, "fps": 24, "videos": 40, "test_videos": 8,
    "model": ["--video_model", "vit-b", "--image_size", "224", "--clip_frames", "16", "--num_frames", "64"],
    "batch": ["--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "8", "--dataloader_num_workers",
              str(min(8, os.cpu_count() or 1))],
    "steps": 50, "zero3_steps": 20, "grid_frames": 256,
}  # fmt: skip
CPU = {
    "sizes": [(96, 54), (128, 72)], "duration_s": 8.0, "fps": 8, "videos": 6, "test_videos": 2,
    "model": ["--video_model", "tiny", "--image_size", "32", "--clip_frames", "4", "--num_frames", "8",
              "--head_hidden_size", "32", "--scada_bottleneck", "8", "--use_cpu"],
    "batch": ["--per_device_train_batch_size", "2", "--per_device_eval_batch_size", "2", "--dataloader_num_workers",
              "0"],
    "steps": 3, "zero3_steps": 2, "grid_frames": 32,
}  # fmt: skip


def write_video(path: str, width: int, height: int, duration_s: float, fps: int, seed: int) -> None:
    """An H.264 mp4 of moving shapes over a noisy, slowly changing background (camera-like: keyframe every 250)."""
    import av

    rng = np.random.default_rng(seed)
    frames = int(duration_s * fps)
    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"g": "250", "preset": "veryfast", "crf": "23"}
        background = rng.integers(40, 200, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
        for k in range(frames):
            image = np.kron(background, np.ones((8, 8, 1), np.uint8))[:height, :width].copy()
            x = int((k / frames) * (width - 40))
            y = int(height / 2 + height / 4 * np.sin(k / fps))
            image[max(0, y - 20) : y + 20, x : x + 40] = (220, 40, 40)
            image = np.clip(image.astype(np.int16) + rng.integers(-12, 12, image.shape), 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def make_dataset(folder: Path, shape: dict) -> dict:
    """Videos, Charades-STA annotation files and a durations CSV in `folder`; returns their paths."""
    videos = folder / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    ids = [f"V{i:04d}" for i in range(shape["videos"])]
    jobs = []
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for i, video_id in enumerate(ids):
            width, height = shape["sizes"][i % len(shape["sizes"])]
            args = (str(videos / f"{video_id}.mp4"), width, height, shape["duration_s"], shape["fps"], i)
            jobs.append(pool.submit(write_video, *args))
        for job in jobs:
            job.result()
    rng = np.random.default_rng(0)
    lines = {"train": [], "test": []}
    for i, video_id in enumerate(ids):
        split = "test" if i >= len(ids) - shape["test_videos"] else "train"
        for q in range(3):  # Charades-STA has 2-3 queries per video
            start = float(rng.uniform(0, shape["duration_s"] * 0.6))
            end = min(shape["duration_s"], start + float(rng.uniform(2, shape["duration_s"] * 0.4)))
            lines[split].append(f"{video_id} {start:.1f} {end:.1f}##{SENTENCES[(i + q) % len(SENTENCES)]}")
    paths = {split: folder / f"charades_sta_{split}.txt" for split in lines}
    for split, path in paths.items():
        path.write_text("\n".join(lines[split]) + "\n")
    durations = folder / "Charades_v1_smoke.csv"
    durations.write_text("id,length\n" + "".join(f"{v},{shape['duration_s']}\n" for v in ids))
    return {"videos": videos, "durations": durations, **paths}


def prepare_store(data: dict, folder: Path, shape: dict) -> Path:
    """`python -m modeling_tsgv.prepare` on the generated dataset (the model's short side); returns the store."""
    size = shape["model"][shape["model"].index("--image_size") + 1]
    command = [
        sys.executable, "-m", "modeling_tsgv.prepare", str(folder), "--dataset", "charades-sta", "--annotations",
        str(data["train"]), str(data["test"]), "--video_dir", str(data["videos"]), "--durations", str(data["durations"]),
        "--short_side", size, "--grid_frames", str(shape["grid_frames"]),
    ]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"prepare: exited with {done.returncode}")
    print(f"prepared {shape['videos']} videos in {time.perf_counter() - start:.0f} s", flush=True)
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_training(name: str, folder: str, data: dict, out: Path, shape: dict, steps: int, extra: list[str]) -> dict:
    """One `torchrun --nproc_per_node 1 run_grounding.py ...` run into `out / folder`; returns its all_results.json
    with the wall time."""
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", "--master_port", str(free_port()),
        str(REPO / "run_grounding.py"), "--dataset", "charades-sta", "--video_dir", str(data["videos"]),
        "--train_file", str(data["train"]), "--test_file", str(data["test"]), "--durations", str(data["durations"]),
        *shape["model"], *shape["batch"], "--bf16", "--cache_video_states", "no", "--max_steps", str(steps),
        "--eval_strategy", "steps", "--eval_steps", str(steps), "--save_strategy", "no",
        "--load_best_model_at_end", "False", "--logging_steps", "10", "--output_dir", str(out / folder), *extra,
    ]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    wall_s = time.perf_counter() - start
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-6000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"{name}: run_grounding.py exited with {done.returncode}")
    results = json.loads((out / folder / "all_results.json").read_text())
    return {"run": name, "wall_s": wall_s, "command": " ".join(command[3:]), **results}


def run_pipeline(model_dir: Path, video: Path, cpu: bool) -> dict:
    """The grounding pipeline on one video (a fresh process, as a user would call it): its stage timings."""
    code = (
        "import json, sys, modeling_tsgv; from transformers import pipeline; modeling_tsgv.register(); "
        f"pipe = pipeline('temporal-sentence-grounding', model={str(model_dir)!r}, device={'cpu' if cpu else 0!r}); "
        f"pipe({str(video)!r}, queries={SENTENCES[:4]!r}); "  # warm-up
        f"answer = pipe({str(video)!r}, queries={SENTENCES[:4]!r}); "
        "import torch; mb = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else float('nan'); "
        "print(json.dumps({'timings_s': pipe.last_timings_s, 'peak_accelerator_memory_mb': mb, "
        "'top1': answer[0][0]}))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stderr[-4000:], file=sys.stderr)
        raise SystemExit(f"pipeline: exited with {done.returncode}")
    return {"run": "pipeline (1 video, 4 queries)", **json.loads(done.stdout.strip().splitlines()[-1])}


def table(rows: list[dict]) -> str:
    lines = [
        "run | s / step (median) | peak accelerator memory | data wait share | wall",
        "---|---:|---:|---:|---:",
    ]
    for row in rows:
        if "timings_s" in row:
            t = row["timings_s"]
            lines.append(
                f"{row['run']} | decode {t['decode']:.2f} s, shared {t['shared']:.2f} s, per-query "
                f"{t['per_query']:.2f} s | {row['peak_accelerator_memory_mb']:,.0f} MB | - | {t['total']:.2f} s"
            )
            continue
        memory = row.get("peak_accelerator_memory_mb", float("nan"))
        lines.append(
            f"{row['run']} | {row['train_seconds_per_step']:.3f} | {memory:,.0f} MB | "
            f"{100 * row['train_data_wait_share']:.0f} % | {row['wall_s']:.0f} s"
        )
    return "\n".join(lines)


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="the CPU dry run: tiny backbone, few steps, small videos")
    parser.add_argument("--work", help="folder for videos and runs (default: a temporary one)")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args(argv)
    shape = CPU if args.cpu else GPU
    work = Path(args.work or tempfile.mkdtemp(prefix="tsgv-gpu-smoke-"))
    start = time.perf_counter()
    data = make_dataset(work / "data", shape)
    print(f"generated {shape['videos']} videos in {time.perf_counter() - start:.0f} s ({work / 'data'})", flush=True)
    runs = work / "runs"
    rows = [run_training("bf16, 1 process", "bf16", data, runs, shape, shape["steps"], [])]
    store = prepare_store(data, work / "prepared", shape)
    prepared = ["--prepared_dir", str(store)]
    rows.append(run_training("bf16, prepared store", "prepared", data, runs, shape, shape["steps"], prepared))
    zero3 = ["--deepspeed", str(REPO / "ds_configs" / "zero3.json")]
    rows.append(run_training("bf16, DeepSpeed ZeRO-3", "zero3", data, runs, shape, shape["zero3_steps"], zero3))
    rows.append(run_pipeline(runs / "bf16", sorted(data["videos"].glob("*.mp4"))[-1], args.cpu))
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
