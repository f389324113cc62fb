"""One Trainer optimiser step of a tiny TSGVForGrounding over four samples; prints the logged loss and the update.

Used by tests/test_loss_and_scaling.py, in-process and under `torchrun --nproc_per_node 2` (gloo on CPU):

    python tests/trainer_scaling_job.py OUT_JSON --batch_size 2 --accumulation 2

The dataset holds four samples of one video whose moments have different lengths (1 to 4 of the 4 time steps), and
the one optimiser step sees all four whatever the split (one batch of 4, 2 micro-batches of 2, or 2 ranks of 2). A
mean over each micro-batch's own foreground steps would weigh the samples differently in each split; a correct
Trainer integration logs the same loss and applies the same SGD update in all of them.
"""

import argparse
import json
import os
import sys

import torch
from transformers import TrainingArguments

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conftest import tiny_batch, tiny_config  # noqa: E402

from modeling_tsgv import TSGVForGrounding  # noqa: E402
from modeling_tsgv.trainer import TSGVTrainer  # noqa: E402


class MomentsOfFourLengths(torch.utils.data.Dataset):
    """Four one-query samples of the same video (tiny_config shapes) with moments covering 1, 2, 3 and 4 time steps."""

    MOMENTS = [(0.0, 0.2), (0.1, 0.45), (0.0, 0.7), (0.05, 1.0)]

    def __init__(self):
        batch = tiny_batch(num_videos=1, queries_per_video=1, seed=1)
        self.item = {key: value[0] for key, value in batch.items()}

    def __len__(self):
        return len(self.MOMENTS)

    def __getitem__(self, index):
        return {**self.item, "labels": torch.tensor(self.MOMENTS[index])}


def collate(items):
    """Stack one-query videos: pixel_values (B, T, 3, H, W), input_ids (B, S), labels (B, 2), query i -> video i."""
    batch = {key: torch.stack([item[key] for item in items]) for key in items[0] if key != "query_video_index"}
    batch["query_video_index"] = torch.arange(len(items))
    batch["durations_s"] = torch.full((len(items),), 10.0)
    return batch


def run(output_dir: str, batch_size: int, accumulation: int) -> dict:
    """One optimiser step (SGD, lr 0.1, no clipping). Returns {"loss": logged loss, "update": {name: list}}."""
    args = TrainingArguments(
        output_dir=output_dir,
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=accumulation,
        max_steps=1,
        learning_rate=0.1,
        optim="sgd",
        lr_scheduler_type="constant",
        weight_decay=0.0,
        max_grad_norm=0.0,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        dataloader_num_workers=0,
        remove_unused_columns=False,
        label_names=["labels", "durations_s"],
        seed=0,
        disable_tqdm=True,
    )
    torch.manual_seed(0)
    # no running sentence statistics: they would depend on how a step's samples are split, which is not the point here
    model = TSGVForGrounding(tiny_config(sentence_standardization=False))
    before = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
    trainer = TSGVTrainer(model=model, args=args, train_dataset=MomentsOfFourLengths(), data_collator=collate)
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    update = {
        name: (p.detach() - before[name]).flatten().tolist() for name, p in model.named_parameters() if name in before
    }
    return {"loss": losses[0], "update": update, "world_size": args.world_size}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out_json")
    parser.add_argument("--batch_size", type=int, default=2)
    parser.add_argument("--accumulation", type=int, default=1)
    cli = parser.parse_args()
    result = run(os.path.dirname(os.path.abspath(cli.out_json)), cli.batch_size, cli.accumulation)
    if int(os.environ.get("RANK", "0")) == 0:
        with open(cli.out_json, "w") as f:
            json.dump(result, f)


if __name__ == "__main__":
    main()
