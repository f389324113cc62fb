"""grounding_metrics: IoU definition, multi-window rule, R5, and the golden numbers of the official QVHighlights evaluator."""

import json

import numpy as np
import pytest

from modeling_tsgv.metrics import grounding_metrics, load_evaluate_metric, temporal_iou


def test_temporal_iou_definition():
    iou = temporal_iou([[0.0, 10.0], [2.0, 4.0], [5.0, 5.0]], [[5.0, 15.0], [20.0, 30.0]])
    np.testing.assert_allclose(iou[0], [5 / 15, 0.0])
    np.testing.assert_allclose(iou[1], [0.0, 0.0])
    np.testing.assert_allclose(temporal_iou([[5.0, 5.0]], [[5.0, 5.0]]), [[0.0]])  # empty union -> 0, not NaN


def test_recall_and_miou_in_percent():
    predictions = [[(0.0, 4.0), (10.0, 20.0)], [(0.0, 1.0), (6.0, 10.0, 0.3)], []]
    references = [(0.0, 5.0), (5.0, 10.0), (1.0, 2.0)]
    m = grounding_metrics(predictions, references)
    assert m["R1@0.7"] == pytest.approx(100 / 3)  # only query 0's top-1 (IoU 0.8) reaches 0.7
    assert m["R5@0.7"] == pytest.approx(200 / 3)  # query 1's second span has IoU 0.8
    assert m["mIoU"] == pytest.approx(100 * (0.8 + 0.0 + 0.0) / 3)  # a query without predictions counts as IoU 0
    assert set(m) == {"R1@0.3", "R1@0.5", "R1@0.7", "R5@0.3", "R5@0.5", "R5@0.7", "mIoU"}


def test_several_ground_truth_windows_score_against_the_best_match():
    m = grounding_metrics([[(20.0, 30.0)]], [[(0.0, 10.0), (21.0, 30.0)]])
    assert m["R1@0.7"] == 100.0 and m["mIoU"] == pytest.approx(90.0)


def test_bad_references_are_named():
    with pytest.raises(ValueError, match="reference 1"):
        grounding_metrics([[(0, 1)], [(0, 1)]], [(0, 1), []])
    with pytest.raises(ValueError, match="2 predictions for 1 references"):
        grounding_metrics([[(0, 1)], [(0, 1)]], [(0, 1)])


def test_golden_numbers_of_the_official_qvhighlights_evaluator(shared_data):
    folder = shared_data / "qvhighlights"
    windows = {}
    with open(folder / "highlight_val_release.jsonl") as f:
        for line in f:
            if line.strip():
                record = json.loads(line)
                windows[record["qid"]] = record["relevant_windows"]
    with open(folder / "sample_val_preds.jsonl") as f:
        preds = [json.loads(line) for line in f if line.strip()]
    official = json.loads((folder / "sample_val_preds_metrics_raw.json").read_text())["brief"]
    m = grounding_metrics([p["pred_relevant_windows"] for p in preds], [windows[p["qid"]] for p in preds])
    assert len(preds) == 1550
    assert round(m["R1@0.5"], 2) == official["MR-full-R1@0.5"] == 53.94
    assert round(m["R1@0.7"], 2) == official["MR-full-R1@0.7"] == 34.84
    assert round(m["R1@0.3"], 2) == 67.48 and round(m["mIoU"], 2) == 49.21  # same IoU, our extra columns
    # scoring against the first window only (a common bug) gives a different, lower number
    first_only = grounding_metrics([p["pred_relevant_windows"] for p in preds], [windows[p["qid"]][0] for p in preds])
    assert round(first_only["R1@0.5"], 2) == 45.16


def test_evaluate_module_matches_the_function_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")
    metric = load_evaluate_metric()
    predictions = [[[0.0, 4.0], [1.0, 2.0]], [[3.0, 4.0]]]
    references = [[[0.0, 5.0]], [[0.0, 1.0], [3.0, 5.0]]]
    assert metric.compute(predictions=predictions, references=references) == grounding_metrics(predictions, references)
    metric.add_batch(predictions=predictions[:1], references=references[:1])
    metric.add_batch(predictions=predictions[1:], references=references[1:])
    assert metric.compute()["mIoU"] == pytest.approx(65.0)


