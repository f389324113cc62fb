"""Scores that mean what they say: Platt scaling of span scores and relevance, fitted on the validation split.

A detection head trained with focal loss ranks its candidates well, but its sigmoid is no probability: focal loss
flattens confident outputs on purpose. A user who keeps "every span above 0.5" needs a score that is right about as
often as it says. So after training, `run_grounding.py` scores the validation split as served and fits, by logistic
regression on the raw logit (Platt scaling: two numbers, monotonic, so every ranking and every R@k / mAP figure stays
exactly as it was):

- `config.span_calibration` [slope, intercept]: a span's score becomes the probability that it is a moment of its
  query not already found by a higher-ranked span (IoU >= 0.5, matched one to one, best first — how detection
  precision counts), given the moment is in the video; `relevance` says whether it is.
- `config.relevance_calibration` [slope, intercept]: relevance becomes the probability that the moment occurs at all,
  fitted on the split's present queries and one negative per video (another video's sentence, as in training).

scikit-learn's `LogisticRegression` does the fit; `sklearn.calibration.CalibratedClassifierCV` wants an estimator to
refit, which ours is not, so the two-parameter fit is called directly.
"""

import numpy as np
import torch

from .metrics import expected_calibration_error, greedy_matches

NEGATIVE_QUERY = {"spans_s": [], "saliency_s": [], "absent": True}  # a negative's per-query fields (others: None)
MIN_OUTCOMES = 20  # fewer judged scores than this (or only one kind): no fit, the raw sigmoid stays
LOGIT_CLIP = 1e-6  # probabilities are clipped to [eps, 1 - eps] before the logit


def calibrated_probability(logits: torch.Tensor, calibration) -> torch.Tensor:
    """sigmoid(slope * logits + intercept), elementwise; `calibration` None: sigmoid(logits). Same shape and dtype."""
    if calibration is None:
        return logits.sigmoid()
    slope, intercept = calibration
    return (logits * slope + intercept).sigmoid()


def _logit(probabilities) -> np.ndarray:
    p = np.clip(np.asarray(probabilities, dtype=np.float64), LOGIT_CLIP, 1.0 - LOGIT_CLIP)
    return np.log(p) - np.log1p(-p)


def fit_platt(probabilities, outcomes) -> list[float] | None:
    """Platt scaling: [slope, intercept] such that sigmoid(slope * logit(p) + intercept) predicts `outcomes`.

    Args: probabilities: (N,) scores in [0, 1] (uncalibrated sigmoids); outcomes: (N,) True / False.
    Returns: [slope, intercept] (floats, slope > 0), or None when there are fewer than `MIN_OUTCOMES` scores, only one
        kind of outcome, or the fit is not increasing (a score that ranks backwards cannot be made a probability).
    """
    from sklearn.linear_model import LogisticRegression

    x = _logit(probabilities).reshape(-1, 1)
    y = np.asarray(outcomes, dtype=bool)
    if len(y) != len(x):
        raise ValueError(f"{len(x)} scores for {len(y)} outcomes")
    if len(y) < MIN_OUTCOMES or y.all() or not y.any():
        return None
    fit = LogisticRegression(C=1e6, max_iter=1000).fit(x, y)  # C large: plain maximum likelihood
    slope, intercept = float(fit.coef_[0, 0]), float(fit.intercept_[0])
    return [slope, intercept] if slope > 0 else None


def apply_platt(probabilities, calibration) -> np.ndarray:
    """The calibrated probabilities of (N,) uncalibrated ones (numpy; `calibration` None returns them unchanged)."""
    p = np.asarray(probabilities, dtype=np.float64)
    if calibration is None:
        return p
    slope, intercept = calibration
    return 1.0 / (1.0 + np.exp(-(slope * _logit(p) + intercept)))


