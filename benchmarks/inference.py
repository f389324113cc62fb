"""Inference cost of the grounding pipeline: multi-query reuse, where the time goes, and memory on long videos.

    python benchmarks/inference.py                               # ViT-B, 224 px, 32 frames, 1 / 4 / 16 queries
    python benchmarks/inference.py --first_adapter 3 6 9          # how the shared / per-query split moves
    python benchmarks/inference.py --size vit-s --memory          # peak memory: 1-minute vs 30-minute video
    python benchmarks/inference.py --size vit-s --batching        # batch_size 1/4/8 x decode_ahead, a long video

A random-init VideoMAE of the chosen size (timings do not depend on the weights) with SCADA adapters on blocks
first_adapter..last and the offline MiniLM text encoder, run through `pipeline("temporal-sentence-grounding")` on a
generated H.264 video. Each row is one pipeline call (or the sum of several), split as the pipeline reports it
(`last_timings_s`): decoding (+ resize / normalise), shared blocks (embeddings and the blocks up to the first adapter,
once per clip), per-query (text encoder, adapter blocks, pooling, head, all queries). Prints markdown tables.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from transformers import AutoConfig, AutoModel, VideoMAEModel

from modeling_tsgv import TSGVForGrounding, TSGVProcessor, default_text_encoder_path
from modeling_tsgv.configuration_tsgv import BACKBONE_SIZES, random_backbone_config
from modeling_tsgv.pipeline_tsgv import TemporalSentenceGroundingPipeline, plan_windows

QUERIES = [
    f"the {colour} {thing} {action}"
    for colour, thing, action in zip(
        ["red", "blue", "green", "white"] * 4,
        ["ball", "square", "star", "person", "cup", "door", "dog", "car"] * 2,
        ["rolls to the left", "jumps twice", "spins slowly", "walks in", "falls over", "opens", "sits down", "stops"]
        * 2,
    )
]


def write_video(path: str, duration_s: float, fps: int, size=(240, 320)) -> str:
    """An H.264 mp4 of a bright square moving over a dark gradient (compresses well, decodes like real video)."""
    import av

    height, width = size
    background = np.linspace(20, 80, width, dtype=np.uint8)[None, :, None].repeat(height, 0).repeat(3, 2)
    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(int(duration_s * fps)):
            frame = background.copy()
            x = int((index * 3) % (width - 40))
            y = int((height - 40) * (0.5 + 0.4 * np.sin(index / fps)))
            frame[y : y + 40, x : x + 40] = 230
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            video_frame.pts = index
            container.mux(stream.encode(video_frame))
        container.mux(stream.encode())
    return path


def build_pipeline(
    size: str,
    image_size: int,
    num_frames: int,
    first_adapter: int | None,
    window_s: float,
    text_model: str | None = None,
    device: str = "cpu",
    dtype: str = "float32",
):
    """A random-init tsgv model with MiniLM (or `text_model`: a folder with weights, or with only config + tokenizer
    for a random-init text encoder of that shape), wrapped in the grounding pipeline (no files written)."""
    backbone = VideoMAEModel(random_backbone_config(size, image_size, 16))
    blocks = backbone.config.num_hidden_layers
    first = blocks // 2 if first_adapter is None else first_adapter
    text_model = text_model or default_text_encoder_path()
    has_weights = any(name.endswith((".safetensors", ".bin")) for name in os.listdir(text_model))
    text = text_model if has_weights else AutoModel.from_config(AutoConfig.from_pretrained(text_model))
    model = TSGVForGrounding.from_backbones(
        video=backbone,
        text=text,
        num_frames=num_frames,
        scada_layers=list(range(first, blocks)),
        inference_window_s=window_s,
    )
    processor = TSGVProcessor.from_text_encoder(text_model, image_size=image_size)
    model = model.to(getattr(torch, dtype)).eval()
    return TemporalSentenceGroundingPipeline(model=model, processor=processor, device=device)


def timed(pipe, video: str, queries: list[str], calls: int, query_batch_size: int | None = None) -> dict:
    """Sum of `last_timings_s` over `calls` pipeline calls, each with `queries`."""
    total = {"decode": 0.0, "shared": 0.0, "per_query": 0.0, "total": 0.0}
    for _ in range(calls):
        pipe(video, queries=queries, query_batch_size=query_batch_size)
        for key in total:
            total[key] += pipe.last_timings_s[key]
    return total


def row(label: str, t: dict) -> str:
    return f"| {label} | {t['decode']:.2f} | {t['shared']:.2f} | {t['per_query']:.2f} | {t['total']:.2f} |"


HEADER = "| queries x calls | decoding (s) | shared blocks (s) | per-query (s) | total (s) |\n|---|---|---|---|---|"


def reuse_table(args, video: str):
    for first in args.first_adapter or [None]:
        pipe = build_pipeline(
            args.size, args.image_size, args.num_frames, first, args.window_s, args.text_model, args.device, args.dtype
        )
        blocks = BACKBONE_SIZES[args.size]["num_hidden_layers"]
        first_block = pipe.model.backbone.first_query_block
        print(
            f"\n{args.size}, {args.image_size} px, {args.num_frames} frames, adapters on blocks {first_block}..{blocks - 1}"
            f" (blocks 0..{first_block} shared), {args.duration_s:.0f} s video, query_batch_size {args.query_batch_size or 'default'},"
            f" {args.device} {args.dtype}, torch threads {torch.get_num_threads()}"
        )
        timed(pipe, video, QUERIES[:1], 1)  # warm-up
        print(HEADER)
        results = {}
        for count in args.queries:
            results[count] = timed(pipe, video, QUERIES[:count], 1, args.query_batch_size)
            print(row(f"{count} x 1", results[count]), flush=True)
        most = max(args.queries)
        if args.skip_single_calls and 1 in results:
            ratio = results[most]["total"] / (most * results[1]["total"])
            print(f"\n{most} queries in one call = {ratio:.2f} x {most} times the one-query call (estimated, not run)")
        if not args.skip_single_calls:
            singles = timed(pipe, video, QUERIES[:1], most)
            print(row(f"1 x {most}", singles))
            ratio = results[most]["total"] / singles["total"]
            print(
                f"\n{most} queries in one call: {results[most]['total']:.2f} s = {ratio:.2f} x the {most} one-query "
                f"calls ({singles['total']:.2f} s); target <= 0.5: {'met' if ratio <= 0.5 else 'NOT met'}"
            )


MEMORY_CHILD = """
import json, resource, sys, time
sys.path.insert(0, {bench!r})
import inference as bench
pipe = bench.build_pipeline({size!r}, {image_size}, {num_frames}, None, {window_s}, {text_model!r}, {device!r}, {dtype!r})
loaded_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
start = time.perf_counter()
pipe({video!r}, queries=bench.QUERIES[:4])
import torch
gpu_mb = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else float("nan")
print(json.dumps({{"wall_s": time.perf_counter() - start, "loaded_mb": loaded_mb, "gpu_peak_mb": gpu_mb,
                   "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def memory_table(args, folder: str):
    """Peak RSS of a fresh process grounding 4 queries in a 1-minute and a 30-minute video."""
    print(
        f"\nmemory: {args.size}, {args.image_size} px, {args.num_frames} frames per window of <= {args.window_s:.0f} s,"
        " 4 queries, 320x240 10 fps H.264, one fresh process per video"
    )
    print("| video | windows | frames decoded | wall (s) | RSS after loading (MB) | peak RSS (MB) | peak GPU (MB) |")
    print("|---|---|---|---|---|---|---|")
    for minutes in (1, 30):
        video = write_video(os.path.join(folder, f"memory_{minutes}min.mp4"), 60 * minutes, fps=10)
        plan = plan_windows(60.0 * minutes, args.num_frames, args.window_s, 0.5, 16)
        settings = ("size", "image_size", "num_frames", "window_s", "text_model", "device", "dtype")
        bench = os.path.dirname(os.path.abspath(__file__))
        code = MEMORY_CHILD.format(bench=bench, video=video, **{name: getattr(args, name) for name in settings})
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        result = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"| {minutes} min | {plan.num_windows} | {plan.num_grid_frames} | {result['wall_s']:.1f} | "
            f"{result['loaded_mb']:.0f} | {result['peak_mb']:.0f} | {result['gpu_peak_mb']:.0f} |",
            flush=True,
        )


def batching_table(args, folder: str):
    """Several short videos per forward pass (`batch_size`) and decoding ahead (`decode_ahead`) against the
    one-at-a-time path: the same videos and queries, each row one pipeline call over all of them."""
    pipe = build_pipeline(
        args.size, args.image_size, args.num_frames, None, args.window_s, args.text_model, args.device, args.dtype
    )
    shorts = [write_video(os.path.join(folder, f"short_{i}.mp4"), 20.0 + i, fps=30) for i in range(args.videos)]
    long_video = write_video(os.path.join(folder, "long.mp4"), args.duration_s, fps=30)
    queries = QUERIES[: args.batch_queries]
    print(
        f"\nbatching and decoding ahead: {args.size}, {args.image_size} px, {args.num_frames} frames, "
        f"{len(queries)} queries per video, {args.device} {args.dtype}, torch threads {torch.get_num_threads()}"
    )
    print("| videos | batch_size | decode_ahead | waiting for frames (s) | shared (s) | per-query (s) | total (s) |")
    print("|---|---:|---|---:|---:|---:|---:|")
    pipe(shorts[:1], queries=queries)  # warm-up
    cases = [(shorts, f"{len(shorts)} x 20 s", size, ahead) for size in args.batch_sizes for ahead in (False, True)]
    cases += [([long_video], f"1 x {args.duration_s:.0f} s", 1, ahead) for ahead in (False, True)]
    for inputs, label, batch_size, ahead in cases:
        pipe(inputs, queries=queries, batch_size=batch_size, decode_ahead=ahead)
        t = pipe.last_timings_s
        print(
            f"| {label} | {batch_size} | {'yes' if ahead else 'no'} | {t['decode']:.2f} | {t['shared']:.2f} | "
            f"{t['per_query']:.2f} | {t['total']:.2f} |",
            flush=True,
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="vit-b", choices=sorted(BACKBONE_SIZES))
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--num_frames", type=int, default=32)
    parser.add_argument("--queries", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--first_adapter", type=int, nargs="+", help="first SCADA block (default: half way)")
    parser.add_argument("--duration_s", type=float, default=60.0, help="length of the timing video")
    parser.add_argument("--window_s", type=float, default=150.0, help="the model's inference_window_s")
    parser.add_argument("--query_batch_size", type=int, help="queries per forward pass (default: the pipeline's)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument(
        "--text_model", help="text encoder folder (default: offline MiniLM); config-only = random init"
    )
    parser.add_argument("--skip_single_calls", action="store_true", help="skip the 16 one-query calls")
    parser.add_argument("--memory", action="store_true", help="measure peak memory on 1- and 30-minute videos")
    parser.add_argument(
        "--batching", action="store_true", help="batch_size / decode_ahead against one video at a time"
    )
    parser.add_argument("--videos", type=int, default=8, help="short videos for --batching")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 4, 8], help="for --batching")
    parser.add_argument("--batch_queries", type=int, default=2, help="queries per video for --batching")
    args = parser.parse_args()
    if max(args.queries) > len(QUERIES):
        parser.error(f"at most {len(QUERIES)} queries")
    with tempfile.TemporaryDirectory() as folder:
        if args.memory:
            memory_table(args, folder)
            return
        if args.batching:
            batching_table(args, folder)
            return
        start = time.perf_counter()
        video = write_video(os.path.join(folder, "timing.mp4"), args.duration_s, fps=30)
        print(f"wrote a {args.duration_s:.0f} s 320x240 30 fps video in {time.perf_counter() - start:.1f} s")
        reuse_table(args, video)


if __name__ == "__main__":
    main()
