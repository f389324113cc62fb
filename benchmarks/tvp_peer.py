"""Peer baseline: transformers' `TvpForVideoGrounding` (random init, about our size) on our splits, budget and metrics.

Why: a grounding model from transformers itself, on the data, splits, frames and budget of our default job (6
epochs, AdamW lr 1e-3, weight decay 0.01, 5 % warmup then linear decay, float32, best epoch by val R1@0.5), scored
with `modeling_tsgv.metrics`: a study tabulates both runs' `all_results.json` (the same metric keys).

    python benchmarks/tvp_peer.py --output_dir outputs/tvp-peer [--seed 0] [--synthetic_preset easy]

What differs from our model (TVP's design, not a choice made here):
- text: TVP learns BERT-style word embeddings (random init, the offline MiniLM tokenizer's vocabulary) in its joint
  transformer; ours reads sentences with a frozen pretrained 22.7 M-param MiniLM. TVP's 5.9 M word embeddings are
  in `trainable_params` (9.1 M); without them it has 3.2 M, ours 3.9 M without its text encoder (1.2 M backbone).
- video: a random-init 3-stage ResNet (stride 16: a 2 x 2 grid per 64 px frame) plus TVP's learned per-frame "frame
  pad" prompt, and the frame features are *averaged over time* before the transformer: time reaches the head only
  through the prompt. Ours: a 4-block ViT over 8-frame clips with temporal adapters.
- output: one (start, end) per query, so only R1 and mIoU (R5 would equal R1); ours ranks 5 spans.
- batches: one row per query (24 queries a step, ~86 steps an epoch on the easy world) with its own decoded frames
  (32, random jitter in training, uniform otherwise, 64 px: what our model sees for both presets); ours batches 8
  videos with all their queries. Frames are read by our `FrameTransform` and resized / normalised by TVP's
  `TvpImageProcessor` (longest edge, centre crop, pad, mean/std 0.5, RGB -> BGR); text by its tokenizer part.
- binding: `test_binding` is `metrics.sentence_binding` on each query's one span; it applies unchanged (it reads
  only the top-1 span and the moments of the video's other queries).
Worked around in transformers 5.24 (see `BatchedVisualEmbedding`, `QueryCollator`, `TvpPeerTrainer`): the visual
position embeddings only reshape for a batch of one, `TvpLoss` cannot take per-query durations in a batch, and its
loss comes back unreduced, one value per query. A saved model needs `build_model`'s embedding swap to run batched.
"""

import argparse
import json
import logging
import os
import resource
import shutil
import sys
import time

import torch
from transformers import AutoTokenizer, ResNetConfig, Trainer, TrainingArguments, set_seed
from transformers.models.tvp import TvpConfig, TvpForVideoGrounding, TvpImageProcessor, TvpProcessor
from transformers.models.tvp.modeling_tvp import TvpVisualInputEmbedding

from modeling_tsgv.annotations import explode_queries, read_annotations, rows_to_dataset
from modeling_tsgv.data import FrameTransform
from modeling_tsgv.metrics import grounding_metrics, sentence_binding
from modeling_tsgv.processing_tsgv import DEFAULT_MAX_TEXT_LENGTH, default_text_encoder_path
from modeling_tsgv.synthetic import PRESETS, generate
from modeling_tsgv.trainer import EpochCallback, StepTimer

logger = logging.getLogger("tvp_peer")
SPLITS = ("train", "val", "test", "test_novel")
# peer size: 1.0 M vision (ours: 1.2 M backbone), 2.1 M joint transformer + head (ours: 2.7 M head)
RESNET = {"embedding_size": 32, "hidden_sizes": [48, 96, 192], "depths": [1, 1, 1], "layer_type": "basic"}
TRANSFORMER = {"hidden_size": 192, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 768}


class _Parser(argparse.ArgumentParser):
    """argparse, its errors in one line."""

    def error(self, message):
        """Bad arguments: one line on stderr, exit status 2."""
        self.exit(2, f"tvp_peer.py: error: {message}\n")


