"""Short DeepSpeed ZeRO-3 training of a SCADA model on random frames: does it build, train, save and reload?

    torchrun --nproc_per_node 1 benchmarks/zero3_check.py --size vit-b --steps 20            # GPU, bf16
    torchrun --nproc_per_node 2 benchmarks/zero3_check.py --size tiny --steps 3 --cpu        # CPU smoke test

Needs no data, no tokenizer and no downloads: frames and token ids are random, the text encoder a random 2-layer BERT.
The model is built under ZeRO-3's `zero.Init` (VideoMAE via `_from_config` after `TrainingArguments(deepspeed=...)`),
trained with activation checkpointing through `TSGVTrainer`, saved (16-bit weights gathered) and reloaded. Prints one
markdown table row: size, parameters, step time, peak GPU memory, first / last loss, reload check.
"""

import argparse
import os
import tempfile
import time

import torch
from transformers import BertConfig, BertModel, TrainerCallback, TrainingArguments, VideoMAEModel

from modeling_tsgv import TSGVForGrounding
from modeling_tsgv.configuration_tsgv import BACKBONE_SIZES, random_backbone_config
from modeling_tsgv.trainer import TSGVTrainer

CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ds_configs", "zero3.json")


class RandomGrounding(torch.utils.data.Dataset):
    """Videos of random frames, 2 queries each with random token ids and windows."""

    def __init__(self, num_videos, num_frames, image_size):
        self.shape = (num_frames, 3, image_size, image_size)
        self.num_videos = num_videos

    def __len__(self):
        return self.num_videos

    def __getitem__(self, i):
        gen = torch.Generator().manual_seed(i)
        start = torch.rand(2, generator=gen) * 0.5
        return {
            "pixel_values": torch.randn(self.shape, generator=gen),
            "input_ids": torch.randint(1, 1000, (2, 12), generator=gen),
            "windows": torch.stack([start, start + 0.3], -1),
        }


def collate(items):
    return {
        "pixel_values": torch.stack([it["pixel_values"] for it in items]),
        "input_ids": torch.cat([it["input_ids"] for it in items]),
        "query_video_index": torch.arange(len(items)).repeat_interleave(2),
        "labels": torch.cat([it["windows"] for it in items]),
    }


class StepTimer(TrainerCallback):
    def __init__(self):
        self.times, self.losses, self.start = [], [], None

    def on_step_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.times.append(time.perf_counter() - self.start)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.losses.append(float(logs["loss"]))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=BACKBONE_SIZES, default="vit-b")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch_size", type=int, default=2, help="videos per device and step (2 queries each)")
    parser.add_argument("--num_frames", type=int, default=32)
    parser.add_argument("--cpu", action="store_true")
    parser.add_argument("--bf16", action="store_true", help="bf16 also on CPU (always on with a GPU)")
    parser.add_argument("--output_dir", default=os.path.join(tempfile.gettempdir(), "tsgv_zero3_check"))
    args = parser.parse_args()
    image_size = 64 if args.size == "tiny" else 224
    output_dir = args.output_dir  # the same on every rank
    training_args = TrainingArguments(
        output_dir=output_dir,
        deepspeed=CONFIG,
        max_steps=args.steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=1e-3,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        bf16=args.bf16 or not args.cpu,
        use_cpu=args.cpu,
        activation_checkpointing=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
    )
    if args.cpu:
        import deepspeed

        _ = training_args.device
        deepspeed.init_distributed(dist_backend="gloo")
    backbone = random_backbone_config(args.size, image_size, 16)
    text = BertConfig(
        vocab_size=1000, hidden_size=256, num_hidden_layers=2, num_attention_heads=4, intermediate_size=512
    )
    # built under zero.Init: these weights are partitioned as they are created
    model = TSGVForGrounding.from_backbones(
        video=VideoMAEModel._from_config(backbone), text=BertModel._from_config(text), num_frames=args.num_frames
    )
    timer = StepTimer()
    trainer = TSGVTrainer(
        model=model,
        args=training_args,
        train_dataset=RandomGrounding(64, args.num_frames, image_size),
        data_collator=collate,
        callbacks=[timer],
    )
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    trainer.save_model(output_dir)
    trainer.accelerator.wait_for_everyone()  # rank 0 writes the file the others read next
    reloaded = TSGVForGrounding.from_pretrained(output_dir)  # every rank: under ZeRO-3 loading is collective

    def count(m):
        return sum(getattr(p, "ds_numel", p.numel()) for p in m.parameters())

    ok = count(reloaded) == count(model)
    if trainer.is_world_process_zero():
        steady = sorted(timer.times[2:] or timer.times)[len(timer.times[2:] or timer.times) // 2]
        memory = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")
        device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
        print(
            "| device | size | params | frames | videos/step | median step s | peak GiB | loss first -> last | reload |"
        )
        print("|---|---|---:|---:|---:|---:|---:|---|---|")
        print(
            f"| {device} | {args.size} | {count(reloaded) / 1e6:.1f}M | {args.num_frames} "
            f"| {args.batch_size * training_args.world_size} | {steady:.3f} | {memory:.2f} "
            f"| {timer.losses[0]:.3f} -> {timer.losses[-1]:.3f} | {'ok' if ok else 'MISMATCH'} |"
        )


if __name__ == "__main__":
    main()
