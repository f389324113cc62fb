"""QVHighlights' official evaluation (moment_detr's `standalone_eval/eval.py`), reproduced to its printed precision.

Inputs are the official formats, one dict per query:
- predictions: `{"qid", "pred_relevant_windows": [[start_s, end_s, score], ...] (best first), "pred_saliency_scores":
  [float per 2-s clip]}`;
- ground truth: `{"qid", "duration" (s), "relevant_windows": [[start_s, end_s], ...], "relevant_clip_ids": [int],
  "saliency_scores": [[a1, a2, a3] per relevant clip]}` (scores 0-4 from three annotators).

Moment retrieval (MR), per length bucket of the ground-truth windows (short <= 10 s < middle <= 30 s < long; full):
- mAP@t: per query, the ActivityNet detection AP of its top-10 windows against its ground-truth windows (greedy
  matching by score, each ground-truth window matched once; interpolated precision envelope), averaged over queries;
  t in 0.5:0.05:0.95, and their mean ("average", the headline "MR-full-mAP").
- R1@t: the top window's IoU with the ground-truth window it overlaps most, >= t, averaged over queries.
Highlight detection (HL), with a clip positive when its score reaches 2 (Fair), 3 (Good) or 4 (VeryGood):
- mAP: per query and annotator, the average precision of the predicted clip scores (over the clips both cover) (scikit-learn's precision-recall
  curve, precision made non-decreasing from the top as the evaluator does, averaged where recall changes), averaged.
- HIT@1: whether the top-scored clip is positive for the annotator who rated it highest, averaged over queries.
Every figure is in percent, rounded to 2 decimals as the evaluator prints them (`tests/test_qvhighlights_metrics.py`
checks every number of its output on the real validation predictions).
"""

import copy

import numpy as np

from .metrics import temporal_iou

MR_IOU_THRESHOLDS = tuple(round(t, 2) for t in np.linspace(0.5, 0.95, 10))
LENGTH_BUCKETS_S = {"short": (0, 10), "middle": (10, 30), "long": (30, 150), "full": (0, 150)}
SALIENCY_LEVELS = {"Fair": 2, "Good": 3, "VeryGood": 4}
CLIP_LENGTH_S = 2.0  # QVHighlights rates 2-s clips
MAX_PREDICTED_WINDOWS = 10


def _percent(value: float) -> float:
    return float(f"{100 * value:.2f}")