def _at_least(kind, minimum, strictly: bool = False):
    """An argparse type: `kind(text)`, refused (one line) unless >= `minimum` (> when `strictly`)."""

    def parse(text: str):
        """`text` as a checked `kind`."""
        value = kind(text)
        if not (value > minimum if strictly else value >= minimum):
            raise argparse.ArgumentTypeError(f"must be {'>' if strictly else '>='} {minimum}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names it in "invalid int value: 'x'"
    return parse


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    """The command line -> checked arguments (a one-line error and exit status 2 for anything wrong)."""
    parser = _Parser(description=__doc__.splitlines()[0])
    positive, count = _at_least(float, 0, strictly=True), _at_least(int, 1)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--overwrite_output_dir", action="store_true", help="replace an earlier run's results")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--synthetic_preset", choices=list(PRESETS), default="easy")
    parser.add_argument("--synthetic_dir", default=None, help="default: outputs/synthetic/<preset>")
    parser.add_argument("--num_train_epochs", type=positive, default=6.0)
    parser.add_argument("--max_train_videos", type=count, default=None)
    parser.add_argument("--max_eval_videos", type=count, default=None)
    parser.add_argument("--learning_rate", type=positive, default=1e-3)
    parser.add_argument("--per_device_train_batch_size", type=count, default=24, help="queries per step")
    parser.add_argument("--num_frames", type=count, default=32)
    parser.add_argument("--image_size", type=_at_least(int, 32), default=64, help="frame side, px (our model's)")
    parser.add_argument("--dataloader_num_workers", type=_at_least(int, 0), default=2)
    args = parser.parse_args(argv)
    if os.path.exists(os.path.join(args.output_dir, "all_results.json")) and not args.overwrite_output_dir:
        parser.error(f"--output_dir {args.output_dir} holds an earlier run: pass --overwrite_output_dir to replace it")
    args.synthetic_dir = args.synthetic_dir or os.path.join("outputs", "synthetic", args.synthetic_preset)
    return args


def load_query_splits(args) -> dict:
    """{split: Dataset, one row per query} of the synthetic world of our default job (1000 videos, seed 0; generated
    when missing): the first --max_train_videos / --max_eval_videos videos of each split."""
    generate(args.synthetic_dir, num_videos=1000, seed=0, preset=args.synthetic_preset)
    splits = {}
    for split in SPLITS:
        path = os.path.join(args.synthetic_dir, "annotations", f"{split}.jsonl")
        rows, _ = read_annotations(path, "jsonl", video_dir=args.synthetic_dir)
        limit = args.max_train_videos if split == "train" else args.max_eval_videos
        splits[split] = explode_queries(rows_to_dataset(rows[:limit] if limit else rows))
    return splits


def build_processor(image_size: int) -> TvpProcessor:
    """TVP's processor, offline: its image processor for `image_size` px square frames (longest edge resized to it,
    centre-cropped and padded to it) and the offline MiniLM (BERT uncased, 30,522 tokens) tokenizer."""
    side = {"height": image_size, "width": image_size}
    frames = TvpImageProcessor(size={"longest_edge": image_size}, crop_size=side, pad_size=side)
    return TvpProcessor(image_processor=frames, tokenizer=AutoTokenizer.from_pretrained(default_text_encoder_path()))


class BatchedVisualEmbedding(TvpVisualInputEmbedding):
    """TVP's visual embedding with its 2-D position embeddings added by broadcasting: transformers 5.24 views the
    (W, D) column table as (B, 1, W, D), which fails for any batch of more than one video."""

    def add_2d_positional_embeddings(self, grid, interpolate_pos_encoding: bool = False):
        """grid (B, H, W, D) -> grid + row (H, 1, D) + column (1, W, D) embeddings (H, W <= max_grid_*)."""
        height, width = grid.shape[1:3]
        rows = self.row_position_embeddings(torch.arange(height, device=grid.device))
        columns = self.col_position_embeddings(torch.arange(width, device=grid.device))
        return grid + rows[:, None, :] + columns[None, :, :]


def build_model(vocab_size: int, pad_token_id: int, image_size: int, num_frames: int) -> TvpForVideoGrounding:
    """A random-init TvpForVideoGrounding of the peer size (`RESNET`, `TRANSFORMER`) for (T=num_frames, 3,
    image_size, image_size) frames and sentences of <= 64 tokens; its visual prompt takes TVP's share of the frame
    (96 of 448 px) at our size. Uses the current torch seed."""
    config = TvpConfig(
        backbone_config=ResNetConfig(**RESNET, out_features=[f"stage{len(RESNET['depths'])}"]), **TRANSFORMER,
        vocab_size=vocab_size, pad_token_id=pad_token_id, num_frames=num_frames, max_img_size=image_size,
        visual_prompt_size=round(image_size * 96 / 448), max_position_embeddings=DEFAULT_MAX_TEXT_LENGTH,
        max_grid_row_position_embeddings=16, max_grid_col_position_embeddings=16,
    )  # fmt: skip
    model = TvpForVideoGrounding(config)
    model.model.visual_embeddings.__class__ = BatchedVisualEmbedding  # the same parameters, a batched forward
    return model


class QueryCollator:
    """Query rows (`pixel_values` (T, 3, H, W) from FrameTransform) -> input_ids / attention_mask (B, S) from the
    TVP processor's tokenizer (<= 64 tokens, as ours), pixel_values (B, T, 3, H, W) and `labels`:
    - training: (1.0, start (B,), end (B,)): TVP's (duration, start, end) in normalised time (first moment). TvpLoss
      multiplies the (B, 2) logits by `duration`, so per-query durations in seconds cannot share a batch; its terms
      (1 - IoU, midpoint distance / duration, (length difference / duration)^2) do not depend on the unit, so this
      is the loss of (duration_s, start_s, end_s). Rows whose video failed to decode are dropped.
    - evaluation: (B, 2) long (row index, video failed to decode), for `score`."""

    def __init__(self, processor: TvpProcessor, train: bool):
        """`processor`: the TvpProcessor (its tokenizer is used here); `train`: training labels, else row indices."""
        self.processor, self.train = processor, train

    def __call__(self, rows: list[dict]) -> dict:
        """The batch of `rows` (see the class docstring)."""
        if self.train and any(row["decode_error"] for row in rows):
            logger.warning(f"dropped undecodable videos: {[r['video_id'] for r in rows if r['decode_error']]}")
            rows = [row for row in rows if not row["decode_error"]]
            if not rows:
                raise RuntimeError("every video of a training batch failed to decode")
        sentences = [row["sentences"][0] for row in rows]
        text = self.processor(text=sentences, padding=True, truncation=True, max_length=DEFAULT_MAX_TEXT_LENGTH)
        batch = {
            "input_ids": torch.tensor(text["input_ids"]),
            "attention_mask": torch.tensor(text["attention_mask"]),
            "pixel_values": torch.stack([torch.as_tensor(row["pixel_values"]) for row in rows]),
        }
        if self.train:
            moments = torch.tensor([[t / row["duration_s"] for t in row["spans_s"][0][0]] for row in rows])
            batch["labels"] = (torch.tensor(1.0), moments[:, 0].float(), moments[:, 1].float())
        else:
            batch["labels"] = torch.tensor([[row["row_index"], int(bool(row["decode_error"]))] for row in rows])
        return batch


class TvpPeerTrainer(Trainer):
    """Trainer for TvpForVideoGrounding: the loss is the batch mean of TVP's per-query loss (it returns (B,),
    which `backward` refuses); evaluation batches come from `eval_collator` (a Trainer has one collator), and
    predictions are the (N, 2) normalised spans with the (row index, failed) pairs as label ids, for `score`."""

    def __init__(self, *args, eval_collator, **kwargs):
        """`Trainer`'s arguments, plus the collator of evaluation and test batches."""
        super().__init__(*args, **kwargs)
        self.eval_collator = eval_collator

    def _with_eval_collator(self, make_loader, *args):
        """`make_loader(*args)` with `eval_collator` set (a DataLoader keeps the collator it is made with)."""
        train_collator, self.data_collator = self.data_collator, self.eval_collator
        try:
            return make_loader(*args)
        finally:
            self.data_collator = train_collator

    def get_eval_dataloader(self, eval_dataset=None):
        """The Trainer's evaluation DataLoader, batches from `eval_collator`."""
        return self._with_eval_collator(super().get_eval_dataloader, eval_dataset)

    def get_test_dataloader(self, test_dataset):
        """The Trainer's test DataLoader, batches from `eval_collator`."""
        return self._with_eval_collator(super().get_test_dataloader, test_dataset)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """Scalar loss: TvpLoss (1 - IoU + distance + 0.1 x duration, per query) averaged over the batch."""
        outputs = model(**inputs)
        loss = outputs.loss.mean()
        return (loss, outputs) if return_outputs else loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """(None, logits (B, 2): normalised (start, end) in [0, 1], labels (B, 2): (row index, failed))."""
        inputs = self._prepare_inputs(inputs)
        rows = inputs.pop("labels")
        with torch.no_grad():
            logits = model(**inputs).logits
        return None, logits.detach(), rows


def score(rows: list[dict], logits, label_ids) -> tuple[dict, list[dict]]:
    """Metrics and prediction records of one split.

    rows: the split's query rows; logits (N, 2) normalised (start, end); label_ids (N, 2) (row index, failed).
    A span in seconds is (start, end) x duration_s, ordered and clipped to [0, duration_s]; a query whose video
    failed to decode gets none (a miss). Returns ({"R1@0.3", "R1@0.5", "R1@0.7", "mIoU", "binding" (%),
    "binding_queries", "num_queries"}, [{video_id, query_id, query, duration_s, gt_windows_s, pred_spans_s}])."""
    records = []
    for (start, end), (index, failed) in zip(logits.tolist(), label_ids.tolist()):
        row = rows[index]
        duration_s = row["duration_s"]
        start_s, end_s = sorted(min(max(t * duration_s, 0.0), duration_s) for t in (start, end))
        records.append({
            "video_id": row["video_id"], "query_id": row["query_ids"][0], "query": row["sentences"][0],
            "duration_s": duration_s, "gt_windows_s": row["spans_s"][0],
            "pred_spans_s": [] if failed else [[round(start_s, 3), round(end_s, 3)]],
        })  # fmt: skip
    metrics = grounding_metrics([r["pred_spans_s"] for r in records], [r["gt_windows_s"] for r in records], ranks=(1,))
    metrics["binding"], metrics["binding_queries"] = sentence_binding(records)
    metrics["num_queries"] = len(records)
    return metrics, records


def training_arguments(args) -> TrainingArguments:
    """Our default job's schedule: AdamW, weight decay 0.01, 5 % warmup then linear decay, float32, evaluation and a
    checkpoint each epoch, the best epoch by val R1@0.5 loaded at the end."""
    return TrainingArguments(
        output_dir=args.output_dir, seed=args.seed, num_train_epochs=args.num_train_epochs,
        learning_rate=args.learning_rate, weight_decay=0.01, warmup_steps=0.05, lr_scheduler_type="linear",
        per_device_train_batch_size=args.per_device_train_batch_size, per_device_eval_batch_size=48,
        eval_strategy="epoch", save_strategy="epoch", save_total_limit=1, save_only_model=True,
        load_best_model_at_end=True, metric_for_best_model="R1@0.5", greater_is_better=True,
        remove_unused_columns=False, dataloader_num_workers=args.dataloader_num_workers, logging_steps=10,
        report_to="none", dataloader_pin_memory=torch.cuda.is_available(), disable_tqdm=True,
    )  # fmt: skip


def prepare(splits: dict, processor: TvpProcessor, args) -> tuple[dict, dict]:
    """Give every split row indices and its frame decoding (our `FrameTransform` with TVP's image processor, T =
    --num_frames; random jitter in training, uniform elsewhere). Returns ({split: its rows as plain dicts, for
    `score`}, {split: its FrameTransform})."""
    plain, transforms = {}, {}
    for split, dataset in splits.items():
        dataset = splits[split] = dataset.add_column("row_index", list(range(len(dataset))))
        plain[split] = dataset.to_list()
        spacing = "random" if split == "train" else "uniform"
        transforms[split] = FrameTransform(processor.video_processor, args.num_frames, spacing, seed=args.seed)
        dataset.set_transform(transforms[split])
    return plain, transforms


def score_test_splits(trainer: Trainer, splits: dict, plain: dict, output_dir: str) -> dict:
    """{<split>_R1@m, <split>_mIoU, <split>_binding(_queries), <split>_num_queries} of test and test_novel with the
    loaded (best) weights; writes predictions_<split>.jsonl."""
    metrics = {}
    trainer.compute_metrics = None  # it scores val rows; each split is scored here
    for split in ("test", "test_novel"):
        output = trainer.predict(splits[split], metric_key_prefix=split)
        values, records = score(plain[split], output.predictions, output.label_ids)
        metrics.update({f"{split}_{key}": value for key, value in values.items()})
        with open(os.path.join(output_dir, f"predictions_{split}.jsonl"), "w") as f:
            f.writelines(json.dumps(record) + "\n" for record in records)
    return metrics


def best_epoch(state) -> float | None:
    """The epoch whose val R1@0.5 chose the loaded weights (None before any evaluation)."""
    evaluations = [entry for entry in state.log_history if "eval_R1@0.5" in entry]
    return next((entry["epoch"] for entry in evaluations if entry["step"] == state.best_global_step), None)


def main(argv=None) -> dict:
    """Train, pick the best epoch on val, score test and test_novel; writes all_results.json, predictions_<split>.jsonl
    and the best model with its processor to --output_dir. Returns the metrics."""
    args = parse_arguments(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    set_seed(args.seed)
    splits, processor = load_query_splits(args), build_processor(args.image_size)
    plain, transforms = prepare(splits, processor, args)
    tokenizer = processor.tokenizer
    model = build_model(tokenizer.vocab_size, tokenizer.pad_token_id, args.image_size, args.num_frames)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    words = model.model.embeddings.word_embeddings.weight.numel()
    logger.info(f"TvpForVideoGrounding: {trainable:,d} trainable parameters ({words:,d} of them word embeddings)")
    timer = StepTimer()
    trainer = TvpPeerTrainer(
        model=model, args=training_arguments(args), train_dataset=splits["train"], eval_dataset=splits["val"],
        data_collator=QueryCollator(processor, train=True), eval_collator=QueryCollator(processor, train=False),
        processing_class=processor, compute_metrics=lambda p: score(plain["val"], p.predictions, p.label_ids)[0],
        callbacks=[EpochCallback(*transforms.values()), timer],
    )  # fmt: skip
    start = time.time()
    result = trainer.train()  # ends with the best epoch's weights loaded
    metrics = {"train_runtime": result.metrics["train_runtime"], "epoch": result.metrics["epoch"]}
    metrics.update(score_test_splits(trainer, splits, plain, args.output_dir))
    metrics.update({
        "wall_time_s": time.time() - start, "train_seconds_per_step": timer.median_s(),
        "trainable_params": float(trainable), "trainable_params_without_word_embeddings": float(trainable - words),
        "best_epoch": best_epoch(trainer.state), "best_val_R1@0.5": trainer.state.best_metric,
        "peak_host_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux: KiB
    })  # fmt: skip
    trainer.save_model()  # the best weights and the processor; the epochs' checkpoints only served to pick them
    for name in os.listdir(args.output_dir):
        if name.startswith("checkpoint-"):
            shutil.rmtree(os.path.join(args.output_dir, name))
    metrics = dict(sorted(metrics.items()))
    with open(os.path.join(args.output_dir, "all_results.json"), "w") as f:
        json.dump(metrics, f, indent=4)
    print(json.dumps(metrics, indent=4))
    return metrics


if __name__ == "__main__":
    main()
