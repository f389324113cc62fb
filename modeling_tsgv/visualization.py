"""plot_grounding: a picture of the answer — the video's timeline, per-time-step scores and the top spans per query."""

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
            `query`, `spans` (list of {start, end, score} seconds), `times_s`, `step_scores`, `duration_s`.
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

    # thumbnails, each centred on its own time and one slot wide
    strip = fig.add_subplot(grid[0])
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

    colours = ["#d62728", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b"]
    for row, timeline in enumerate(timelines, start=1):
        ax = fig.add_subplot(grid[row], sharex=strip)
        times_s = np.asarray(timeline["times_s"], dtype=float)
        scores = np.asarray(timeline["step_scores"], dtype=float)
        ax.fill_between(times_s, scores, step="mid", color="#1f77b4", alpha=0.25, linewidth=0)
        ax.plot(times_s, scores, drawstyle="steps-mid", color="#1f77b4", linewidth=1.2, label="step score")
        for rank, span in reversed(list(enumerate(timeline["spans"][:max_spans]))):
            colour = colours[rank % len(colours)]
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
        ax.set_title(f'"{query if len(query) <= 110 else query[:107] + "..."}"', fontsize=9, loc="left")
        if row < len(timelines):
            ax.tick_params(labelbottom=False)
        else:
            ax.set_xlabel("time (s)", fontsize=9)
    fig.savefig(os.fspath(out_path), dpi=DPI)
    return os.fspath(out_path)


__all__ = ["plot_grounding", "plot_size_px"]