def interpolated_average_precision(precision: np.ndarray, recall: np.ndarray) -> float:
    """ActivityNet's AP: the area under the precision envelope (precision made non-increasing in recall)."""
    precision = np.concatenate([[0.0], precision, [0.0]])
    recall = np.concatenate([[0.0], recall, [1.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.flatnonzero(recall[1:] != recall[:-1]) + 1
    return float(np.sum((recall[steps] - recall[steps - 1]) * precision[steps]))


def detection_average_precision(gt_windows, pred_windows, thresholds=MR_IOU_THRESHOLDS) -> np.ndarray:
    """AP of one query's scored windows (K, 3) against its ground-truth windows (W, 2), at each IoU threshold: (T,).

    Predictions are taken in decreasing score (stable for ties); each is a true positive at threshold t when the
    free ground-truth window it overlaps most (among those not yet matched at t) reaches t."""
    ap = np.zeros(len(thresholds))
    if len(pred_windows) == 0:
        return ap
    preds = sorted((list(w) for w in pred_windows), key=lambda w: -w[2])
    gts = np.asarray(gt_windows, dtype=np.float64).reshape(-1, 2)
    ious = temporal_iou([w[:2] for w in preds], gts)  # (K, W)
    matched = np.full((len(thresholds), len(gts)), False)
    tp = np.zeros((len(thresholds), len(preds)))
    for k, row in enumerate(ious):
        for t, threshold in enumerate(thresholds):
            for j in np.argsort(row, kind="stable")[::-1]:  # the most-overlapping ground truth first
                if row[j] < threshold:
                    break
                if not matched[t, j]:
                    tp[t, k], matched[t, j] = 1, True
                    break
    tp_cum = np.cumsum(tp, axis=1)
    precision = tp_cum / np.arange(1, len(preds) + 1)
    recall = tp_cum / len(gts)
    return np.array([interpolated_average_precision(precision[t], recall[t]) for t in range(len(thresholds))])


def mean_average_precision(predictions: list[dict], ground_truth: list[dict]) -> dict:
    """{"0.5": mAP, ..., "0.95": mAP, "average": mean of them} in %, over the queries of `predictions`."""
    gt_by_qid = {d["qid"]: d["relevant_windows"] for d in ground_truth}
    per_query = np.array([
        detection_average_precision(gt_by_qid[d["qid"]], d["pred_relevant_windows"][:MAX_PREDICTED_WINDOWS])
        for d in predictions
    ])  # fmt: skip
    per_threshold = per_query.mean(0)
    result = {str(t): _percent(v) for t, v in zip(MR_IOU_THRESHOLDS, per_threshold)}
    result["average"] = _percent(per_threshold.mean())
    return result


def recall_at_one(predictions: list[dict], ground_truth: list[dict]) -> dict:
    """{"0.5": R1, ..., "0.95": R1} in %: the top window against the ground-truth window it overlaps most."""
    gt_by_qid = {d["qid"]: d["relevant_windows"] for d in ground_truth}
    best_ious = []
    for d in predictions:
        top = d["pred_relevant_windows"][0][:2]
        best_ious.append(temporal_iou([top], gt_by_qid[d["qid"]])[0].max())
    best_ious = np.array(best_ious)
    return {str(t): _percent(np.mean(best_ious >= t)) for t in MR_IOU_THRESHOLDS}


def in_length_bucket(predictions: list[dict], ground_truth: list[dict], bucket_s: tuple) -> tuple[list, list]:
    """The queries with a ground-truth window of length in (low, high] s, keeping only those windows; all for full."""
    low, high = bucket_s
    if bucket_s == LENGTH_BUCKETS_S["full"]:
        return predictions, ground_truth
    kept = []
    for d in ground_truth:
        windows = [w for w in d["relevant_windows"] if low < w[1] - w[0] <= high]
        if windows:
            kept.append({**copy.deepcopy(d), "relevant_windows": windows})
    qids = {d["qid"] for d in kept}
    return [d for d in predictions if d["qid"] in qids], kept


def moment_retrieval_metrics(predictions: list[dict], ground_truth: list[dict]) -> dict:
    """{bucket: {"MR-mAP": {...}, "MR-R1": {...}}} for the short / middle / long / full buckets (a bucket without
    queries is left out)."""
    out = {}
    for name, bucket in LENGTH_BUCKETS_S.items():
        preds, gts = in_length_bucket(predictions, ground_truth, bucket)
        if not preds:
            continue
        out[name] = {"MR-mAP": mean_average_precision(preds, gts), "MR-R1": recall_at_one(preds, gts)}
    return out


def clip_scores(gt: dict, clip_length_s: float = CLIP_LENGTH_S) -> np.ndarray:
    """(num_clips, 3) annotator scores of every clip of the video (0 outside `relevant_clip_ids`)."""
    scores = np.zeros((int(gt["duration"] / clip_length_s), 3))
    scores[np.asarray(gt["relevant_clip_ids"], dtype=int)] = np.asarray(gt["saliency_scores"])
    return scores


def saliency_average_precision(positive: np.ndarray, predicted: np.ndarray) -> float:
    """The evaluator's AP of clip scores `predicted` (C,) for binary labels `positive` (C,): 0 with no positive, 1 when
    every clip is positive, else the mean of the non-decreasing-from-the-top precision where recall changes."""
    from sklearn.metrics import precision_recall_curve  # the evaluator's own curve (ties handled as it does)

    if len(set(positive.tolist())) == 1:
        return float(positive[0] != 0)
    precision, recall, _ = precision_recall_curve(positive, predicted)
    precision = np.maximum.accumulate(precision)
    recall = recall.astype(np.float32)
    return float(np.mean(precision[np.flatnonzero(np.diff(recall))]))


def highlight_metrics(predictions: list[dict], ground_truth: list[dict]) -> dict:
    """{"HL-min-<level>": {"HL-mAP", "HL-Hit1"}} in % for the Fair / Good / VeryGood levels."""
    scores = {d["qid"]: clip_scores(d) for d in ground_truth}
    out = {}
    for name, level in SALIENCY_LEVELS.items():
        hits, aps = [], []
        for d in predictions:
            predicted = np.asarray(d["pred_saliency_scores"], dtype=np.float64)
            # a prediction may cover a clip fewer than int(duration / 2) (13 of moment_detr's 1,549 validation
            # predictions do): scored over the clips both cover, which reproduces the evaluator's figures
            positive = (scores[d["qid"]][: len(predicted)] >= level).astype(float)  # (C, 3)
            predicted = predicted[: len(positive)]
            top = int(np.argmax(predicted))
            hits.append(positive[top].max() if top < len(positive) else 0.0)
            aps.extend(saliency_average_precision(positive[:, a], predicted) for a in range(positive.shape[1]))
        out[f"HL-min-{name}"] = {"HL-mAP": _percent(np.mean(aps)), "HL-Hit1": _percent(np.mean(hits))}
    return out


def qvhighlights_metrics(predictions: list[dict], ground_truth: list[dict], match_number: bool = True) -> dict:
    """The evaluator's whole output: `brief` (the headline figures) and the per-bucket / per-level tables.

    Args:
        predictions / ground_truth: one dict per query (module docstring); moment retrieval is scored when the
            predictions have `pred_relevant_windows`, highlight detection when they have `pred_saliency_scores`.
        match_number: require the same queries in both (the evaluator's default); False scores the shared ones.
    Raises:
        ValueError: the query sets differ (with `match_number`), or there is nothing to score.
    """
    pred_qids, gt_qids = {d["qid"] for d in predictions}, {d["qid"] for d in ground_truth}
    if match_number and pred_qids != gt_qids:
        raise ValueError(f"{len(pred_qids ^ gt_qids)} queries are in only one of predictions and ground truth")
    shared = pred_qids & gt_qids
    predictions = [d for d in predictions if d["qid"] in shared]
    ground_truth = [d for d in ground_truth if d["qid"] in shared]
    if not predictions:
        raise ValueError("no query to score")
    out, brief = {}, {}
    if "pred_relevant_windows" in predictions[0]:
        mr = moment_retrieval_metrics(predictions, ground_truth)
        out.update(mr)
        brief.update({"MR-full-R1@0.5": mr["full"]["MR-R1"]["0.5"], "MR-full-R1@0.7": mr["full"]["MR-R1"]["0.7"],
                      "MR-full-mAP": mr["full"]["MR-mAP"]["average"], "MR-full-mAP@0.5": mr["full"]["MR-mAP"]["0.5"],
                      "MR-full-mAP@0.75": mr["full"]["MR-mAP"]["0.75"]})  # fmt: skip
        brief.update(
            {f"MR-{name}-mAP": mr[name]["MR-mAP"]["average"] for name in ("long", "middle", "short") if name in mr}
        )
    if "pred_saliency_scores" in predictions[0]:
        hl = highlight_metrics(predictions, ground_truth)
        out.update(hl)
        for name in SALIENCY_LEVELS:
            brief[f"HL-min-{name}-mAP"] = hl[f"HL-min-{name}"]["HL-mAP"]
            brief[f"HL-min-{name}-Hit1"] = hl[f"HL-min-{name}"]["HL-Hit1"]
    if not brief:
        raise ValueError("predictions have neither pred_relevant_windows nor pred_saliency_scores")
    return {"brief": brief, **out}


__all__ = [
    "MR_IOU_THRESHOLDS",
    "detection_average_precision",
    "highlight_metrics",
    "moment_retrieval_metrics",
    "qvhighlights_metrics",
    "saliency_average_precision",
]
