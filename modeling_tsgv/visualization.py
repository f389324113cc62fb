"""Pictures: `plot_grounding` (a video's timeline, per-time-step scores and the top spans per query) and
`plot_learning_curve` (training loss and validation recall / mIoU over a training run)."""

import os

import numpy as np

from .video import read_frames

FIGURE_WIDTH_IN = 12.0
DPI = 100
THUMBNAIL_ROW_IN = 1.2
QUERY_ROW_IN = 1.3
MARGIN_IN = 0.7


def plot_size_px(num_queries: int) -> tuple[int, int]:
    """(width, height) in pixels of the PNG `plot_grounding` writes for `num_queries` queries."""
    height_in = MARGIN_IN + THUMBNAIL_ROW_IN + QUERY_ROW_IN * num_queries
    return round(FIGURE_WIDTH_IN * DPI), round(height_in * DPI)


def _draw_thumbnails(strip, video_path, num_thumbnails: int, backend: str, duration_s: float) -> None:
    """The top strip: `num_thumbnails` frames, each centred on its own time (seconds) and one slot wide."""
    thumbs = read_frames(video_path, num_thumbnails, backend=backend, duration_s=duration_s)
    slot_s = duration_s / num_thumbnails
    for frame, time_s in zip(thumbs.frames, thumbs.times_s):
        centre_s = min(max(time_s, slot_s / 2), duration_s - slot_s / 2)
        strip.imshow(frame, extent=(centre_s - slot_s / 2, centre_s + slot_s / 2, 0, 1), aspect="auto")
    strip.set_xlim(0, duration_s)
    strip.set_ylim(0, 1)
    strip.set_yticks([])
    strip.tick_params(labelbottom=False)
    strip.set_title(os.path.basename(os.fspath(video_path)), fontsize=10, loc="left")


SPAN_COLOURS = ["#d62728", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b"]  # rank 1, 2, ...


def _draw_query_row(ax, timeline: dict, max_spans: int, last: bool) -> None:
    """One query's row: its per-step scores over time (seconds), its saliency curve where the model has one of its
    own (dashed), and its top `max_spans` spans, shaded by rank; the time axis is labelled on the `last` row only."""
    times_s = np.asarray(timeline["times_s"], dtype=float)
    scores = np.asarray(timeline["step_scores"], dtype=float)
    saliency = np.asarray(timeline.get("saliency", scores), dtype=float)
    separate = saliency.shape == scores.shape and not np.allclose(saliency, scores, atol=1e-6)
    ax.fill_between(times_s, scores, step="mid", color="#1f77b4", alpha=0.25, linewidth=0)
    label = "step score" if separate else "step score = saliency"
    ax.plot(times_s, scores, drawstyle="steps-mid", color="#1f77b4", linewidth=1.2, label=label)
    if separate:  # highlight detection: how much each moment matters (the saliency head)
        ax.plot(times_s, saliency, color="#ff7f0e", linewidth=1.2, linestyle="--", label="saliency")
    ax.legend(loc="upper right", fontsize=7, frameon=False)
    for rank, span in reversed(list(enumerate(timeline["spans"][:max_spans]))):
        colour = SPAN_COLOURS[rank % len(SPAN_COLOURS)]
        ax.axvspan(span["start"], span["end"], color=colour, alpha=0.35 - 0.08 * rank, linewidth=0)
        ax.text(
            (span["start"] + span["end"]) / 2,
            0.97 - 0.14 * rank,
            f"#{rank + 1} {span['score']:.2f}",
            ha="center",
            va="top",
            fontsize=8,
            color=colour,
            transform=ax.get_xaxis_transform(),
        )
    ax.set_ylim(0, 1)
    ax.set_ylabel("score", fontsize=8)
    ax.tick_params(labelsize=8)
    query = timeline["query"]
    title = f'"{query if len(query) <= 100 else query[:97] + "..."}"'
    if "relevance" in timeline:  # a relevance head's verdict beside the sentence
        title += f"   relevance {timeline['relevance']:.2f}" + (
            " (probably not in this video)" if timeline["absent"] else ""
        )
    ax.set_title(title, fontsize=9, loc="left")
    if last:
        ax.set_xlabel("time (s)", fontsize=9)
    else:
        ax.tick_params(labelbottom=False)


def plot_grounding(
    video_path: str | os.PathLike,
    timelines: list[dict],
    out_path: str | os.PathLike,
    num_thumbnails: int = 8,
    max_spans: int = 3,
    backend: str = "pyav",
) -> str:
    """Draw the video's timeline: a strip of thumbnails placed at their times, then one row per query with the
    per-time-step scores and its top spans (shaded, best darkest, labelled with rank and score).

    Args:
        video_path: the video (thumbnails are decoded from it).
        timelines: per query, the dict the pipeline returns with `return_timeline=True`:
            `query`, `spans` (list of {start, end, score} seconds), `times_s`, `step_scores`, `saliency` (optional),
            `duration_s`.
        out_path: PNG to write; its size is `plot_size_px(len(timelines))`.
        num_thumbnails: thumbnails along the time axis.
        max_spans: spans drawn per query.
        backend: video decoder for the thumbnails.
    Returns:
        out_path as a string.
    """
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

    if not timelines:
        raise ValueError("plot_grounding needs at least one query's timeline")
    duration_s = float(timelines[0]["duration_s"])
    width_px, height_px = plot_size_px(len(timelines))
    fig = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI)
    grid = fig.add_gridspec(
        1 + len(timelines),
        1,
        height_ratios=[THUMBNAIL_ROW_IN] + [QUERY_ROW_IN] * len(timelines),
        left=0.06,
        right=0.98,
        top=1 - 0.25 / (height_px / DPI),
        bottom=0.45 / (height_px / DPI),
        hspace=0.45,
    )

    strip = fig.add_subplot(grid[0])
    _draw_thumbnails(strip, video_path, num_thumbnails, backend, duration_s)
    for row, timeline in enumerate(timelines, start=1):
        ax = fig.add_subplot(grid[row], sharex=strip)
        _draw_query_row(ax, timeline, max_spans, last=row == len(timelines))
    fig.savefig(os.fspath(out_path), dpi=DPI)
    return os.fspath(out_path)


