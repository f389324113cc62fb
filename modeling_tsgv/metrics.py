"""Grounding metrics on seconds: R1/R5 at temporal-IoU thresholds and mIoU, with the field's definitions.

- temporal IoU: inter = max(0, min(e1, e2) - max(s1, s2)), union = max(e1, e2) - min(s1, s2), 0 when the union is 0
  (the definition of moment_detr / UniVTG / lighthouse evaluators; it equals the true union whenever spans overlap).
- several ground-truth moments: a prediction is scored against the moment it overlaps most (QVHighlights evaluator).
- Rk@m: share of queries (in %) where any of the top-k predictions reaches IoU >= m; mIoU: mean top-1 IoU (in %).
"""

import os
from collections.abc import Sequence

import numpy as np

DEFAULT_IOU_THRESHOLDS = (0.3, 0.5, 0.7)
DEFAULT_RANKS = (1, 5)


def temporal_iou(spans_a, spans_b) -> np.ndarray:
    """Pairwise temporal IoU.

    Args:
        spans_a: (N, 2) (start, end) pairs; spans_b: (M, 2); any unit, the same for both (seconds, normalised...).
    Returns:
        (N, M) float64 IoU in [0, 1].
    """
    a = np.asarray(spans_a, dtype=np.float64).reshape(-1, 2)
    b = np.asarray(spans_b, dtype=np.float64).reshape(-1, 2)
    inter = np.minimum(a[:, None, 1], b[None, :, 1]) - np.maximum(a[:, None, 0], b[None, :, 0])
    inter = np.clip(inter, 0.0, None)
    union = np.maximum(a[:, None, 1], b[None, :, 1]) - np.minimum(a[:, None, 0], b[None, :, 0])
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def greedy_matches(spans, moments, iou: float = 0.5) -> np.ndarray:
    """Which ranked spans find a moment, one span per moment (as detection precision counts): in rank order, each span
    claims the unclaimed moment it overlaps most with temporal IoU >= `iou`.

    Args: spans: (K, 2+) ranked best first (start, end, ...); moments: (W, 2); the same time unit.
    Returns: (K,) bool.
    """
    spans = np.asarray(spans, dtype=np.float64).reshape(-1, np.shape(spans)[-1] if len(spans) else 2)
    found = np.zeros(len(spans), dtype=bool)
    if not len(spans) or not len(moments):
        return found
    overlaps = temporal_iou(spans[:, :2], moments)  # (K, W)
    free = np.ones(overlaps.shape[1], dtype=bool)
    for rank, row in enumerate(overlaps):
        candidates = np.where(free & (row >= iou))[0]
        if len(candidates):
            free[candidates[np.argmax(row[candidates])]] = False
            found[rank] = True
    return found


def as_moments(reference, index: int) -> np.ndarray:
    """One query's reference, a (start, end) pair or a list of them -> (W, 2) array; raises on empty/malformed."""
    moments = np.asarray(reference, dtype=np.float64)
    if moments.ndim == 1:
        moments = moments[None]
    if moments.ndim != 2 or moments.shape[1] != 2 or moments.shape[0] == 0:
        raise ValueError(f"reference {index}: expected (start, end) or a non-empty list of them, got {reference!r}")
    return moments


def _as_ranked_spans(prediction, max_rank: int) -> np.ndarray:
    """One query's ranked predictions -> (<=max_rank, 2) array (may be empty). Rows are (start, end[, score, ...])
    or the grounding pipeline's `{"start", "end", "score"}` dicts; the pipeline's timeline answer
    (`return_timeline=True`, a dict with "spans") gives its spans."""
    if isinstance(prediction, dict) and "spans" in prediction:
        prediction = prediction["spans"]
    if prediction is None or len(prediction) == 0:
        return np.zeros((0, 2))
    if isinstance(prediction, dict) or np.isscalar(prediction[0]):  # a single bare span
        prediction = [prediction]
    rows = [(row["start"], row["end"]) if isinstance(row, dict) else row[:2] for row in list(prediction)[:max_rank]]
    return np.asarray(rows, dtype=np.float64).reshape(-1, 2)