def span_outcomes(records: list[dict], iou: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Each ranked span of each query with moments, judged as detection precision judges it: right when its IoU with
    a moment of the query not matched by a higher-ranked span reaches `iou` (one span per moment).

    Args: records: `predictions_<split>.jsonl` lines (`gt_windows_s`, `pred_spans_s` [[start_s, end_s, score], ...]).
    Returns: (scores (N,), right (N,) bool) over all spans of all queries with moments.
    """
    scores, right = [], []
    for record in records:
        if record["gt_windows_s"] and record["pred_spans_s"]:
            scores.extend(span[2] for span in record["pred_spans_s"])
            right.extend(greedy_matches(record["pred_spans_s"], record["gt_windows_s"], iou))
    return np.asarray(scores, dtype=np.float64), np.asarray(right, dtype=bool)


def with_negative_queries(rows: list[dict], seed: int = 0) -> list[dict]:
    """Video rows (`sentences`, `query_ids`, `spans_s`, optional `absent`) plus, per video, one negative query: the
    sentence of another video that matches none of this video's own sentences (`absent` True, no moment; every other
    per-query list gets `NEGATIVE_QUERY`'s value or None), drawn with `seed`. Rows that already hold absent queries are kept as they are. As with the training negatives, a sentence
    of another video may still happen in this one (label noise a real dataset has; the synthetic world's own absent
    queries are sure). Returns new rows; the input is not changed."""
    rng = np.random.default_rng([seed, 11])
    pool = [(index, sentence) for index, row in enumerate(rows) for sentence in row["sentences"]]
    out = []
    for index, row in enumerate(rows):
        absent = list(row.get("absent") or [False] * len(row["sentences"]))
        if any(absent):
            out.append(row)
            continue
        own = {sentence.strip().lower() for sentence in row["sentences"]}
        sentence = None
        for _ in range(100):  # rejection sampling: a list of every candidate per video is quadratic in the split
            other, candidate = pool[int(rng.integers(len(pool)))]
            if other != index and candidate.strip().lower() not in own:
                sentence = candidate
                break
        if sentence is None:
            out.append(row)
            continue
        negative = {**NEGATIVE_QUERY, "sentences": sentence, "query_ids": f"{row['video_id']}:negative"}
        per_query = [k for k, v in row.items() if isinstance(v, list) and len(v) == len(row["sentences"])]
        out.append({**row, **{k: [*row[k], negative.get(k)] for k in per_query}, "absent": [*absent, True]})
    return out


def fit_calibration(records: list[dict]) -> dict:
    """Both calibrations from served records of an uncalibrated model (a split with moments and absent queries).

    Returns: {"span_calibration": [slope, intercept] or None, "relevance_calibration": ... or None, and the
    in-sample figures `span_ECE_before` / `span_ECE_after` / `relevance_ECE_before` / `relevance_ECE_after` (percent)
    and `span_outcomes` / `relevance_outcomes` (how many scores were judged)}.
    """
    scores, right = span_outcomes(records)
    span = fit_platt(scores, right)
    out = {
        "span_calibration": span,
        "span_outcomes": len(scores),
        "span_ECE_before": expected_calibration_error(scores, right),
        "span_ECE_after": expected_calibration_error(apply_platt(scores, span), right),
    }
    judged = [r for r in records if "relevance" in r and (r.get("absent") or r["gt_windows_s"])]
    relevance = np.asarray([r["relevance"] for r in judged], dtype=np.float64)
    present = np.asarray([not r.get("absent") for r in judged], dtype=bool)
    fit = fit_platt(relevance, present) if len(judged) else None
    out.update(
        relevance_calibration=fit,
        relevance_outcomes=len(judged),
        relevance_ECE_before=expected_calibration_error(relevance, present),
        relevance_ECE_after=expected_calibration_error(apply_platt(relevance, fit), present),
    )
    return out


__all__ = [
    "calibrated_probability",
    "fit_platt",
    "apply_platt",
    "span_outcomes",
    "with_negative_queries",
    "fit_calibration",
]
