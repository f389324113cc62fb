"""QVHighlights' official figures, reproduced: every number of the evaluator's output on moment_detr's sample
validation predictions (`../shared/data/real/qvhighlights`), to its printed precision; and small cases by hand."""

import json

import numpy as np
import pytest

from modeling_tsgv.qvhighlights_metrics import (
    detection_average_precision,
    qvhighlights_metrics,
    saliency_average_precision,
)


def _jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_every_number_of_the_official_evaluator_is_reproduced(shared_data):
    folder = shared_data / "qvhighlights"
    predictions = _jsonl(folder / "sample_val_preds.jsonl")
    ground_truth = _jsonl(folder / "highlight_val_release.jsonl")
    expected = json.loads((folder / "sample_val_preds_metrics_raw.json").read_text())
    got = qvhighlights_metrics(predictions, ground_truth)
    assert got == expected  # every table, every threshold, rounded as the evaluator prints
    assert got["brief"]["MR-full-mAP"] == 32.2 and got["brief"]["HL-min-VeryGood-Hit1"] == 55.55


def test_detection_ap_by_hand():
    gt = [[0, 10], [20, 30]]
    # one hit, then a miss, then the second hit: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1 -> envelope 1, 2/3
    preds = [[0, 10, 0.9], [50, 60, 0.8], [20, 30, 0.7]]
    assert detection_average_precision(gt, preds, (0.5,))[0] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    # a duplicate of a matched window is a false positive: each ground-truth window counts once
    assert detection_average_precision(gt, [[0, 10, 0.9], [0, 10, 0.8]], (0.5,))[0] == pytest.approx(0.5)
    assert detection_average_precision(gt, [], (0.5,))[0] == 0.0


def test_saliency_ap_edge_cases():
    assert saliency_average_precision(np.zeros(4), np.arange(4.0)) == 0.0  # no positive clip
    assert saliency_average_precision(np.ones(4), np.arange(4.0)) == 1.0  # every clip positive
    assert saliency_average_precision(np.array([0, 0, 1, 1.0]), np.arange(4.0)) == 1.0  # ranked first


def test_query_sets_must_match_unless_asked():
    gt = [
        {
            "qid": 1,
            "relevant_windows": [[0, 4]],
            "duration": 10,
            "relevant_clip_ids": [0],
            "saliency_scores": [[4, 4, 4]],
        }
    ]
    preds = [{"qid": 1, "pred_relevant_windows": [[0, 4, 1.0]]}, {"qid": 2, "pred_relevant_windows": [[0, 4, 1.0]]}]
    with pytest.raises(ValueError, match="1 queries are in only one"):
        qvhighlights_metrics(preds, gt)
    assert qvhighlights_metrics(preds, gt, match_number=False)["brief"]["MR-full-R1@0.5"] == 100.0
