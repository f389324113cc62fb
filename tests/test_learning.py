"""The model learns to ground: a tiny model fits a tiny synthetic world's queries, each query gets its own moment,
and the answers depend on the sentence. These fail if learning breaks (loss, gradients, conditioning, decoding)."""

import json

import numpy as np
import pytest
import torch
from transformers import AutoModel, VideoMAEConfig, VideoMAEModel

from modeling_tsgv import TSGVForGrounding, TSGVProcessor
from modeling_tsgv.metrics import grounding_metrics, temporal_iou
from modeling_tsgv.synthetic import generate
from modeling_tsgv.text_states import SentenceStates
from modeling_tsgv.video import read_frames

STEPS = 150


@pytest.fixture(scope="module")
def trained(tmp_path_factory, minilm_path):
    """A tiny SCADA model trained on the 4 training videos (2-5 queries each) of a 6-video world, and its data."""
    world = tmp_path_factory.mktemp("learning") / "world"
    generate(world, num_videos=6, seed=5, image_size=64, min_duration_s=8.0, max_duration_s=12.0, progress=False)
    rows = [json.loads(line) for line in (world / "annotations" / "train.jsonl").read_text().splitlines()]
    videos = sorted({row["video_id"] for row in rows})
    processor = TSGVProcessor.from_text_encoder(minilm_path, image_size=64)
    frames = [read_frames(world / "videos" / f"{v}.mp4", 16).frames for v in videos]
    sentences = [row["sentence"] for row in rows]
    inputs = processor(
        videos=frames,
        text=sentences,
        query_video_index=[videos.index(r["video_id"]) for r in rows],
        return_tensors="pt",
    )
    labels = torch.tensor([[r["start_s"] / r["duration_s"], r["end_s"] / r["duration_s"]] for r in rows])

    torch.manual_seed(0)
    backbone = VideoMAEModel(
        VideoMAEConfig(
            image_size=64, patch_size=16, num_frames=8, tubelet_size=2, hidden_size=64, num_hidden_layers=2,
            num_attention_heads=4, intermediate_size=128,
        )
    )  # fmt: skip
    model = TSGVForGrounding.from_backbones(
        video=backbone, text=AutoModel.from_pretrained(minilm_path), num_frames=16, head_hidden_size=64,
        head_dropout=0.0, scada_layers=[1], backbone_tuning="scada",
    )  # fmt: skip
    rows = [row[mask.bool()].tolist() for row, mask in zip(inputs["input_ids"], inputs["attention_mask"])]
    # as run_grounding.py trains a frozen text encoder: its states computed once, served with the batch
    table = SentenceStates.encode(model.text_model, rows)
    train_inputs = {**inputs, "text_states": table.lookup(rows, inputs["input_ids"].shape[1])}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    model.train()
    losses = []
    for _ in range(STEPS):
        loss = model(**train_inputs, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    return {"model": model, "processor": processor, "inputs": inputs, "labels": labels, "rows": rows, "losses": losses}


def top1(model, inputs) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).pred_spans[:, 0]  # (B_q, 2) normalised


def test_a_tiny_model_fits_its_training_queries(trained):
    losses = trained["losses"]
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])
    spans = top1(trained["model"], trained["inputs"])
    metrics = grounding_metrics([[s.tolist()] for s in spans], [[w.tolist()] for w in trained["labels"]])
    assert metrics["R1@0.5"] >= 90.0, metrics


def test_each_query_of_a_video_gets_its_own_moment(trained):
    spans = top1(trained["model"], trained["inputs"]).numpy()
    labels = trained["labels"].numpy()
    video_of = trained["inputs"]["query_video_index"].tolist()
    checked = 0
    for q, video in enumerate(video_of):
        others = [
            j
            for j, v in enumerate(video_of)
            if v == video and j != q and temporal_iou(labels[j], labels[q])[0, 0] < 0.5
        ]
        if not others:
            continue
        own = temporal_iou(spans[q], labels[q])[0, 0]
        assert all(own > temporal_iou(spans[q], labels[j])[0, 0] for j in others), trained["rows"][q]["sentence"]
        checked += 1
    assert checked >= 8  # the world has several videos with several distinct moments


@pytest.mark.parametrize("replacement", ["", "a recipe for lemon cake with sugar"])
def test_answers_change_when_the_sentence_is_empty_or_unrelated(trained, replacement):
    model, processor, inputs = trained["model"], trained["processor"], trained["inputs"]
    original = top1(model, inputs)
    if replacement:
        text = processor(text=[replacement] * len(trained["rows"]), return_tensors="pt")
    else:  # no words at all: only the tokenizer's special tokens (the processor itself refuses empty queries)
        text = processor.tokenizer([""] * len(trained["rows"]), return_tensors="pt", return_token_type_ids=False)
    swapped = top1(model, {**inputs, "input_ids": text["input_ids"], "attention_mask": text["attention_mask"]})
    moved = temporal_iou(original.numpy(), swapped.numpy()).diagonal() < 0.5
    assert moved.mean() >= 0.5, moved
