"""Oracle probe: does the grounding model learn the rule across videos when its visual features are perfect?

The synthetic world knows every object's exact state at every frame (`synthetic.object_tracks`). This script feeds
the model those states instead of backbone tokens — per object and time step: colour and shape one-hot, position,
size, angle (sin, cos) and visibility, for the two frames of the step — and trains everything else exactly as
`run_grounding.py` does: the frozen text encoder (offline MiniLM), sentence standardisation, sentence-conditioned
pooling (here over the objects of a step instead of the patches), the grounding head, its loss and its decoding. If
this does not learn, the fault is in the head / text / loss; if it learns and the pixel model does not, the backbone's
features are what is missing. Prints one markdown row (and writes JSON with --json).

    python research/oracle_probe.py [--preset easy] [--num-videos 1000] [--steps 500] [--batch 16] [--no-shape]

The world is generated into outputs/synthetic/<preset> when missing (as the default job's), so the rows compare
with the default job's. One thread per process keeps runs reproducible.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import AutoTokenizer, VideoMAEConfig, VideoMAEModel

from modeling_tsgv import TSGVForGrounding, default_text_encoder_path
from modeling_tsgv.annotations import read_annotations
from modeling_tsgv.baselines import prior_baseline
from modeling_tsgv.metrics import grounding_metrics, sentence_binding
from modeling_tsgv.synthetic import COLOURS, SHAPES, generate, object_tracks, world_plans

STATE_FEATURES = len(COLOURS) + len(SHAPES) + 6  # colour, shape, x, y, radius, sin(angle), cos(angle), visibility


def object_states(plan, tracks, times_s: np.ndarray, with_shape: bool) -> torch.Tensor:
    """(T,) frame times in seconds -> (T // 2, max_objects, 2 * STATE_FEATURES): each step holds its two frames."""
    frame = np.clip((times_s * plan.fps).astype(int), 0, plan.num_frames - 1)
    count, size = len(plan.objects), float(plan.image_size)
    states = torch.zeros(len(times_s), count, STATE_FEATURES)
    states[..., : len(COLOURS)] = nn.functional.one_hot(
        torch.as_tensor(tracks["colour_index"][:, frame].T, dtype=torch.long), len(COLOURS)
    ).float()
    if with_shape:
        shapes = torch.tensor([list(SHAPES).index(o.shape) for o in plan.objects])
        states[..., len(COLOURS) : len(COLOURS) + len(SHAPES)] = nn.functional.one_hot(shapes, len(SHAPES)).float()
    rest = len(COLOURS) + len(SHAPES)
    for k, value in enumerate(
        (
            tracks["x"] / size,
            tracks["y"] / size,
            tracks["radius"] / size * 5,
            np.sin(tracks["angle"]),
            np.cos(tracks["angle"]),
            tracks["alpha"],
        )
    ):
        states[..., rest + k] = torch.as_tensor(value[:, frame].T, dtype=torch.float32)
    steps = len(times_s) // 2
    return states.view(steps, 2, count, STATE_FEATURES).permute(0, 2, 1, 3).reshape(steps, count, -1)


class OracleGrounding(nn.Module):
    """A `TSGVForGrounding`'s text path, pooling, head, loss and decoding on oracle object states."""

    def __init__(self, text_path: str, num_frames: int):
        super().__init__()
        # the backbone is never run (its tokens are replaced); it only sets the token width the pooling expects
        backbone = VideoMAEModel(
            VideoMAEConfig(hidden_size=128, num_hidden_layers=1, num_attention_heads=4, intermediate_size=256)
        )
        self.model = TSGVForGrounding.from_backbones(
            video=backbone,
            text=text_path,
            num_frames=num_frames,
            backbone_tuning="frozen",
            spatial_pool_location=False,  # objects are not a patch grid
        )
        self.model.enable_text_cache()
        self.project = nn.Linear(2 * STATE_FEATURES, backbone.config.hidden_size)

    def forward(self, states, input_ids, attention_mask, labels=None):
        """states (B_q, L_t, objects, 2F); input_ids / attention_mask (B_q, S); labels (B_q, 2) normalised."""
        model = self.model
        text_tokens, sentence = model.encode_text(input_ids, attention_mask)
        sentence = model.sentence_norm(sentence) if model.sentence_norm is not None else sentence
        video = model.spatial_pool(self.project(states), sentence)  # (B_q, L_t, D)
        logits, offsets, *_ = model.head(video, text_tokens, attention_mask, sentence)
        loss = model.compute_loss(logits.float(), offsets, labels)[0] if labels is not None else None
        return loss, logits, offsets


def load_world(folder: Path) -> dict:
    """video_id -> {split, plan, tracks, rows (sentences, spans_s, duration_s)} of a generated world."""
    videos = {
        video_id: {"split": plan.split, "plan": plan, "tracks": object_tracks(plan)}
        for video_id, plan in world_plans(folder).items()
    }
    for split in ("train", "val", "test", "test_novel"):
        rows, _ = read_annotations(folder / "annotations" / f"{split}.jsonl", "jsonl")
        for row in rows:
            videos[row["video_id"]]["row"] = row
    return videos


def batch_of(videos, ids, tokenizer, num_frames, rng, train, with_shape, max_queries=8):
    """Oracle states, tokens and labels of all (up to max_queries, sampled when training) queries of `ids`."""
    states, sentences, labels, refs = [], [], [], []
    for video_id in ids:
        video, row = videos[video_id], videos[video_id]["row"]
        offset = rng.random(num_frames) if train else np.full(num_frames, 0.5)
        times_s = (np.arange(num_frames) + offset) / num_frames * row["duration_s"]
        video_states = object_states(video["plan"], video["tracks"], times_s, with_shape)
        queries = range(len(row["sentences"]))
        if train and len(queries) > max_queries:
            queries = sorted(rng.permutation(len(queries))[:max_queries])
        for q in queries:
            (start_s, end_s) = row["spans_s"][q][0]
            states.append(video_states)
            sentences.append(row["sentences"][q])
            labels.append([start_s / row["duration_s"], end_s / row["duration_s"]])
            refs.append((video_id, row["spans_s"][q], row["duration_s"]))
    objects = max(s.shape[1] for s in states)
    padded = torch.full((len(states), states[0].shape[0], objects, states[0].shape[2]), 0.0)
    for i, s in enumerate(states):  # videos with fewer objects: absent objects are all-zero (invisible) states
        padded[i, :, : s.shape[1]] = s
    text = tokenizer(sentences, padding=True, return_tensors="pt", return_token_type_ids=False)
    return padded, text["input_ids"], text["attention_mask"], torch.tensor(labels), refs


@torch.no_grad()
def evaluate(probe, videos, split, tokenizer, num_frames, with_shape) -> dict:
    """R1/R5 and mIoU (`grounding_metrics`) and sentence binding of the top-1 spans on one split."""
    probe.eval()
    ids = [v for v, video in videos.items() if video["split"] == split and video["row"]["sentences"]]
    predictions, references, records = [], [], []
    rng = np.random.default_rng(0)
    for i in range(0, len(ids), 16):
        states, input_ids, mask, _, refs = batch_of(
            videos, ids[i : i + 16], tokenizer, num_frames, rng, False, with_shape
        )
        _, logits, offsets = probe(states, input_ids, mask)
        spans, scores = probe.model.decode(logits, offsets)
        for span, score, (video_id, windows_s, duration_s) in zip(spans, scores, refs):
            ranked = torch.cat([span * duration_s, score[:, None]], 1).tolist()
            predictions.append(ranked)
            references.append(windows_s)
            records.append({"video_id": video_id, "gt_windows_s": windows_s, "pred_spans_s": ranked})
    probe.train()
    return {**grounding_metrics(predictions, references), "binding": sentence_binding(records)[0]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="easy")
    parser.add_argument("--num-videos", type=int, default=1000)
    parser.add_argument("--synthetic-dir", default=None, help="default: outputs/synthetic/<preset>")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--batch", type=int, default=16, help="videos per step (all their queries, up to 8)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--num-frames", type=int, default=32)
    parser.add_argument("--no-shape", action="store_true", help="leave the shape one-hot out of the states")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    folder = Path(args.synthetic_dir or Path("outputs") / "synthetic" / args.preset)
    generate(folder, num_videos=args.num_videos, seed=0, preset=args.preset, progress=False)
    videos = load_world(folder)
    text_path = default_text_encoder_path()
    tokenizer = AutoTokenizer.from_pretrained(text_path)
    probe = OracleGrounding(text_path, args.num_frames)
    trainable = [p for p in probe.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=args.lr, weight_decay=0.01)
    warmup = max(1, int(0.05 * args.steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, 1 - s / args.steps)
    )
    train_ids = [v for v, video in videos.items() if video["split"] == "train" and video["row"]["sentences"]]
    rng = np.random.default_rng(args.seed)
    order, start = [], time.perf_counter()
    probe.train()
    for step in range(args.steps):
        if len(order) < args.batch:
            order = list(rng.permutation(train_ids))
        ids, order = order[: args.batch], order[args.batch :]
        states, input_ids, mask, labels, _ = batch_of(
            videos, ids, tokenizer, args.num_frames, rng, True, not args.no_shape
        )
        loss, _, _ = probe(states, input_ids, mask, labels)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        schedule.step()
        if (step + 1) % 100 == 0:
            print(f"step {step + 1}: loss {loss.item():.3f} ({time.perf_counter() - start:.0f} s)", flush=True)
    train_s = time.perf_counter() - start
    train_rows = [v["row"] for v in videos.values() if v["split"] == "train"]
    results = {"args": vars(args), "train_s": train_s}
    for split in ("test", "test_novel"):
        results[split] = evaluate(probe, videos, split, tokenizer, args.num_frames, not args.no_shape)
        split_rows = [v["row"] for v in videos.values() if v["split"] == split]
        results[f"{split}_prior"] = prior_baseline(train_rows, split_rows)[1]
    features = "objects" + (" (no shape)" if args.no_shape else "")
    print("| preset | videos | features | steps x batch | test R1@0.5 (prior) | test_novel R1@0.5 (prior) | "
          "test mIoU | test binding | train s |")  # fmt: skip
    print("|---|---:|---|---|---:|---:|---:|---:|---:|")
    t, n = results["test"], results["test_novel"]
    print(
        f"| {args.preset} | {args.num_videos} | {features} | {args.steps} x {args.batch} | {t['R1@0.5']:.1f} "
        f"({results['test_prior']['R1@0.5']:.1f}) | {n['R1@0.5']:.1f} ({results['test_novel_prior']['R1@0.5']:.1f}) "
        f"| {t['mIoU']:.1f} | {t['binding']:.1f} | {train_s:.0f} |"
    )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=1, default=float) + "\n")
    return results


if __name__ == "__main__":
    main()
