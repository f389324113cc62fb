"""Stage 1 for random-init backbones: supervised clip classification, the way VideoMAE backbones are fine-tuned for
action recognition before they serve as frozen / adapted feature extractors.

No pretrained video weights can be had offline, and a frozen random ViT gives SCADA nothing to adapt. So, for the
built-in synthetic world, the backbone first learns multi-label clip classification from the training split's event
annotations: which actions happen in a clip, and which colour and which shape performs each one ("red+move_left",
"circle+move_left"), so that its features bind objects to motions. Clips are cut with the temporal stride the
grounding model samples at (clip_frames frames over clip_frames / num_frames of the video), so stage 2 sees the same
motion statistics. The classifier is `transformers.VideoMAEForVideoClassification` (multi-label), trained by the
`Trainer`; its `.videomae` is the backbone handed to `TSGVForGrounding.from_backbones`.
"""

import json
import logging
from pathlib import Path

import numpy as np
import torch
from transformers import Trainer, TrainingArguments, VideoMAEConfig, VideoMAEForVideoClassification

from .video import read_frames

logger = logging.getLogger(__name__)


def clip_label_names(vocabulary: dict) -> list[str]:
    """Label names: every action, every colour+action and every shape+action."""
    actions = list(vocabulary["actions"])
    return (
        actions
        + [f"{c}+{a}" for c in vocabulary["colours"] for a in actions]
        + [f"{s}+{a}" for s in vocabulary["shapes"] for a in actions]
    )


class EventClipDataset(torch.utils.data.Dataset):
    """Random clips of annotated videos with multi-hot labels of the events they overlap.

    Args:
        annotation_file: tsgv jsonl whose rows carry `action` and `object` {"colour", "shape"} (the synthetic world's).
        video_dir: folder that `video_path` entries are relative to.
        video_processor: resizes / normalises frames.
        label_names: from `clip_label_names`.
        clip_frames: frames per clip; clip_fraction: clip length as a fraction of the video (clip_frames / num_frames).
        clips_per_video: items per video and epoch; seed: base seed (item i of an epoch is reproducible).
    """

    def __init__(
        self,
        annotation_file,
        video_dir,
        video_processor,
        label_names,
        clip_frames,
        clip_fraction,
        clips_per_video=4,
        seed=0,
    ):
        events = {}
        with open(annotation_file) as f:
            for line in f:
                if line.strip():
                    record = json.loads(line)
                    events.setdefault(record["video_id"], []).append(record)
        self.videos = list(events.values())
        self.video_dir = Path(video_dir)
        self.video_processor = video_processor
        self.index = {name: i for i, name in enumerate(label_names)}
        self.clip_frames, self.clip_fraction = clip_frames, clip_fraction
        self.clips_per_video, self.seed = clips_per_video, seed

    def __len__(self):
        return len(self.videos) * self.clips_per_video

    def labels(self, events, start_s: float, end_s: float) -> torch.Tensor:
        """Multi-hot (num_labels,) of the events covering at least half of the clip or half of themselves."""
        target = torch.zeros(len(self.index))
        for event in events:
            overlap = min(end_s, event["end_s"]) - max(start_s, event["start_s"])
            if overlap >= 0.5 * min(end_s - start_s, event["end_s"] - event["start_s"]):
                action, obj = event["action"], event["object"]
                for name in (action, f"{obj['colour']}+{action}", f"{obj['shape']}+{action}"):
                    target[self.index[name]] = 1.0
        return target

    def __getitem__(self, i):
        events = self.videos[i // self.clips_per_video]
        rng = np.random.default_rng([self.seed, i, int(torch.initial_seed() % 2**31)])
        duration_s = events[0]["duration_s"]
        length_s = self.clip_fraction * duration_s
        if rng.random() < 0.75:  # mostly clips centred on an event, so positives are not rare
            event = events[rng.integers(len(events))]
            centre_s = rng.uniform(event["start_s"], event["end_s"])
        else:
            centre_s = rng.uniform(0, duration_s)
        start_s = float(np.clip(centre_s - length_s / 2, 0, duration_s - length_s))
        video = read_frames(
            self.video_dir / events[0]["video_path"],
            self.clip_frames,
            "random",
            rng=rng,
            duration_s=length_s,
            start_s=start_s,
        )
        pixels = self.video_processor([torch.from_numpy(video.frames)], return_tensors="pt")["pixel_values"][0]
        return {"pixel_values": pixels, "labels": self.labels(events, start_s, start_s + length_s)}


def pretrain_backbone_on_clips(
    backbone_config: VideoMAEConfig,
    annotation_file,
    video_dir,
    vocabulary: dict,
    video_processor,
    num_frames: int,
    output_dir,
    max_steps: int = 300,
    batch_size: int = 16,
    learning_rate: float = 1e-3,
    seed: int = 0,
    num_workers: int = 2,
) -> VideoMAEForVideoClassification:
    """Train a random-init VideoMAE on multi-label event clips; returns the classifier (its `.videomae` is the backbone).

    Args: backbone_config (clip length `num_frames` = clip_frames); the synthetic train annotations and video folder;
        its vocabulary (meta.json "vocabulary"); the grounding processor's video processor; the grounding model's
        num_frames (sets the clip stride); where the Trainer writes; optimisation settings.
    """
    names = clip_label_names(vocabulary)
    config = VideoMAEConfig(
        **{**backbone_config.to_dict(), "num_labels": len(names), "problem_type": "multi_label_classification"}
    )
    config.id2label = dict(enumerate(names))
    config.label2id = {n: i for i, n in enumerate(names)}
    model = VideoMAEForVideoClassification._from_config(config)
    clip_frames = backbone_config.num_frames
    dataset = EventClipDataset(
        annotation_file, video_dir, video_processor, names, clip_frames, clip_frames / num_frames, seed=seed
    )
    args = TrainingArguments(
        output_dir=str(output_dir),
        max_steps=max_steps,
        per_device_train_batch_size=batch_size,
        learning_rate=learning_rate,
        warmup_steps=max(1, max_steps // 20),
        weight_decay=0.05,
        logging_steps=max(1, max_steps // 10),
        save_strategy="no",
        report_to="none",
        seed=seed,
        dataloader_num_workers=num_workers,
        remove_unused_columns=False,
        disable_tqdm=False,
    )
    logger.info(f"stage 1: clip classification pretraining of the backbone, {len(names)} labels, {max_steps} steps")
    Trainer(model=model, args=args, train_dataset=dataset).train()
    return model


__all__ = ["clip_label_names", "EventClipDataset", "pretrain_backbone_on_clips"]