def learning_curve(log_history: list[dict], metrics=("R1@0.5", "mIoU"), prefix: str = "eval_") -> dict:
    """The numbers of a learning curve from a Trainer's `state.log_history`.

    Returns {"train": [(epoch, step, loss)...], "eval": [(epoch, step, {metric: value})...]}: the training loss of
    every logging step, and the evaluation metrics (percent) of every evaluation, in the order they were logged.
    """
    train, evaluation = [], []
    for entry in log_history:
        if "loss" in entry and "epoch" in entry:
            train.append((float(entry["epoch"]), int(entry.get("step", 0)), float(entry["loss"])))
        found = {name: float(entry[prefix + name]) for name in metrics if prefix + name in entry}
        if found:
            evaluation.append((float(entry.get("epoch", 0.0)), int(entry.get("step", 0)), found))
    return {"train": train, "eval": evaluation}


def percent_axis_limits(values, margin: float = 0.1, least_span: float = 5.0) -> tuple[float, float]:
    """(low, high) of an axis in percent that fits `values` with a `margin` of their range on each side, at least
    `least_span` points wide, inside [0, 100]: validation lines that move by a few points stay visible (a fixed
    0-100 axis draws them flat)."""
    finite = [float(v) for v in values if v == v]
    if not finite:
        return 0.0, 100.0
    low, high = min(finite), max(finite)
    pad = max((high - low) * margin, (least_span - (high - low)) / 2)
    low, high = low - pad, high + pad
    shift = max(0.0, -low) - max(0.0, high - 100.0)  # slide back inside [0, 100], keeping the width
    return max(0.0, low + shift), min(100.0, high + shift)


def plot_learning_curve(
    log_history: list[dict], out_path: str | os.PathLike, metrics=("R1@0.5", "mIoU"), baselines: dict | None = None
) -> str:
    """Draw a training run: training loss per logging step (left axis) and validation metrics per evaluation (right
    axis, percent), both against epochs.

    Args:
        log_history: `trainer.state.log_history` (or the `log_history` of a saved `trainer_state.json`).
        out_path: PNG to write (1000 x 450 pixels).
        metrics: evaluation metrics to draw (keys `eval_<metric>` in the log).
        baselines: optional {label: value in percent} drawn as dashed horizontal lines (e.g. the prior's R1@0.5).
    Returns:
        out_path as a string.
    """
    from matplotlib.figure import Figure

    curve = learning_curve(log_history, metrics)
    if not curve["train"] and not curve["eval"]:
        raise ValueError("the log history holds no training loss and no evaluation metrics to draw")
    fig = Figure(figsize=(10, 4.5), dpi=DPI)
    ax = fig.add_subplot(1, 1, 1)
    if curve["train"]:
        epochs, _, losses = zip(*curve["train"])
        ax.plot(epochs, losses, color="#7f7f7f", linewidth=1.0, label="training loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    right = ax.twinx()
    colours = ["#1f77b4", "#2ca02c", "#d62728", "#9467bd"]
    right_values = list((baselines or {}).values())
    for colour, name in zip(colours, metrics):
        points = [(epoch, values[name]) for epoch, _, values in curve["eval"] if name in values]
        if points:
            xs, ys = zip(*points)
            right.plot(xs, ys, marker="o", color=colour, label=f"val {name}")
            right_values += ys
    for colour, (label, value) in zip(colours[::-1], (baselines or {}).items()):
        right.axhline(value, color=colour, linestyle="--", linewidth=1.0, label=label)
    right.set_ylabel("validation (%)")
    right.set_ylim(*percent_axis_limits(right_values))
    handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    right.legend(handles, [h.get_label() for h in handles], loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(os.fspath(out_path), dpi=DPI)
    return os.fspath(out_path)


__all__ = ["plot_grounding", "plot_size_px", "learning_curve", "plot_learning_curve"]
