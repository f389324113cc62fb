"""Speed and memory of a whole tsgv training step, against the bare VideoMAE doing the same backbone work.

    python benchmarks/train_step.py                                    # CPU-sized: tiny, 112 px, 16 frames
    python benchmarks/train_step.py --sizes vit-b vit-l --image-size 224 --frames 64 --videos 4 --bf16 --compile
    python benchmarks/train_step.py --tuning scada --queries 1 2.3 3.7 8 --json benchmarks/results/train_step.json

One row per (size, backbone_tuning, queries per video). "tsgv" times the full step: text encoder (frozen, as in
training), the per-video blocks, the per-query blocks with their adapters, pooling, head, loss, backward and an AdamW
step on what trains. "bare" times `VideoMAEModel` doing the same backbone work once per video, in the same run:
forward without grad through the blocks that are frozen and need no input gradient, forward + backward through the
blocks whose parameters train or that gradients must cross to reach the adapters / trained blocks below the top.
ratio = tsgv / bare at the same clips, so a row reads as the overhead of tsgv's extras and of running the top blocks
once per query. Random-init weights: timings do not depend on them.

FLOPs are counted from the config (multiply-add = 2 FLOPs; per token and block: 8 D^2 for q/k/v/output projections,
4 D I for the MLP, 4 N D for attention scores and the weighted sum, N tokens per clip), forward once per video for
the shared blocks and once per query above the first adapter, backward = 2x forward where parameters train and 1x
where only input gradients are needed; text encoder, pooling and head are left out (small). MFU = achieved FLOP/s /
--peak-tflops (no default on CPU).

Rows are printed as a markdown table; --json writes one object per row.
"""

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch
from transformers import VideoMAEConfig, VideoMAEModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from modeling_tsgv import TSGVForGrounding, default_text_encoder_path  # noqa: E402
from modeling_tsgv.processing_tsgv import TSGVProcessor  # noqa: E402
from run_grounding import BACKBONE_SIZES, random_backbone_config  # noqa: E402  (the training script's sizes)

SENTENCES = ["the red ball rolls to the left", "a blue square jumps twice", "the green star spins slowly"]