def test_sentence_binding_counts_answers_that_follow_their_own_sentence():
    from modeling_tsgv.metrics import sentence_binding

    records = [
        # video a: two queries with distinct moments; q1 answered on its own moment, q2 on q1's moment
        {"video_id": "a", "gt_windows_s": [[0.0, 2.0]], "pred_spans_s": [[0.1, 2.1, 0.9]]},
        {"video_id": "a", "gt_windows_s": [[5.0, 8.0]], "pred_spans_s": [[0.0, 2.0, 0.8]]},
        # video b: one query only -> not counted
        {"video_id": "b", "gt_windows_s": [[1.0, 3.0]], "pred_spans_s": [[1.0, 3.0]]},
        # video c: two queries on (almost) the same moment -> neither has a distinct other moment
        {"video_id": "c", "gt_windows_s": [[1.0, 3.0]], "pred_spans_s": [[1.0, 3.0]]},
        {"video_id": "c", "gt_windows_s": [[1.1, 3.0]], "pred_spans_s": [[1.0, 3.0]]},
        # video d: own IoU below 0.3 although larger than the other's -> not bound
        {"video_id": "d", "gt_windows_s": [[0.0, 1.0]], "pred_spans_s": [[0.8, 4.0]]},
        {"video_id": "d", "gt_windows_s": [[6.0, 9.0]], "pred_spans_s": [[6.0, 9.0]]},
    ]
    share, counted = sentence_binding(records)
    assert counted == 4
    assert share == pytest.approx(50.0)  # a/q1 and d/q2
    assert np.isnan(sentence_binding(records[2:3])[0])


def test_the_prior_proposes_five_fixed_spans_for_its_r5():
    """R5 of the prior compares like with like: five fixed spans, the first the R1 span, each next covering the
    training moments the earlier ones missed."""
    from modeling_tsgv.baselines import fit_prior_span, fit_prior_spans, prior_baseline

    early = [[0.0, 0.2]] * 6 + [[0.02, 0.22]] * 2  # the most common moment
    late = [[0.7, 0.9]] * 4
    middle = [[0.4, 0.55]] * 2
    spans = fit_prior_spans(early + late + middle, k=3)
    assert spans[0] == fit_prior_span(early + late + middle)
    assert spans[0][1] <= 0.3 and spans[1][0] >= 0.6 and 0.3 <= spans[2][0] <= 0.5  # one span per cluster
    rows = [{"duration_s": 10.0, "spans_s": [[[s * 10, e * 10]] for s, e in early + late + middle]}]
    (start, end), metrics = prior_baseline(rows, rows)
    assert (start, end) == spans[0]
    assert metrics["R1@0.5"] == pytest.approx(100 * 8 / 14) and metrics["R5@0.5"] == pytest.approx(100.0)
    with pytest.raises(ValueError, match="k must be >= 1"):
        fit_prior_spans(early, k=0)


def test_zero_queries_measure_nothing_nan_as_binding_does():
    from modeling_tsgv.metrics import sentence_binding

    metrics = grounding_metrics([], [])
    assert metrics.keys() >= {"R1@0.5", "R5@0.7", "mIoU"}
    assert all(np.isnan(value) for value in metrics.values())  # never a 0 that a best-checkpoint search would keep
    assert np.isnan(sentence_binding([])[0])


def test_the_pipelines_own_answers_are_scored_as_they_come():
    references = [(0.0, 5.0), [(5.0, 10.0), (20.0, 22.0)]]
    as_pairs = [[(0.0, 4.0, 0.9), (10.0, 20.0, 0.2)], [(6.0, 10.0, 0.8)]]
    as_pipeline = [
        [{"start": 0.0, "end": 4.0, "score": 0.9}, {"start": 10.0, "end": 20.0, "score": 0.2}],
        [{"start": 6.0, "end": 10.0, "score": 0.8}],
    ]
    expected = grounding_metrics(as_pairs, references)
    assert grounding_metrics(as_pipeline, references) == expected
    timeline = [{"query": "q", "spans": spans, "times_s": [], "step_scores": []} for spans in as_pipeline]
    assert grounding_metrics(timeline, references) == expected  # pipeline(..., return_timeline=True)
