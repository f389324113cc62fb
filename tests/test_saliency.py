"""Highlight detection: per-step saliency targets from clip ratings (or moments), the saliency head's loss and
output, and the ratings carried from QVHighlights' files through the collator."""

import pytest
import torch
from conftest import tiny_batch, tiny_config

from modeling_tsgv import TSGVForGrounding
from modeling_tsgv.annotations import read_annotations
from modeling_tsgv.data import VideoCentricCollator
from modeling_tsgv.saliency import saliency_targets
from modeling_tsgv.spans import step_centers


def test_targets_come_from_the_rated_clip_of_each_step_or_from_the_moments():
    centers = step_centers(4, "cpu")  # 0.125, 0.375, 0.625, 0.875
    ratings = torch.tensor([[[0.25, 0.5, 0.75], [0.5, 1.0, 0.25]], [[-100.0] * 3, [-100.0] * 3]])
    positive = torch.tensor([[False, True, False, False], [False, False, True, True]])
    targets, rated = saliency_targets(ratings, positive, centers)
    assert rated.tolist() == [True, False]
    assert targets[0].tolist() == [0.0, 0.75, 0.25, 0.25]  # unrated clips are not salient
    assert targets[1].tolist() == [0.0, 0.0, 1.0, 1.0]  # no ratings: inside a moment or not
    targets, rated = saliency_targets(None, positive, centers)
    assert torch.equal(targets, positive.float()) and not rated.any()


def test_the_saliency_head_trains_from_ratings_and_its_output_is_a_probability_per_step():
    torch.manual_seed(0)
    model = TSGVForGrounding(tiny_config(saliency_head=True)).train()
    batch = tiny_batch()  # 4 queries over 4 time steps
    batch["saliency_labels"] = torch.tensor([[[0.0, 0.5, 1.0]]] * 4)  # the first half of each video is salient
    out = model(**batch)
    assert set(out.loss_dict) == {"focal", "diou", "l1", "saliency"} and torch.isfinite(out.loss_dict["saliency"])
    out.loss.backward()
    assert model.head.saliency[0].weight.grad.abs().sum() > 0
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(30):
        optimizer.zero_grad()
        model(**batch).loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        saliency = model(**{k: v for k, v in batch.items() if k != "saliency_labels"}).step_saliency
    assert saliency.shape == (4, 4) and ((saliency >= 0) & (saliency <= 1)).all()
    assert (saliency[:, :2].min() > saliency[:, 2:].max()).item()  # it learnt which half is rated


def test_without_a_saliency_head_saliency_is_the_foreground_probability():
    model = TSGVForGrounding(tiny_config()).eval()
    assert model.head.saliency is None
    batch = tiny_batch()
    with torch.no_grad():
        out = model(**batch, saliency_labels=torch.tensor([[[0.0, 0.5, 1.0]]] * 4))  # accepted, nothing to train
    torch.testing.assert_close(out.step_saliency, out.step_logits.sigmoid())
    assert "saliency" not in out.loss_dict


def test_qvhighlights_ratings_reach_the_batch(shared_data, minilm_path):
    from modeling_tsgv import TSGVProcessor

    rows, _ = read_annotations(shared_data / "qvhighlights" / "highlight_val_release.jsonl", "qvhighlights")
    first = rows[0]
    clip = first["saliency_s"][0][0]  # qid 2579: clip 41 rated (1, 1, 2)
    assert clip == [82.0, 84.0, 1.0, 1.0, 2.0] and len(first["saliency_s"][0]) == 34
    processor = TSGVProcessor.from_text_encoder(minilm_path, image_size=32)
    feature = {**first, "pixel_values": torch.zeros(8, 3, 32, 32)}
    batch = VideoCentricCollator(processor)([feature])
    saliency = batch["saliency_labels"]
    assert saliency.shape[0] == len(first["sentences"]) and saliency.shape[2] == 3
    assert saliency[0, 0].tolist() == pytest.approx([82 / 150, 84 / 150, 4 / 12])  # mean rating / 4
