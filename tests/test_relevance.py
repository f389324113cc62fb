"""Relevance ("is the described moment in the video at all?"): negative queries in the batch, the head's loss and
output, absent queries in the synthetic test splits, the pipeline's answer and the figures that judge it."""

import json

import numpy as np
import pytest
import torch
from conftest import tiny_batch, tiny_config

from modeling_tsgv import TSGVForGrounding
from modeling_tsgv.data import VideoCentricCollator
from modeling_tsgv.metrics import rejection_aware_recall, relevance_metrics


def _row(video_id, sentences, absent=None):
    return {
        "video_id": video_id,
        "duration_s": 10.0,
        "sentences": sentences,
        "spans_s": [[] if (absent or [False] * len(sentences))[i] else [[1.0, 4.0]] for i in range(len(sentences))],
        "absent": absent or [False] * len(sentences),
        "pixel_values": torch.zeros(8, 3, 32, 32),
    }


def test_the_collator_adds_other_videos_sentences_as_negatives(minilm_path):
    from modeling_tsgv import TSGVProcessor

    processor = TSGVProcessor.from_text_encoder(minilm_path, image_size=32)
    rows = [_row("a", ["the red circle moves left", "a blue square grows"]), _row("b", ["the red circle moves left"]),
            _row("c", ["a star spins", "it blinks"], absent=[False, True])]  # fmt: skip
    collator = VideoCentricCollator(processor, seed=0, negatives_per_video=1)
    batch = collator(rows)
    relevance = batch["relevance_labels"].tolist()
    assert relevance[:5] == [1.0, 1.0, 1.0, 1.0, 0.0]  # c's second query is annotated absent
    negatives = batch["query_video_index"][5:].tolist()
    assert negatives == [0, 1, 2] and relevance[5:] == [0.0, 0.0, 0.0]  # one per video, label 0
    assert (batch["labels"][5:] < 0).all()  # no moment: no grounding loss
    # a negative is never one of the video's own sentences (b's only sentence is also a's: never a's negative)
    texts = processor.tokenizer.batch_decode(batch["input_ids"][5:], skip_special_tokens=True)
    assert texts[0] not in ("the red circle moves left", "a blue square grows")
    assert texts[1] != "the red circle moves left" and texts[2] not in ("a star spins", "it blinks")
    assert collator(rows)["input_ids"].tolist() == batch["input_ids"].tolist()  # seeded: the same draw
    assert "relevance_labels" not in VideoCentricCollator(processor)([rows[0], rows[1]])  # off by default


def test_the_relevance_head_learns_present_from_negative_queries():
    torch.manual_seed(0)
    model = TSGVForGrounding(tiny_config(relevance_head=True)).train()
    batch = tiny_batch()  # 4 queries over 2 videos
    batch["labels"][2:] = -100.0  # the second video's queries become negatives: no moment
    batch["input_ids"][2:] = 7  # a sentence unlike the others
    batch["relevance_labels"] = torch.tensor([1.0, 1.0, 0.0, 0.0])
    out = model(**batch)
    assert "relevance" in out.loss_dict and out.relevance.shape == (4,)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(30):
        optimizer.zero_grad()
        model(**batch).loss.backward()
        optimizer.step()
    with torch.no_grad():
        relevance = model.eval()(**{k: v for k, v in batch.items() if k != "relevance_labels"}).relevance
    assert relevance[:2].min() > 0.5 > relevance[2:].max()
    assert TSGVForGrounding(tiny_config()).eval()(**tiny_batch()).relevance is None  # no head, no relevance


def test_relevance_figures_by_hand():
    figures = relevance_metrics([0.9, 0.8, 0.3, 0.6], [True, True, False, False], threshold=0.5)
    assert figures["relevance_AUROC"] == 100.0  # every present query above every absent one
    assert figures["relevance_accuracy"] == 75.0  # 0.6 accepts an absent query
    # bins: 0.9 (present), 0.8 (present), 0.3 (absent), 0.6 (absent): |1-0.9|+|1-0.8|+|0-0.3|+|0-0.6| over 4
    assert figures["relevance_ECE"] == pytest.approx(100 * (0.1 + 0.2 + 0.3 + 0.6) / 4)
    records = [
        {"relevance": 0.9, "gt_windows_s": [[0, 10]], "pred_spans_s": [[0, 9, 0.8]]},  # accepted, hit
        {"relevance": 0.4, "gt_windows_s": [[0, 10]], "pred_spans_s": [[0, 9, 0.8]]},  # rejected: wrong
        {"relevance": 0.2, "absent": True, "gt_windows_s": [], "pred_spans_s": [[0, 9, 0.8]]},  # rejected: right
        {"relevance": 0.7, "absent": True, "gt_windows_s": [], "pred_spans_s": [[0, 9, 0.8]]},  # accepted: wrong
    ]
    assert rejection_aware_recall(records, 0.5) == 50.0


def test_synthetic_test_splits_gain_one_sure_absent_query_per_video(tmp_path):
    from modeling_tsgv.synthetic import described_event, with_absent_queries

    lines = []
    for video, events in {"v1": [("red", "circle", "move_left")], "v2": [("blue", "square", "grow")],
                          "v3": [("red", "circle", "move_left"), ("green", "star", "spin")]}.items():  # fmt: skip
        for colour, shape, action in events:
            lines.append({"video_id": video, "video_path": f"videos/{video}.mp4", "duration_s": 8.0,
                          "sentence": f"the {colour} {shape} does {action}", "start_s": 1.0, "end_s": 2.0,
                          "object": {"colour": colour, "shape": shape}, "action": action})  # fmt: skip
    source = tmp_path / "test.jsonl"
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    target = with_absent_queries(source, seed=3)
    records = [json.loads(line) for line in target.read_text().splitlines()]
    assert records[: len(lines)] == lines  # the present queries unchanged
    absent = records[len(lines) :]
    assert [r["video_id"] for r in absent] == ["v1", "v2", "v3"] and all(r["absent"] for r in absent)
    events = {v: {described_event(r) for r in lines if r["video_id"] == v} for v in ("v1", "v2", "v3")}
    by_sentence = {r["sentence"]: described_event(r) for r in lines}
    for record in absent:  # what the sentence describes does not happen in that video
        assert by_sentence[record["sentence"]] not in events[record["video_id"]]
    assert with_absent_queries(source, seed=3).read_text() == target.read_text()


def test_the_pipeline_answers_relevance_and_says_probably_absent(tmp_path, minilm_path):
    from conftest import save_tiny_model, write_test_video
    from transformers import pipeline

    from modeling_tsgv import TSGVProcessor
    from modeling_tsgv.pipeline_tsgv import TASK

    folder = save_tiny_model(tmp_path / "relevant", minilm_path, relevance_head=True, inference_window_s=20.0)
    model = TSGVForGrounding.from_pretrained(folder)
    with torch.no_grad():  # a constant relevance of sigmoid(-2): below the default threshold
        model.head.relevance[3].weight.zero_()
        model.head.relevance[3].bias.fill_(-2.0)
    pipe = pipeline(TASK, model=model, processor=TSGVProcessor.from_pretrained(folder), device="cpu")
    video = write_test_video(tmp_path / "long.mp4", np.arange(0, 50, 0.5))  # 50 s: several 20-s windows
    timeline = pipe(video, queries=["a"], return_timeline=True)[0]
    assert timeline["relevance"] == pytest.approx(1 / (1 + np.exp(2.0)), abs=1e-6) and timeline["absent"] is True
    assert set(pipe(video, queries="a")[0]) == {"start", "end", "score"}  # the plain answer is unchanged: spans
