"""Window arithmetic of long-video inference, free of the pipeline: how a video is covered by windows of the
model's `num_frames` frames on one uniform time grid (`plan_windows`, `window_alignment`), and how the per-window
candidate spans become one ranked answer per query in seconds (`merge_windows`)."""

import math
from dataclasses import dataclass

import numpy as np
import torch

from .calibration import calibrated_probability
from .spans import offsets_to_spans, rank_spans_batched


@dataclass
class WindowPlan:
    """How a video of `duration_s` seconds is covered by windows of `num_frames` frames on one uniform time grid.

    Grid frame i (0-based) is sampled at (i + 0.5) * frame_step_s seconds; window k holds grid frames
    [k * hop_frames, k * hop_frames + num_frames). The windows tile [0, duration_s] exactly.
    """

    duration_s: float
    num_frames: int
    hop_frames: int
    num_windows: int
    frame_step_s: float

    @property
    def num_grid_frames(self) -> int:
        """Frames decoded for the whole video (each once)."""
        return self.num_frames + (self.num_windows - 1) * self.hop_frames

    @property
    def window_length_s(self) -> float:
        """Length of every window in seconds (<= the requested window_s)."""
        return self.num_frames * self.frame_step_s

    def window_start_s(self, window_index: int) -> float:
        """Start of window `window_index` in seconds."""
        return window_index * self.hop_frames * self.frame_step_s

    def frame_times_s(self) -> np.ndarray:
        """(num_grid_frames,) sampling times of the grid frames, seconds."""
        return (np.arange(self.num_grid_frames) + 0.5) * self.frame_step_s


