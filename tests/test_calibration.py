"""Calibrated scores and several moments per sentence: Platt scaling (fit, apply, saved in the config, served by the
model and the pipeline), the one-span-per-moment judging, `min_score`, and the kept-span / multi-moment figures."""

import numpy as np
import pytest
import torch
from conftest import tiny_batch, tiny_config

from modeling_tsgv import TSGVConfig, TSGVForGrounding
from modeling_tsgv.calibration import (
    apply_platt,
    calibrated_probability,
    fit_calibration,
    fit_platt,
    span_outcomes,
    with_negative_queries,
)
from modeling_tsgv.evaluation import kept_span_figures, matched_windows
from modeling_tsgv.metrics import expected_calibration_error, greedy_matches
from modeling_tsgv.spans import decode_spans


def test_platt_scaling_recovers_a_known_miscalibration():
    """Outcomes drawn from sigmoid(2 * logit - 1): the fit finds slope 2, intercept -1, and the ECE falls."""
    rng = np.random.default_rng(0)
    logits = rng.normal(0.0, 2.0, 20000)
    raw = 1 / (1 + np.exp(-logits))
    outcomes = rng.random(20000) < 1 / (1 + np.exp(-(2 * logits - 1)))
    slope, intercept = fit_platt(raw, outcomes)
    assert slope == pytest.approx(2.0, abs=0.1) and intercept == pytest.approx(-1.0, abs=0.1)
    calibrated = apply_platt(raw, [slope, intercept])
    assert expected_calibration_error(calibrated, outcomes) < 1.5 < expected_calibration_error(raw, outcomes)
    assert np.all(np.diff(calibrated[np.argsort(raw)]) >= 0)  # monotonic: every ranking stays


@pytest.mark.parametrize(
    "scores, outcomes",
    [([0.2, 0.8] * 5, [True, False] * 5), ([0.5] * 30, [True] * 30), ([0.9, 0.1] * 20, [False, True] * 20)],
    ids=["too few", "one kind", "ranks backwards"],
)
def test_no_fit_when_there_is_nothing_to_fit(scores, outcomes):
    assert fit_platt(scores, outcomes) is None
    assert np.array_equal(apply_platt(scores, None), scores)


def test_a_span_is_right_once_per_moment():
    """Detection precision's rule: a duplicate of a found moment is wrong; the best overlap is claimed."""
    spans = [[0.0, 1.0, 0.9], [0.05, 1.0, 0.8], [2.0, 3.0, 0.7], [5.0, 6.0, 0.6]]
    assert greedy_matches(spans, [[0.0, 1.0], [2.0, 3.2]]).tolist() == [True, False, True, False]
    assert greedy_matches([], [[0.0, 1.0]]).tolist() == [] and not greedy_matches(spans, []).any()
    records = [
        {"gt_windows_s": [[0.0, 1.0], [2.0, 3.2]], "pred_spans_s": spans},
        {"gt_windows_s": [], "pred_spans_s": spans},
    ]
    scores, right = span_outcomes(records)  # the query without moments is not judged
    assert scores.tolist() == [0.9, 0.8, 0.7, 0.6] and right.tolist() == [True, False, True, False]
    assert matched_windows(records[0], min_score=0.75) == (2, 1)  # two kept, one moment found


def test_calibration_is_a_config_field_checked_saved_and_loaded(tmp_path):
    config = tiny_config(span_calibration=[1.5, -0.5], relevance_calibration=[0.8, 0.2])
    model = TSGVForGrounding(config)
    model.save_pretrained(tmp_path)
    loaded = TSGVForGrounding.from_pretrained(tmp_path)
    assert loaded.config.span_calibration == [1.5, -0.5] and loaded.config.relevance_calibration == [0.8, 0.2]
    for bad in ([0.0, 1.0], [-1.0, 0.0], [1.0], "high", [float("nan"), 0.0]):
        with pytest.raises(ValueError, match="span_calibration"):
            TSGVConfig(span_calibration=bad)
    assert TSGVConfig().span_calibration is None  # an uncalibrated model: the raw sigmoid


def test_the_model_serves_calibrated_scores_and_the_same_ranking():
    torch.manual_seed(0)
    config = tiny_config(relevance_head=True)
    model = TSGVForGrounding(config).eval()
    batch = {k: v for k, v in tiny_batch(config=config).items() if k != "labels"}
    with torch.no_grad():
        raw = model(**batch)
        model.config.span_calibration, model.config.relevance_calibration = [2.0, -1.0], [0.5, 0.3]
        calibrated = model(**batch)
    assert torch.equal(raw.pred_spans, calibrated.pred_spans)  # the ranking is the same
    expected = torch.sigmoid(2.0 * torch.logit(raw.pred_scores.double()) - 1.0)
    assert torch.allclose(calibrated.pred_scores.double(), expected, atol=1e-5)
    assert torch.allclose(
        calibrated.relevance.double(), torch.sigmoid(0.5 * torch.logit(raw.relevance.double()) + 0.3)
    )
    logits = torch.randn(3, 6)
    assert torch.equal(calibrated_probability(logits, None), logits.sigmoid())
    offsets = torch.rand(3, 6, 2)
    assert torch.equal(decode_spans(logits, offsets, 4, 0.5, [1.0, 0.0])[1], decode_spans(logits, offsets, 4, 0.5)[1])


