"""Speed and memory of a whole tsgv training step, against the bare VideoMAE doing the same backbone work.

    python benchmarks/train_step.py                                    # CPU-sized: tiny, 112 px, 16 frames
    python benchmarks/train_step.py --sizes vit-b vit-l --image-size 224 --frames 64 --videos 4 --bf16 --compile
    python benchmarks/train_step.py --tuning scada --queries 1 2.3 3.7 8 --json benchmarks/results/train_step.json

One row per (size, backbone_tuning, queries per video). "tsgv" times the full step: text encoder (frozen: its states
computed once and served with the batch, as `run_grounding.py` trains; `--no-text-cache` runs it every step), the per-video blocks, the per-query blocks with their adapters, pooling, head, loss, backward and an AdamW
step on what trains (fused on CUDA, as the Trainer's default `adamw_torch_fused`; with `--deepspeed CONFIG`, a
single-process DeepSpeed engine built from that config does forward, backward and step). "bare" times `VideoMAEModel` doing the same backbone work once per video, in the same run:
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

    python benchmarks/train_step.py --memory-estimate --sizes vit-g --frames 256 --videos 1 --image-size 224 \
        --clip-frames 16 --bf16 --tuning scada full --queries 1

counts the peak memory of a step without running it (see `estimate_memory`): the ViT-g question on any machine.
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
from modeling_tsgv.configuration_tsgv import BACKBONE_SIZES, random_backbone_config  # noqa: E402
from modeling_tsgv.processing_tsgv import TSGVProcessor  # noqa: E402
from modeling_tsgv.text_states import SentenceStates  # noqa: E402

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


def time_pair(first, second, steps: int, device) -> tuple[float, float]:
    """Median seconds of `first()` and of `second()` over `steps` runs each, after one warm-up of each, the two
    interleaved (first, second, first, ...) so that a drifting machine (clock, other load) affects both alike."""
    first(), second()
    times = ([], [])
    for _ in range(steps):
        for fn, out in zip((first, second), times):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            out.append(time.perf_counter() - start)
    return tuple(sorted(t)[len(t) // 2] for t in times)


def build(args, size: str, tuning: str, text=None):
    """A random-init tsgv model of `size` in training mode and its backbone config; `text`: the text encoder (a model
    object, default the offline MiniLM loaded by path)."""
    cfg = random_backbone_config(size, args.image_size, args.clip_frames)
    cfg._attn_implementation = args.attn
    overrides = {"num_frames": args.frames, "backbone_tuning": tuning}
    if args.first_adapter is not None:
        overrides["scada_layers"] = list(range(args.first_adapter, cfg.num_hidden_layers))
    text = default_text_encoder_path() if text is None else text
    model = TSGVForGrounding.from_backbones(video=VideoMAEModel(cfg), text=text, **overrides)
    if args.checkpointing:
        model.gradient_checkpointing_enable()
    return model.train(), cfg


def grounding_batch(args, counts: list[int], input_ids, attention_mask, dtype) -> dict:
    """Random frames for `args.videos` videos with `counts[v]` queries each (their token ids given), one label each."""
    index = [v for v, n in enumerate(counts) for _ in range(n)]
    return {
        "pixel_values": torch.randn(args.videos, args.frames, 3, args.image_size, args.image_size, dtype=dtype),
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "query_video_index": torch.tensor(index),
        "labels": torch.tensor([[0.2, 0.6]] * len(index), dtype=dtype),
    }


def deepspeed_config(path: str, bf16: bool, width: int) -> dict:
    """The DeepSpeed config at `path` for one process, one micro-batch per step, its "auto" values filled as the
    transformers integration fills them (bucket sizes from the model width)."""
    config = json.loads(Path(path).read_text())
    filled = {
        "train_batch_size": 1,
        "train_micro_batch_size_per_gpu": 1,
        "gradient_accumulation_steps": 1,
        "gradient_clipping": 1.0,
        "reduce_bucket_size": width * width,
        "stage3_prefetch_bucket_size": int(0.9 * width * width),
        "stage3_param_persistence_threshold": 10 * width,
    }

    def fill(node):
        for key, value in node.items():
            if isinstance(value, dict):
                fill(value)
            elif value == "auto":
                node[key] = filled.get(key, bf16 if key == "enabled" else value)

    fill(config)
    config.setdefault("bf16", {})["enabled"] = bf16
    config.setdefault("fp16", {})["enabled"] = False
    return config


def deepspeed_engine(args, model, trainable, device):
    """A one-process DeepSpeed engine around `model` (gloo on CPU, nccl on GPUs) with AdamW on `trainable`."""
    import os

    if device.type == "cpu":
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    import deepspeed

    for key, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29561", "RANK": "0", "WORLD_SIZE": "1"}.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("LOCAL_RANK", "0")
    if not torch.distributed.is_initialized():
        deepspeed.init_distributed(dist_backend="nccl" if device.type == "cuda" else "gloo")
    width = model.config.backbone_config.hidden_size
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)
    engine, *_ = deepspeed.initialize(
        model=model, optimizer=optimizer, config=deepspeed_config(args.deepspeed, args.bf16, width)
    )
    return engine


def run_row(args, size: str, tuning: str, per_video: float, device, dtype) -> dict:
    torch.manual_seed(0)
    model, cfg = build(args, size, tuning)
    model = model.to(device, dtype)
    processor = TSGVProcessor.from_text_encoder(image_size=args.image_size)
    counts = query_counts(args.videos, per_video)
    text = processor(text=[SENTENCES[i % len(SENTENCES)] + f" {i}" for i in range(sum(counts))], return_tensors="pt")
    batch = grounding_batch(args, counts, text["input_ids"], text["attention_mask"], dtype)
    if args.text_cache and not args.deepspeed:  # as run_grounding.py: states computed once, served with the batch
        rows = [ids[mask.bool()].tolist() for ids, mask in zip(text["input_ids"], text["attention_mask"])]
        table = SentenceStates.encode(model.text_model, rows)
        batch["text_states"] = table.lookup(rows, text["input_ids"].shape[1]).to(dtype)
    batch = {k: v.to(device) for k, v in batch.items()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    num_trainable = sum(getattr(p, "ds_numel", p.numel()) for p in trainable)
    bare = model.video_model
    if args.deepspeed:
        # ZeRO-3 partitions the model's weights: the bare comparison gets its own copy of the backbone
        bare = VideoMAEModel(cfg).to(device, dtype).requires_grad_(False)
        engine = deepspeed_engine(args, model, trainable, device)
        forward = torch.compile(engine) if args.compile else engine

        def tsgv_step():
            engine.backward(forward(**batch).loss)
            engine.step()

    else:
        optimizer = torch.optim.AdamW(trainable, lr=1e-4, fused=device.type == "cuda")
        forward = torch.compile(model) if args.compile else model

        def tsgv_step():
            optimizer.zero_grad(set_to_none=True)
            forward(**batch).loss.backward()
            optimizer.step()

    # the bare backbone doing the same work once per video
    blocks = cfg.num_hidden_layers
    first_query = model.backbone.first_query_block
    trained = {"full": 0, "partial": min(model.config.partial_layers or [blocks]), "scada": blocks, "frozen": blocks}
    first_trained = trained[tuning]
    # no grad up to the first adapter block (its adapter sits on its output) or the first trained block
    first_grad = min(first_trained, first_query + 1 if first_query is not None else blocks)
    clips = args.frames // args.clip_frames
    frames = batch["pixel_values"].reshape(args.videos * clips, args.clip_frames, 3, args.image_size, args.image_size)

    def bare_shared(frames):  # blocks that need no gradient
        hidden = bare.embeddings(frames, None)
        for block in bare.encoder.layer[:first_grad]:
            hidden = block(hidden)
        return hidden

    def bare_trained(hidden):  # blocks the gradient passes through
        for block in bare.encoder.layer[first_grad:]:
            hidden = block(hidden)
        return hidden.float().square().mean()

    if args.compile:  # the bare numbers compiled as well, so the ratio compares like with like
        bare_shared, bare_trained = torch.compile(bare_shared), torch.compile(bare_trained)

    def bare_step():
        with torch.no_grad():
            hidden = bare_shared(frames)
        if first_grad < blocks:
            bare_trained(hidden.detach().requires_grad_(True)).backward()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    tsgv_step()
    tsgv_memory_mb = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else peak_rss_mb()
    bare_memory_mb = None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        bare_step()
        bare_memory_mb = torch.cuda.max_memory_allocated() / 2**20
    tsgv_s, bare_s = time_pair(tsgv_step, bare_step, args.steps, device)
    flops = step_flops(cfg, args.videos * clips, sum(counts) / args.videos, first_trained, first_query)
    row = {
        "size": size,
        "tuning": tuning,
        "queries_per_video": sum(counts) / args.videos,  # as batched: 2.3 over 2 videos is 5 queries, 2.5 each
        "queries_per_video_asked": per_video,
        "videos": args.videos,
        "frames": args.frames,
        "image_size": args.image_size,
        "dtype": str(dtype).replace("torch.", ""),
        "compile": args.compile,
        "checkpointing": args.checkpointing,
        "attn": args.attn,
        "trainable_params": num_trainable,
        "text_cache": args.text_cache and not args.deepspeed,
        "deepspeed": args.deepspeed,
        "tsgv_s_per_step": tsgv_s,
        "bare_s_per_step": bare_s,
        "ratio": tsgv_s / bare_s,
        "clips_per_s": args.videos * clips / tsgv_s,
        "queries_per_s": sum(counts) / tsgv_s,
        "peak_memory_mb": tsgv_memory_mb,
        "bare_peak_memory_mb": bare_memory_mb,
        "memory_kind": "cuda max allocated" if device.type == "cuda" else "process max RSS (all rows so far)",
        "gflop_per_step": flops / 1e9,
        "achieved_tflops": flops / tsgv_s / 1e12,
    }
    if args.peak_tflops:
        row["mfu"] = row["achieved_tflops"] / args.peak_tflops
    return row


def estimate_memory(args, size: str, tuning: str, per_video: float, dtype, fake: bool = True) -> dict:
    """Peak tensor memory of one training step, counted without computing it: model, batch and AdamW are built
    under `FakeTensorMode` (tensors with shapes, dtypes and no data) and torch's `MemTracker` follows every tensor
    of a second step (the first creates the optimizer state). So a ViT-g step on 256 frames is sized on a laptop.

    What it counts: weights, gradients, optimizer state, activations kept for backward and temporaries, at their
    peak. The kernels are the CPU ones (CPU flash attention, like FlashAttention on GPUs, keeps no N x N matrix);
    the CUDA caching allocator's slack and the CUDA context (~0.5 GiB) are not counted. Returns a row dict with
    `estimated_peak_gib` and the categories at the peak. `fake=False` runs the same step on real CPU tensors (the
    check that the count without compute is the count with it).
    """
    from transformers import AutoConfig

    text_config = AutoConfig.from_pretrained(default_text_encoder_path())
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # built in `dtype`: Module.to cannot swap fake parameters
    try:
        return _estimate_memory(args, size, tuning, per_video, dtype, text_config, fake)
    finally:
        torch.set_default_dtype(default_dtype)


def _estimate_memory(args, size, tuning, per_video, dtype, text_config, fake: bool) -> dict:
    import contextlib

    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.distributed._tools.mem_tracker import MemTracker
    from transformers import AutoModel

    class Tracker(MemTracker):
        # torch 2.14's MemTracker hooks the gradient of every parameter of a module it enters, which fails on
        # frozen ones: hook only modules whose parameters all train (the allocations are counted either way)
        def _track_module_params_and_buffers(self, module, install_grad_hooks=True):
            trains = all(p.requires_grad for p in module.parameters())
            return super()._track_module_params_and_buffers(module, install_grad_hooks and trains)

    with FakeTensorMode() if fake else contextlib.nullcontext():
        model, _ = build(args, size, tuning, text=AutoModel.from_config(text_config))
        model._checks_values = lambda tensor: False  # fake tensors have no values to check
        counts = query_counts(args.videos, per_video)
        input_ids = torch.randint(1000, 2000, (sum(counts), 16))
        batch = grounding_batch(args, counts, input_ids, torch.ones_like(input_ids), dtype)
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=1e-4)

        def step():
            optimizer.zero_grad(set_to_none=True)
            model(**batch).loss.backward()
            optimizer.step()

        step()
        tracker = Tracker()
        tracker.track_external(model, optimizer)
        with tracker:
            step()
        (peak,) = tracker.get_tracker_snapshot("peak").values()
    parts = {str(kind.value if hasattr(kind, "value") else kind).lower(): b / 2**30 for kind, b in peak.items()}
    return {
        "size": size,
        "tuning": tuning,
        "queries_per_video": sum(counts) / args.videos,
        "videos": args.videos,
        "frames": args.frames,
        "image_size": args.image_size,
        "clip_frames": args.clip_frames,
        "dtype": str(dtype).replace("torch.", ""),
        "checkpointing": args.checkpointing,
        "trainable_params": sum(p.numel() for p in trainable),
        "estimated_peak_gib": parts.pop("total"),
        "at_peak_gib": parts,
        "memory_kind": "tensor bytes counted under FakeTensorMode + MemTracker (no allocator slack, no CUDA context)",
    }


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
    parser.add_argument("--sdpa", dest="attn", action="store_const", const="sdpa", help="same as --attn sdpa")
    parser.add_argument("--eager", dest="attn", action="store_const", const="eager", help="same as --attn eager")
    parser.add_argument(
        "--no-text-cache", dest="text_cache", action="store_false", help="run the frozen text encoder every step"
    )
    parser.add_argument(
        "--deepspeed", metavar="CONFIG", help="train through a DeepSpeed engine (e.g. ds_configs/zero3.json)"
    )
    parser.add_argument("--peak-tflops", type=float, help="the device's peak for MFU (e.g. 989 for H100/H200 bf16)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", help="write the rows here (one JSON object per row, a list)")
    parser.add_argument(
        "--memory-estimate",
        action="store_true",
        help="no timing: count the peak tensor memory of a step without computing it (any size, on any machine)",
    )
    args = parser.parse_args(argv)
    device, dtype = torch.device(args.device), torch.bfloat16 if args.bf16 else torch.float32
    if args.memory_estimate:
        return memory_main(args, dtype)
    rows = []
    for size in args.sizes:
        for tuning in args.tuning:
            for per_video in args.queries:
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
        cells = [r["size"], r["tuning"], f"{r['queries_per_video']:.3g}", f"{r['trainable_params']:,d}"]
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


def memory_main(args, dtype) -> list[dict]:
    """--memory-estimate: one row per (size, tuning, queries per video), a markdown table, --json rows."""
    rows = []
    print(
        "| size | tuning | q/video | frames | dtype | checkpointing | trainable | estimated peak GiB | largest parts |"
    )
    print("|---|---|---:|---:|---|---|---:|---:|---|")
    for size in args.sizes:
        for tuning in args.tuning:
            for per_video in args.queries:
                r = estimate_memory(args, size, tuning, per_video, dtype)
                rows.append(r)
                parts = sorted(r["at_peak_gib"].items(), key=lambda kv: -kv[1])[:3]
                print(
                    f"| {size} | {tuning} | {r['queries_per_video']:g} | {r['frames']} | {r['dtype']} | "
                    f"{'yes' if r['checkpointing'] else 'no'} | {r['trainable_params']:,d} | "
                    f"{r['estimated_peak_gib']:.2f} | {', '.join(f'{k} {v:.2f}' for k, v in parts)} |",
                    flush=True,
                )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