def plan_windows(
    duration_s: float, num_frames: int, window_s: float, overlap: float = 0.5, align_frames: int = 1
) -> WindowPlan:
    """Cover a video with windows of `num_frames` frames each at most `window_s` seconds long.

    Args:
        duration_s: the video's duration, seconds.
        num_frames: frames per window (the model's config.num_frames).
        window_s: longest window, seconds; a video no longer than this is one window of num_frames frames over the
            whole video (exactly the training-time sampling).
        overlap: the least fraction of a window shared with the next one, in [0, 1). With 0.5 any moment up to half
            a window long lies whole inside some window. The hop is then shrunk as far as the fewest windows allow,
            so every window is as close to window_s as the tiling permits.
        align_frames: the hop between windows is a multiple of this (the backbone's clip length, so whole clips are
            shared between windows and encoded once; else its tubelet size, so time steps line up).
    Returns:
        `WindowPlan`.
    """
    if not duration_s > 0:
        raise ValueError(f"duration_s must be > 0, got {duration_s}")
    if not window_s > 0:
        raise ValueError(f"window_s must be > 0 seconds, got {window_s}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"window_overlap must be in [0, 1), got {overlap}")
    if duration_s <= window_s:
        return WindowPlan(duration_s, num_frames, num_frames, 1, duration_s / num_frames)
    # the largest hop (a multiple of align_frames) that keeps at least the requested overlap
    max_hop = min(math.floor(num_frames * (1.0 - overlap) / align_frames + 1e-9) * align_frames, num_frames)
    if max_hop < 1:
        raise ValueError(
            f"window_overlap {overlap} leaves less than {align_frames} new frames per window of {num_frames}: "
            f"use at most {1 - align_frames / num_frames:g}"
        )
    grid_frames = duration_s / (window_s / num_frames)  # frames the video needs at the nominal frame step
    num_windows = 1 + math.ceil((grid_frames - num_frames) / max_hop - 1e-9)
    # the fewest windows, then the smallest hop that still covers the video, so windows stay close to window_s
    hop_frames = math.ceil((grid_frames - num_frames) / (num_windows - 1) / align_frames - 1e-9) * align_frames
    frame_step_s = duration_s / (num_frames + (num_windows - 1) * hop_frames)
    return WindowPlan(duration_s, num_frames, hop_frames, num_windows, frame_step_s)


def window_alignment(config, overlap: float) -> int:
    """Frames the hop between windows is a multiple of: the clip length when that still allows `overlap` (then whole
    clips are shared by neighbouring windows and encoded once), else the tubelet size (time steps still line up)."""
    clip_frames, tubelet = config.clip_frames, config.backbone_config.tubelet_size
    if config.num_frames // clip_frames >= 2 and math.floor(config.num_frames * (1 - overlap) / clip_frames + 1e-9):
        return clip_frames
    return tubelet


def merge_windows(
    model_outputs: list[dict],
    tubelet: int,
    top_k: int,
    nms_threshold: float | None,
    return_timeline: bool = False,
    relevance_threshold: float = 0.5,
    span_calibration=None,
    min_score: float | None = None,
) -> list:
    """One video's per-window candidates -> its answers in seconds, per query.

    Args:
        model_outputs: per window, `step_logits` (B_q, L_t) and `step_offsets` (B_q, L_t, 2) in window-normalised
            time, with `window_index`, `frame_start` (grid frame), `plan` (`WindowPlan`) and `queries`.
        tubelet: frames per time step. top_k: spans per query. nms_threshold: temporal IoU, None for no NMS.
        return_timeline: per query a dict with `spans`, `times_s`, `step_scores` (best score any window gave each
            step of the whole video), `saliency` (the windows' `step_saliency` per step, their mean where windows
            overlap; the foreground probabilities when the outputs carry none), `duration_s` and, when the outputs carry
            `relevance` (B_q,) per window, `relevance` (the highest of the windows': the moment needs to be in one)
            and `absent` (it is below `relevance_threshold`: "probably not in this video"), instead of the list of
            spans.
        span_calibration: [slope, intercept] of the span scores' Platt scaling (`config.span_calibration`); None:
            the sigmoid of the step logits.
        min_score: keep only spans scoring at least this (of the `top_k`; possibly none): with calibrated scores,
            every moment the model believes in (several moments per sentence). None: all `top_k`.
    Returns:
        per query, `[{"start": s, "end": e, "score": p}, ...]` in seconds, best first (or the timeline dict).
    """
    first = model_outputs[0]
    plan: WindowPlan = first["plan"]
    spans_s, scores, saliency, step_index = [], [], [], []
    for window in model_outputs:
        start_s = plan.window_start_s(window["window_index"])
        spans = offsets_to_spans(window["step_offsets"].double()).clamp(0.0, 1.0)  # (B_q, L_t, 2) in the window
        spans_s.append((start_s + spans * plan.window_length_s).clamp(0.0, plan.duration_s))
        scores.append(calibrated_probability(window["step_logits"].double(), span_calibration))  # (B_q, L_t)
        saliency.append(window["step_saliency"].double() if "step_saliency" in window else scores[-1])
        num_steps = window["step_logits"].shape[1]
        step_index.append(window["frame_start"] // tubelet + torch.arange(num_steps))
    spans_s, scores, saliency = torch.cat(spans_s, 1), torch.cat(scores, 1), torch.cat(saliency, 1)
    step_index = torch.cat(step_index)

    best_spans, best_scores = rank_spans_batched(spans_s, scores, min(top_k, spans_s.shape[1]), nms_threshold)
    results = [
        [
            {"start": float(s), "end": float(e), "score": float(p)}
            for (s, e), p in zip(q_spans.tolist(), q_scores.tolist())
            if min_score is None or p >= min_score
        ]
        for q_spans, q_scores in zip(best_spans, best_scores)
    ]
    if return_timeline:
        curves = timeline_curves(scores, saliency, step_index, tubelet * plan.frame_step_s)
        results = [
            {"query": query, "spans": spans, **{name: value[index] for name, value in curves.items()},
             "duration_s": plan.duration_s, **query_relevance(model_outputs, index, relevance_threshold)}
            for index, (query, spans) in enumerate(zip(first["queries"], results))
        ]  # fmt: skip
    return results


def timeline_curves(scores, saliency, step_index, step_s: float) -> dict:
    """Per query, the whole video's curves from the windows' per-step (B_q, N) `scores` and `saliency` at grid steps
    `step_index` (N,): {"times_s" (step centres, seconds), "step_scores" (a step seen by several windows: the highest
    score any gave it), "saliency" (their mean)}, each a list per query."""
    num_steps = int(step_index.max()) + 1
    index = step_index.expand_as(scores)
    empty = torch.zeros(scores.shape[0], num_steps, dtype=torch.float64)
    step_scores = empty.scatter_reduce(1, index, scores, reduce="amax", include_self=False)
    curve = empty.scatter_reduce(1, index, saliency, reduce="mean", include_self=False)
    times_s = ((torch.arange(num_steps, dtype=torch.float64) + 0.5) * step_s).tolist()
    return {"times_s": [times_s] * len(scores), "step_scores": step_scores.tolist(), "saliency": curve.tolist()}


def query_relevance(model_outputs: list[dict], index: int, threshold: float) -> dict:
    """{"relevance": the highest of the windows' for query `index` (the moment needs to be in one), "absent": below
    `threshold`} when the outputs carry `relevance` (a relevance head), else {}."""
    if "relevance" not in model_outputs[0]:
        return {}
    relevance = max(float(window["relevance"][index]) for window in model_outputs)
    return {"relevance": relevance, "absent": relevance < threshold}


__all__ = ["WindowPlan", "plan_windows", "window_alignment", "merge_windows", "timeline_curves", "query_relevance"]
