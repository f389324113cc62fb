"""Peak memory of the sentence-weighted spatial pooling, forward + backward, before and after folding the key
projection into the query (#27), counted without computing it (FakeTensorMode + torch's MemTracker, as
`train_step.py --memory-estimate`).

    python benchmarks/pooling_memory.py                       # ViT-g, 224 px, 64 frames, 64 queries, bf16
    python benchmarks/pooling_memory.py --width 768 --queries 16 --videos 4

Two cases: "per query" (SCADA: the tokens already are one copy per query and need a gradient, they come from the
adapters) and "fan-out" (frozen / no adapters below: tokens of B_v videos, shared by their queries, no gradient).
"before" is the pooling as it was (kept here as the reference): keys of every token, keys and tokens gathered per
query, weights x tokens as one product tensor. Prints a markdown table; the figures go into docs/benchmarks.md.
"""

import argparse
import math
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from modeling_tsgv.modeling_tsgv import SentenceSpatialPool  # noqa: E402


class PreviousPool(nn.Module):
    """The pooling before #27 (same parameters): three (B_q, L_t, hw, D) temporaries."""

    def __init__(self, width: int, text_width: int):
        super().__init__()
        self.key, self.query = nn.Linear(width, width), nn.Linear(text_width, width)
        self.location = None

    def forward(self, tokens, sentence, query_video_index=None):
        keys = self.key(tokens)
        if query_video_index is not None:
            keys, tokens = keys[query_video_index], tokens[query_video_index]
        query = self.query(sentence)[:, None, :, None]
        logits = (keys @ query).squeeze(-1) / math.sqrt(tokens.shape[-1])
        weights = logits.softmax(dim=-1)
        return (weights[..., None] * tokens).sum(2)


def memory_gib(make_pool, tokens_shape, queries: int, text_width: int, fan_out: bool, dtype) -> tuple[float, float]:
    """(GiB held once the forward is done, peak GiB of forward + backward) of a fresh pool on fake tensors, the
    tokens and the pool's weights left out: what the pooling adds to a training step. The first figure is what
    stays alive until the step's backward (saved activations and temporaries not yet freed), where a whole
    model's peak usually is."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.distributed._tools.mem_tracker import MemTracker

    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with FakeTensorMode():
            pool = make_pool()
            tokens = torch.randn(tokens_shape, requires_grad=not fan_out)
            sentence = torch.randn(queries, text_width)
            index = torch.arange(queries) % tokens_shape[0] if fan_out else None
            tracker = MemTracker()
            tracker.track_external(pool, tokens)
            with tracker:
                out = pool(tokens, sentence, index)
                (held,) = tracker.get_tracker_snapshot("current").values()
                out.float().sum().backward()
            (peak,) = tracker.get_tracker_snapshot("peak").values()
        base = tokens.numel() * tokens.element_size() + sum(p.numel() * p.element_size() for p in pool.parameters())
        return tuple((_total(snapshot) - base) / 2**30 for snapshot in (held, peak))
    finally:
        torch.set_default_dtype(default)


def _total(snapshot: dict) -> int:
    return next(b for kind, b in snapshot.items() if str(getattr(kind, "value", kind)).lower() == "total")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=1408, help="backbone width D (ViT-g: 1408)")
    parser.add_argument("--text-width", type=int, default=768)
    parser.add_argument("--patches", type=int, default=256, help="tokens per time step hw (224 px / 14)")
    parser.add_argument("--steps", type=int, default=32, help="time steps L_t (64 frames / tubelet 2)")
    parser.add_argument("--queries", type=int, default=64, help="B_q")
    parser.add_argument("--videos", type=int, default=8, help="B_v for the fan-out case")
    parser.add_argument("--fp32", action="store_true", help="float32 instead of bfloat16")
    args = parser.parse_args(argv)
    dtype = torch.float32 if args.fp32 else torch.bfloat16

    class Config:  # what SentenceSpatialPool reads of a TSGVConfig
        backbone_config = type("B", (), {"hidden_size": args.width, "patch_size": 14})()
        text_config = type("T", (), {"hidden_size": args.text_width})()
        image_size, spatial_pool_location = 14 * int(math.isqrt(args.patches)), False

    makers = {
        "before": lambda: PreviousPool(args.width, args.text_width),
        "after": lambda: SentenceSpatialPool(Config),
    }
    print(f"D={args.width}, hw={args.patches}, L_t={args.steps}, B_q={args.queries}, B_v={args.videos}, {dtype}")
    print("\ncase | tokens | held after forward: before / after | peak fwd+bwd: before / after\n---|---|---:|---:")
    for case, fan_out in (("per query (SCADA)", False), ("fan-out (frozen)", True)):
        batch = args.videos if fan_out else args.queries
        shape = (batch, args.steps, args.patches, args.width)
        before, after = (memory_gib(makers[k], shape, args.queries, args.text_width, fan_out, dtype) for k in makers)
        print(f"{case} | {tuple(shape)} | {before[0]:.2f} / {after[0]:.2f} GiB | {before[1]:.2f} / {after[1]:.2f} GiB")


if __name__ == "__main__":
    main()