def test_negative_queries_are_other_videos_sentences():
    rows = [
        {"video_id": "a", "sentences": ["x moves", "y grows"], "query_ids": ["a:1", "a:2"], "spans_s": [[[0, 1]], [[2, 3]]]},
        {"video_id": "b", "sentences": ["x moves"], "query_ids": ["b:1"], "spans_s": [[[1, 2]]], "saliency_s": [[]]},
        {"video_id": "c", "sentences": ["z spins", "w"], "query_ids": ["c:1", "c:2"], "spans_s": [[[0, 1]], []],
         "absent": [False, True]},
    ]  # fmt: skip
    out = with_negative_queries(rows, seed=0)
    assert out[2] is rows[2] and len(rows[0]["sentences"]) == 2  # annotated absent queries kept; input unchanged
    for row, original in zip(out[:2], rows[:2]):
        assert row["sentences"][:-1] == original["sentences"] and row["absent"] == [False] * len(
            original["sentences"]
        ) + [True]
        assert row["sentences"][-1] not in original["sentences"] and row["spans_s"][-1] == []
    assert out[1]["sentences"][-1] != "x moves"  # b's only sentence is a's too: never its negative
    assert out[1]["saliency_s"] == [[], []] and out[1]["query_ids"] == ["b:1", "b:negative"]  # every per-query list


def _records(rng, n=400):
    """Served records of a model whose span scores and relevance are too confident, with absent queries."""
    records = []
    for q in range(n):
        absent = q % 4 == 0
        start = rng.uniform(0, 20)
        moments = [] if absent else [[start, start + 4.0]] + ([[start + 8.0, start + 12.0]] if q % 3 == 0 else [])
        spans = [[start + rng.normal(0, 1.5), start + 4.0 + rng.normal(0, 1.5), 0.9], [30.0, 34.0, 0.8]]
        spans += [[start + 8.0 + rng.normal(0, 1.0), start + 12.0, 0.7], [40.0, 41.0, 0.6]]
        record = {"gt_windows_s": moments, "pred_spans_s": spans, "duration_s": 60.0}
        record.update({"absent": True, "relevance": 0.8} if absent else {"relevance": 0.95})
        records.append(record)
    return records


def test_fit_on_served_records_lowers_both_calibration_errors():
    fit = fit_calibration(_records(np.random.default_rng(1)))
    assert fit["span_calibration"] is not None and fit["relevance_calibration"] is not None
    assert fit["span_ECE_after"] < fit["span_ECE_before"] and fit["relevance_ECE_after"] < fit["relevance_ECE_before"]
    assert fit["span_outcomes"] == 300 * 4 and fit["relevance_outcomes"] == 400


def test_kept_span_and_multi_moment_figures():
    records = [
        {"gt_windows_s": [[0, 1], [2, 3]], "pred_spans_s": [[0, 1, 0.9], [2, 3, 0.6], [5, 6, 0.4]], "duration_s": 10},
        {"gt_windows_s": [[4, 5]], "pred_spans_s": [[4, 5, 0.3], [7, 8, 0.2]], "duration_s": 10},
        {"gt_windows_s": [], "pred_spans_s": [[4, 5, 0.9]], "duration_s": 10, "absent": True},
    ]
    figures = kept_span_figures(records, "test")
    assert figures["test_kept_precision"] == 100.0 and figures["test_kept_recall"] == pytest.approx(200 / 3)
    assert figures["test_multi_queries"] == 1 and figures["test_multi_recall"] == 100.0
    assert figures["test_multi_spans_kept"] == 2.0 and figures["test_multi_mAP"] == 100.0
    assert kept_span_figures(records[1:2], "val")["val_multi_queries"] == 0
    assert "val_multi_mAP" not in kept_span_figures(records[1:2], "val") and kept_span_figures([], "x") == {}


def test_calibrating_on_a_split_scores_it_raw_with_negatives_and_sets_the_config(tmp_path, minilm_path):
    """`calibrate_on_split` on a real pipeline: the split's rows (with a ratings column, as the loaders give) get one
    negative each, are scored with the raw sigmoids whatever the model had, and the fit lands in the config."""
    from conftest import save_tiny_model, write_test_video
    from transformers import pipeline

    from modeling_tsgv.evaluation import calibrate_on_split
    from modeling_tsgv.pipeline_tsgv import TASK

    folder = save_tiny_model(tmp_path / "model", minilm_path, relevance_head=True, inference_window_s=20.0)
    pipe = pipeline(TASK, model=str(folder), device="cpu")
    pipe.model.config.span_calibration = [3.0, 2.0]  # an earlier fit: not what the new one is fitted on
    rows = [
        {"video_id": f"v{i}", "video_path": str(write_test_video(tmp_path / f"v{i}.mp4", np.arange(0, 10, 0.5))),
         "duration_s": 10.0, "sentences": [f"the {c} shape moves" for c in ("red", "blue")],
         "query_ids": [f"v{i}:0", f"v{i}:1"], "spans_s": [[[1.0, 4.0]], [[5.0, 8.0], [8.5, 9.5]]],
         "saliency_s": [[], []], "absent": [False, False]}
        for i in range(3)
    ]  # fmt: skip
    rows[1]["sentences"] = ["a star spins", "it blinks"]
    fit = calibrate_on_split(pipe, rows, top_k=10)
    steps = pipe.model.config.num_time_steps  # a one-window video has this many candidates per query
    assert fit["relevance_outcomes"] == 3 * 3 and fit["span_outcomes"] == 3 * 2 * steps  # negatives: not span-judged
    assert pipe.model.config.span_calibration == fit["span_calibration"]
    assert pipe.model.config.relevance_calibration == fit["relevance_calibration"]
    assert fit["span_ECE_before"] == fit["span_ECE_before"]  # a number: scored, raw