def query_counts(videos: int, per_video: float) -> list[int]:
    """Queries per video with the given mean (e.g. 2.3 over 10 videos: 3,2,2,3,2,2,3,2,2,2), at least 1 each."""
    total = max(videos, round(per_video * videos))
    return [total // videos + (1 if i < total % videos else 0) for i in range(videos)]


def step_flops(cfg: VideoMAEConfig, clips: int, queries: float, first_trained: int, first_query: int | None) -> float:
    """Approximate FLOPs of one training step's backbone work (see the module docstring). Blocks above the first
    adapter block run once per query; `first_trained`: the lowest block whose parameters train (num blocks: none)."""
    tokens = (cfg.image_size // cfg.patch_size) ** 2 * (cfg.num_frames // cfg.tubelet_size)
    width, mlp = cfg.hidden_size, cfg.intermediate_size
    per_block = 2 * tokens * (4 * width * width + 2 * width * mlp + 2 * tokens * width)  # forward, one clip
    total = 0.0
    for block in range(cfg.num_hidden_layers):
        above_adapter = first_query is not None and block > first_query
        runs = clips * (queries if above_adapter else 1)
        backward = 2 if block >= first_trained else (1 if above_adapter else 0)
        total += runs * per_block * (1 + backward)
    return total


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_it(fn, steps: int, device) -> float:
    """Median seconds of `fn()` over `steps` runs after one warm-up."""
    fn()
    times = []
    for _ in range(steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def build(args, size: str, tuning: str, device, dtype):
    cfg = random_backbone_config(size, args.image_size, args.clip_frames)
    cfg._attn_implementation = args.attn
    video = VideoMAEModel(cfg)
    overrides = {"num_frames": args.frames, "backbone_tuning": tuning}
    if args.first_adapter is not None:
        overrides["scada_layers"] = list(range(args.first_adapter, cfg.num_hidden_layers))
    model = TSGVForGrounding.from_backbones(video=video, text=default_text_encoder_path(), **overrides)
    if args.checkpointing:
        model.gradient_checkpointing_enable()
    return model.to(device, dtype).train(), cfg


def run_row(args, size: str, tuning: str, per_video: float, device, dtype) -> dict:
    torch.manual_seed(0)
    model, cfg = build(args, size, tuning, device, dtype)
    processor = TSGVProcessor.from_text_encoder(image_size=args.image_size)
    counts = query_counts(args.videos, per_video)
    sentences = [SENTENCES[i % len(SENTENCES)] + f" {i}" for i in range(sum(counts))]
    text = processor(text=sentences, query_video_index=[v for v, n in enumerate(counts) for _ in range(n)])
    batch = {
        "pixel_values": torch.randn(args.videos, args.frames, 3, args.image_size, args.image_size, dtype=dtype),
        "input_ids": text["input_ids"],
        "attention_mask": text["attention_mask"],
        "query_video_index": torch.tensor([v for v, n in enumerate(counts) for _ in range(n)]),
        "labels": torch.tensor([[0.2, 0.6]] * sum(counts), dtype=dtype),
    }
    batch = {k: v.to(device) for k, v in batch.items()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)
    forward = torch.compile(model) if args.compile else model

    def tsgv_step():
        optimizer.zero_grad(set_to_none=True)
        forward(**batch).loss.backward()
        optimizer.step()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    tsgv_s = time_it(tsgv_step, args.steps, device)
    tsgv_memory_mb = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else peak_rss_mb()

    # the bare backbone doing the same work once per video
    blocks = cfg.num_hidden_layers
    first_query = model.first_query_block
    trained = {"full": 0, "partial": min(model.config.partial_layers or [blocks]), "scada": blocks, "frozen": blocks}
    first_trained = trained[tuning]
    # no grad up to the first adapter block (its adapter sits on its output) or the first trained block
    first_grad = min(first_trained, first_query + 1 if first_query is not None else blocks)
    bare = model.video_model
    clips = args.frames // args.clip_frames
    frames = batch["pixel_values"].reshape(args.videos * clips, args.clip_frames, 3, args.image_size, args.image_size)

    def bare_step():
        with torch.no_grad():
            hidden = bare.embeddings(frames, None)
            for block in bare.encoder.layer[:first_grad]:
                hidden = block(hidden)
        if first_grad < blocks:
            hidden = hidden.detach().requires_grad_(True)
            with torch.enable_grad():
                for block in bare.encoder.layer[first_grad:]:
                    hidden = block(hidden)
                hidden.float().square().mean().backward()

    bare_s = time_it(bare_step, args.steps, device)
    flops = step_flops(cfg, args.videos * clips, sum(counts) / args.videos, first_trained, first_query)
    row = {
        "size": size,
        "tuning": tuning,
        "queries_per_video": per_video,
        "videos": args.videos,
        "frames": args.frames,
        "image_size": args.image_size,
        "dtype": str(dtype).replace("torch.", ""),
        "compile": args.compile,
        "checkpointing": args.checkpointing,
        "attn": args.attn,
        "trainable_params": sum(p.numel() for p in trainable),
        "tsgv_s_per_step": tsgv_s,
        "bare_s_per_step": bare_s,
        "ratio": tsgv_s / bare_s,
        "clips_per_s": args.videos * clips / tsgv_s,
        "queries_per_s": sum(counts) / tsgv_s,
        "peak_memory_mb": tsgv_memory_mb,
        "memory_kind": "cuda max allocated" if device.type == "cuda" else "process max RSS (all rows so far)",
        "gflop_per_step": flops / 1e9,
        "achieved_tflops": flops / tsgv_s / 1e12,
    }
    if args.peak_tflops:
        row["mfu"] = row["achieved_tflops"] / args.peak_tflops
    return row


def per_query_slope(rows: list[dict]) -> list[str]:
    """Least-squares seconds per extra query per video, for each (size, tuning) with several query counts."""
    lines = []
    for key in sorted({(r["size"], r["tuning"]) for r in rows}):
        points = [(r["queries_per_video"], r["tsgv_s_per_step"]) for r in rows if (r["size"], r["tuning"]) == key]
        if len(points) < 2:
            continue
        mean_q = sum(q for q, _ in points) / len(points)
        mean_s = sum(s for _, s in points) / len(points)
        slope = sum((q - mean_q) * (s - mean_s) for q, s in points) / sum((q - mean_q) ** 2 for q, _ in points)
        lines.append(f"{key[0]} {key[1]}: +{slope:.3f} s per step for each extra query per video")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["tiny"], choices=list(BACKBONE_SIZES))
    parser.add_argument("--tuning", nargs="+", default=["frozen", "partial", "full", "scada"])
    parser.add_argument("--queries", nargs="+", type=float, default=[1, 2.3, 3.7, 8], help="queries per video")
    parser.add_argument("--videos", type=int, default=2)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--clip-frames", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--first-adapter", type=int, help="lowest SCADA block (default: top half)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--checkpointing", action="store_true")
    parser.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"])
    parser.add_argument("--peak-tflops", type=float, help="the device's peak for MFU (e.g. 989 for H100/H200 bf16)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", help="write the rows here (one JSON object per row, a list)")
    args = parser.parse_args(argv)
    device, dtype = torch.device(args.device), torch.bfloat16 if args.bf16 else torch.float32
    rows = []
    for size in args.sizes:
        for tuning in args.tuning:
            for per_video in args.queries if tuning in ("scada",) else args.queries[:1]:
                rows.append(run_row(args, size, tuning, per_video, device, dtype))
                r = rows[-1]
                print(
                    f"{size} {tuning} q={per_video:g}: {r['tsgv_s_per_step']:.3f} s/step, bare {r['bare_s_per_step']:.3f},"
                    f" ratio {r['ratio']:.2f}",
                    file=sys.stderr,
                    flush=True,
                )
    header = "| size | tuning | q/video | trainable | tsgv s/step | bare s/step | ratio | clips/s | queries/s | "
    header += "peak MB | GFLOP/step | TFLOP/s |" + (" MFU |" if args.peak_tflops else "")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for r in rows:
        cells = [r["size"], r["tuning"], f"{r['queries_per_video']:g}", f"{r['trainable_params']:,d}"]
        cells += [f"{r['tsgv_s_per_step']:.3f}", f"{r['bare_s_per_step']:.3f}", f"{r['ratio']:.2f}"]
        cells += [f"{r['clips_per_s']:.1f}", f"{r['queries_per_s']:.1f}", f"{r['peak_memory_mb']:.0f}"]
        cells += [f"{r['gflop_per_step']:.1f}", f"{r['achieved_tflops']:.3f}"]
        if args.peak_tflops:
            cells.append(f"{r['mfu']:.1%}")
        print("| " + " | ".join(cells) + " |")
    for line in per_query_slope(rows):
        print(line)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
