"""Baselines a grounding model must clear, scored with `metrics.grounding_metrics`: the "prior", the fixed span(s)
that score best on the training annotations whatever the video or sentence."""

from collections.abc import Sequence

import numpy as np

from .metrics import as_moments, grounding_metrics, temporal_iou


def _prior_candidates(moments_norm: Sequence, grid_step: float):
    """Candidate spans on a grid (C, 2) and each one's best IoU with each training query's moments (C, Q)."""
    references = [as_moments(w, i) for i, w in enumerate(moments_norm)]
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


def fit_prior_on_rows(train_rows, k: int = 5) -> list[tuple[float, float]]:
    """`fit_prior_spans` on annotation rows (with `duration_s` and `spans_s`, per query a list of [start_s, end_s]
    moments, as `modeling_tsgv.annotations.read_annotations` returns them or a `datasets.Dataset` of them yields):
    `k` fixed spans in normalised time, best first."""
    moments = [
        [[s / r["duration_s"], e / r["duration_s"]] for s, e in query]
        for r in train_rows
        for query in r["spans_s"]
        if query
    ]
    return fit_prior_spans(moments, k=k)


def prior_answers(spans: Sequence, rows) -> list[dict]:
    """The prior's answer to every query of `rows` that has moments, as `predictions_<split>.jsonl` holds a model's:
    dicts with `video_id` (None when rows have none), `gt_windows_s` and `pred_spans_s` (the fixed spans in seconds of that video)."""
    return [
        {
            "video_id": row.get("video_id"),
            "gt_windows_s": query,
            "pred_spans_s": [[start * row["duration_s"], end * row["duration_s"]] for start, end in spans],
        }
        for row in rows
        for query in row["spans_s"]
        if query
    ]


def prior_baseline(train_rows, test_rows) -> tuple[tuple[float, float], dict[str, float]]:
    """Fit the prior on training rows (`fit_prior_on_rows`) and score it on test rows.

    Returns: ((start, end) normalised, `grounding_metrics` of the prior on the test queries that have moments): R1 and
        mIoU from the one best fixed span, R5 from the best five (as a model proposes five).
    """
    spans = fit_prior_on_rows(train_rows, k=5)
    answers = prior_answers(spans, test_rows)
    return spans[0], grounding_metrics([a["pred_spans_s"] for a in answers], [a["gt_windows_s"] for a in answers])


__all__ = ["fit_prior_span", "fit_prior_spans", "fit_prior_on_rows", "prior_answers", "prior_baseline"]
