"""Stage-1 clip classification pretraining on the synthetic world: labels, clip cutting, a few Trainer steps."""

import json

import torch
from transformers import VideoMAEConfig, VideoMAEVideoProcessor

from modeling_tsgv.pretraining import EventClipDataset, clip_label_names, pretrain_backbone_on_clips
from modeling_tsgv.synthetic import generate


def test_clip_pretraining_labels_and_training(tmp_path):
    world = tmp_path / "world"
    meta = generate(world, num_videos=4, seed=1, image_size=64, progress=False)
    vocabulary = meta["vocabulary"]
    names = clip_label_names(vocabulary)
    assert len(names) == 11 * (1 + 7 + 5) and "red+move_left" in names and "circle+spin" in names
    processor = VideoMAEVideoProcessor(size={"height": 32, "width": 32}, do_center_crop=False)
    train = world / "annotations" / "train.jsonl"
    dataset = EventClipDataset(train, world, processor, names, clip_frames=4, clip_fraction=0.25)

    event = json.loads(train.read_text().splitlines()[0])
    labels = dataset.labels([event], event["start_s"], event["end_s"])  # a clip exactly over the event
    on = {names[i] for i in labels.nonzero().flatten().tolist()}
    action, obj = event["action"], event["object"]
    assert on == {action, f"{obj['colour']}+{action}", f"{obj['shape']}+{action}"}
    assert dataset.labels([event], event["end_s"] + 1, event["end_s"] + 2).sum() == 0  # a clip after it

    item = dataset[0]
    assert item["pixel_values"].shape == (4, 3, 32, 32) and item["labels"].shape == (len(names),)

    backbone = VideoMAEConfig(
        image_size=32, patch_size=16, num_frames=4, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64,
    )  # fmt: skip
    torch.manual_seed(0)
    classifier = pretrain_backbone_on_clips(
        backbone, train, world, vocabulary, processor, num_frames=16, output_dir=tmp_path / "stage1",
        max_steps=3, batch_size=4, num_workers=0,
    )  # fmt: skip
    assert classifier.config.problem_type == "multi_label_classification"
    assert classifier.config.num_labels == len(names)
    torch.manual_seed(0)
    fresh = type(classifier)._from_config(classifier.config)
    moved = (
        classifier.videomae.encoder.layer[0].output.dense.weight - fresh.videomae.encoder.layer[0].output.dense.weight
    )
    assert moved.abs().max() > 0  # the backbone trained
