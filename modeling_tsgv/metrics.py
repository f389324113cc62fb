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


def _as_moments(reference, index: int) -> np.ndarray:
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
            best[i, : len(spans)] = temporal_iou(spans, _as_moments(reference, i)).max(axis=1)
        else:
            _as_moments(reference, i)
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


def load_evaluate_metric(**kwargs):
    """The same metric as an `evaluate` module, loaded offline from the file shipped in this package.

    `evaluate.load(...).compute(predictions=[[[s, e], ...], ...], references=[[[s, e], ...], ...])` gives the same
    dict as `grounding_metrics`; references must be lists of moments there (a fixed feature schema).
    """
    import evaluate

    path = os.path.join(os.path.dirname(__file__), "evaluate_metric", "tsgv_grounding.py")
    return evaluate.load(path, **kwargs)


def _prior_candidates(moments_norm: Sequence, grid_step: float):
    """Candidate spans on a grid (C, 2) and each one's best IoU with each training query's moments (C, Q)."""
    references = [_as_moments(w, i) for i, w in enumerate(moments_norm)]
    if not references:
        raise ValueError("fit_prior_span needs at least one training moment")
    edges = np.round(np.arange(0.0, 1.0 + grid_step / 2, grid_step), 6)
    candidates = np.array([(s, e) for s in edges for e in edges if e > s])  # (C, 2)
    flat = np.concatenate(references)  # (W_total, 2)
    owner = np.repeat(np.arange(len(references)), [len(r) for r in references])
    iou = temporal_iou(candidates, flat)  # (C, W_total)
    best = np.zeros((len(candidates), len(references)))
    np.maximum.at(best.T, owner, iou.T)  # best-matching moment per query: (C, Q)
    return candidates, best


def fit_prior_span(moments_norm: Sequence, grid_step: float = 0.02, objective: str = "R1@0.5") -> tuple[float, float]:
    """The "prior" baseline: the single fixed span (normalised time) that scores best on training moments.

    Every query gets the same answer, whatever the video or sentence: the floor that a model must clear.

    Args:
        moments_norm: per training query, one (start, end) moment or a list of them, in normalised time [0, 1].
        grid_step: spacing of the candidate starts / ends searched.
        objective: "R1@m" (maximise recall at IoU m) or "mIoU".
    Returns:
        (start, end) in normalised time.
    """
    return fit_prior_spans(moments_norm, 1, grid_step, objective)[0]


def fit_prior_spans(
    moments_norm: Sequence, k: int = 5, grid_step: float = 0.02, objective: str = "R1@0.5"
) -> list[tuple[float, float]]:
    """The prior's `k` fixed spans, ranked, so that its R@k compares like with like with a model's: the first is
    `fit_prior_span`'s; each next one hits (IoU >= m of "R1@m", 0.5 for "mIoU") the most training queries that the
    spans before it missed (greedy set cover; ties go to the higher mean IoU).

    Args: as `fit_prior_span`, and `k` spans (>= 1). Returns: `k` (start, end) pairs in normalised time, best first.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    candidates, best = _prior_candidates(moments_norm, grid_step)
    if objective == "mIoU":
        score, threshold = best.mean(axis=1), 0.5
    elif objective.startswith("R1@"):
        threshold = float(objective[3:])
        score = (best >= threshold).mean(axis=1) + 1e-6 * best.mean(axis=1)  # ties -> higher mIoU
    else:
        raise ValueError(f"objective must be 'R1@<iou>' or 'mIoU', got {objective!r}")
    chosen = [int(np.argmax(score))]
    hit = best[chosen[0]] >= threshold  # (Q,) training queries the spans so far answer
    for _ in range(min(k, len(candidates)) - 1):
        gain = ((best >= threshold) & ~hit).sum(axis=1) + 1e-6 * best.mean(axis=1)
        gain[chosen] = -1.0
        chosen.append(int(np.argmax(gain)))
        hit |= best[chosen[-1]] >= threshold
    return [(float(candidates[c][0]), float(candidates[c][1])) for c in chosen]


def prior_baseline(train_rows, test_rows) -> tuple[tuple[float, float], dict[str, float]]:
    """Fit the prior span on training rows and score it on test rows.

    Args: rows with `duration_s` and `spans_s` (per query, a list of [start_s, end_s] moments), as
        `modeling_tsgv.data.read_annotations` returns them or a `datasets.Dataset` of them yields.
    Returns: ((start, end) normalised, `grounding_metrics` of the prior on the test queries that have moments): R1 and
        mIoU from the one best fixed span, R5 from the best five (`fit_prior_spans`).
    """
    moments = [
        [[s / r["duration_s"], e / r["duration_s"]] for s, e in query]
        for r in train_rows
        for query in r["spans_s"]
        if query
    ]
    spans = fit_prior_spans(moments, k=5)  # R5 from five fixed spans, as a model proposes five
    predictions, references = [], []
    for row in test_rows:
        for query in row["spans_s"]:
            if query:
                predictions.append([(start * row["duration_s"], end * row["duration_s"]) for start, end in spans])
                references.append(query)
    return spans[0], grounding_metrics(predictions, references)


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
    "load_evaluate_metric",
    "fit_prior_span",
    "fit_prior_spans",
    "prior_baseline",
]