def per_query_best_iou(predictions: Sequence, references: Sequence, max_rank: int) -> np.ndarray:
    """IoU of each of the top-`max_rank` predictions with its best-matching reference moment.

    Returns: (num_queries, max_rank) float64; missing predictions count as IoU 0.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    best = np.zeros((len(predictions), max_rank))
    for i, (prediction, reference) in enumerate(zip(predictions, references)):
        spans = _as_ranked_spans(prediction, max_rank)
        if len(spans):
            best[i, : len(spans)] = temporal_iou(spans, as_moments(reference, i)).max(axis=1)
        else:
            as_moments(reference, i)
    return best


def grounding_metrics(
    predictions: Sequence,
    references: Sequence,
    iou_thresholds: Sequence[float] = DEFAULT_IOU_THRESHOLDS,
    ranks: Sequence[int] = DEFAULT_RANKS,
) -> dict[str, float]:
    """Recall at IoU thresholds and mean IoU of the top-1 prediction, in percent.

    Args:
        predictions: per query, a ranked list (best first) of (start_s, end_s) or (start_s, end_s, score) in seconds,
            or what the grounding pipeline returned for it (`[{"start", "end", "score"}, ...]`).
        references: per query, one (start_s, end_s) moment or a list of moments, in seconds.
        iou_thresholds: IoU thresholds m of the "Rk@m" keys.
        ranks: k values of the "Rk@m" keys.
    Returns:
        {"R1@0.3": %, "R1@0.5": %, ..., "R5@0.7": %, "mIoU": %} (floats in [0, 100]); every value NaN for zero
        queries (nothing was measured: as `sentence_binding`, and never a best checkpoint's 0).
    """
    max_rank = max(ranks)
    best = per_query_best_iou(predictions, references, max_rank)  # (Q, max_rank)
    results = {}
    for k in ranks:
        top = best[:, :k].max(axis=1) if len(best) else np.zeros(0)
        for threshold in iou_thresholds:
            results[f"R{k}@{threshold:g}"] = float(100 * np.mean(top >= threshold)) if len(top) else float("nan")
    results["mIoU"] = float(100 * best[:, 0].mean()) if len(best) else float("nan")
    return results


def expected_calibration_error(scores, outcomes, num_bins: int = 10) -> float:
    """ECE in percent: over `num_bins` equal-width score bins, |share right - mean score|, weighted by the bins'
    share of the (N,) scores. NaN when there are none."""
    scores = np.asarray(scores, dtype=np.float64)
    outcomes = np.asarray(outcomes, dtype=np.float64)
    if not len(scores):
        return float("nan")
    bins = np.minimum((scores * num_bins).astype(int), num_bins - 1)
    gaps = [np.mean(bins == b) * abs(outcomes[bins == b].mean() - scores[bins == b].mean()) for b in np.unique(bins)]
    return float(100 * sum(gaps))


def relevance_metrics(relevance, present, threshold: float = 0.5, num_bins: int = 10) -> dict[str, float]:
    """How well a relevance score tells present queries from absent ones, in percent.

    Args:
        relevance: per query, the probability that its moment is in the video; present: per query, True / False.
        threshold: below it a query is rejected ("probably not in this video").
        num_bins: equal-width probability bins of the calibration error.
    Returns:
        {"relevance_AUROC": area under the ROC curve of present vs absent (scikit-learn's), "relevance_accuracy":
        share decided right at `threshold`, "relevance_ECE": expected calibration error (the bins' |share present -
        mean relevance|, weighted by their share of queries)}; AUROC is NaN unless both kinds are there.
    """
    from sklearn.metrics import roc_auc_score

    scores = np.asarray(relevance, dtype=np.float64)
    truth = np.asarray(present, dtype=bool)
    if len(scores) != len(truth) or not len(scores):
        raise ValueError(f"{len(scores)} relevance scores for {len(truth)} queries")
    auroc = roc_auc_score(truth, scores) if 0 < truth.sum() < len(truth) else float("nan")
    return {
        "relevance_AUROC": float(100 * auroc),
        "relevance_accuracy": float(100 * np.mean((scores >= threshold) == truth)),
        "relevance_ECE": expected_calibration_error(scores, truth, num_bins),
    }


def rejection_aware_recall(records: list[dict], threshold: float = 0.5, iou: float = 0.5) -> float:
    """R1@`iou` over present and absent queries together (RaTSG's rule), in percent: a present query is right when
    it is accepted (relevance >= `threshold`) and its top-1 span reaches `iou` with its moment; an absent one when it
    is rejected. `records`: `predictions_<split>.jsonl` lines with `relevance`, `absent`, `gt_windows_s`, `pred_spans_s`."""
    right = []
    for record in records:
        accepted = record["relevance"] >= threshold
        if record.get("absent"):
            right.append(not accepted)
        elif record["gt_windows_s"]:
            spans = record["pred_spans_s"]
            hit = bool(spans) and temporal_iou([spans[0][:2]], record["gt_windows_s"]).max() >= iou
            right.append(accepted and hit)
    return float(100 * np.mean(right)) if right else float("nan")


def load_evaluate_metric(**kwargs):
    """The same metric as an `evaluate` module, loaded offline from the file shipped in this package.

    `evaluate.load(...).compute(predictions=[[[s, e], ...], ...], references=[[[s, e], ...], ...])` gives the same
    dict as `grounding_metrics`; references must be lists of moments there (a fixed feature schema).
    """
    import evaluate

    path = os.path.join(os.path.dirname(__file__), "evaluate_metric", "tsgv_grounding.py")
    return evaluate.load(path, **kwargs)


def sentence_binding(records, min_iou: float = 0.3, distinct_iou: float = 0.5) -> tuple[float, int]:
    """How often the answer follows its own sentence when a video holds several queries.

    A query counts when its video has another query whose moment differs from its own (IoU < `distinct_iou`); it is
    bound when its top-1 span overlaps its own moment with IoU >= `min_iou` and more than any such other moment.
    The prior (one fixed span for every query) scores at most the share of videos' moments it happens to hit.

    Args:
        records: dicts with `video_id`, `gt_windows_s` (the query's moment(s), [[start_s, end_s], ...]) and
            `pred_spans_s` (ranked [[start_s, end_s, (score)], ...]) — the lines of `predictions_<split>.jsonl`.
    Returns:
        (share of counted queries that are bound, in %; number of counted queries). (nan, 0) when none counts.
    """
    by_video = {}
    for record in records:
        if record["gt_windows_s"] and record["pred_spans_s"]:
            by_video.setdefault(record["video_id"], []).append(record)
    bound = counted = 0
    for queries in by_video.values():
        for query in queries:
            own = np.asarray(query["gt_windows_s"], dtype=np.float64)[:, :2]
            others = [
                np.asarray(other["gt_windows_s"], dtype=np.float64)[:, :2] for other in queries if other is not query
            ]
            others = [w for w in others if temporal_iou(w, own).max() < distinct_iou]
            if not others:
                continue
            top1 = np.asarray(query["pred_spans_s"][0][:2], dtype=np.float64)
            own_iou = temporal_iou(top1, own).max()
            other_iou = max(temporal_iou(top1, w).max() for w in others)
            counted += 1
            bound += bool(own_iou >= min_iou and own_iou > other_iou)
    return (100.0 * bound / counted if counted else float("nan")), counted


__all__ = [
    "sentence_binding",
    "temporal_iou",
    "grounding_metrics",
    "per_query_best_iou",
    "as_moments",
    "greedy_matches",
    "load_evaluate_metric",
    "relevance_metrics",
    "expected_calibration_error",
    "rejection_aware_recall",
]
