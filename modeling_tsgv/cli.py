"""tsgv-ground: ground sentences in a video from the shell.

    tsgv-ground VIDEO QUERY [QUERY ...] --model PATH [--top-k K] [--min-score S] [--json] [--plot out.png]
        [--clip out_dir]

Prints a table of the top spans (seconds) per query, or JSON with `--json`. `--plot` draws the timeline with per-step
scores, the top spans and thumbnails; `--clip` cuts the top span of each query into an mp4. Errors are one line on
stderr naming the problem and the path; exit status 1 for a failed run, 2 for bad arguments.
(`python -m modeling_tsgv.cli` is the same command.)
"""

import argparse
import json
import os
import re
import sys

EXIT_FAILED, EXIT_USAGE = 1, 2
DEFAULT_MODEL = os.path.join("outputs", "tsgv-synthetic")  # where `python run_grounding.py` saves its model


class CommandError(Exception):
    """A problem the user can act on; `main` prints it as one line and exits with `code`."""

    def __init__(self, message: str, code: int = EXIT_FAILED):
        super().__init__(" ".join(str(message).split()))  # one line, whatever the library's message looked like
        self.code = code


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `tsgv-ground`."""
    parser = argparse.ArgumentParser(
        prog="tsgv-ground",
        description="Find when each sentence happens in a video (start and end in seconds).",
    )
    parser.add_argument("video", help="video file (mp4, mkv, avi, ... anything FFmpeg reads)")
    parser.add_argument("queries", nargs="+", metavar="QUERY", help="one or more sentences, each quoted")
    parser.add_argument(
        "--model",
        help=f"a tsgv model folder (or Hub name, with network); default: the default job's {DEFAULT_MODEL} if present",
    )
    parser.add_argument("--top-k", type=int, default=5, help="spans per query (default: 5)")
    parser.add_argument(
        "--min-score",
        type=float,
        help="keep only the spans scoring at least this (0-1; possibly none): every moment the model believes in, "
        "for a sentence that happens more than once (a model trained by run_grounding.py scores calibrated "
        "probabilities; default: all top-k)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--plot", metavar="PNG", help="write the timeline with step scores, spans and thumbnails")
    parser.add_argument("--clip", metavar="DIR", help="cut the top span of each query into DIR/<video>_q<i>_*.mp4")
    parser.add_argument("--device", help="e.g. cpu, cuda, cuda:1 (default: the first GPU if any, else cpu)")
    parser.add_argument(
        "--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"], help="weights' dtype"
    )
    parser.add_argument("--window-s", type=float, help="window length for long videos (default: the model's)")
    parser.add_argument("--window-overlap", type=float, default=0.5, help="overlap of consecutive windows")
    parser.add_argument("--query-batch-size", type=int, help="queries per forward pass (default: 1 on CPU, 16 on GPU)")
    parser.add_argument(
        "--backend", default="pyav", choices=["pyav", "decord", "torchcodec", "auto"], help="video decoder"
    )
    return parser


def check_arguments(args) -> None:
    """Raise CommandError for what can be rejected before the model loads (bad numbers, empty queries, no video);
    fills in `args.model` with the default job's model when it was not given and exists (saying so on stderr)."""
    if args.model is None:
        if not os.path.isfile(os.path.join(DEFAULT_MODEL, "config.json")):
            raise CommandError(
                f"--model is needed (no model of the default job in {DEFAULT_MODEL}: run `python run_grounding.py` "
                "or pass a model folder)",
                EXIT_USAGE,
            )
        args.model = DEFAULT_MODEL
        print(f"tsgv-ground: using the default job's model {DEFAULT_MODEL} (--model to choose)", file=sys.stderr)
    from .queries import empty_queries  # no torch / transformers: arguments are checked before they load

    empty = empty_queries(args.queries)
    if empty:  # numbered from 1 here, as the shell user typed them
        raise CommandError(f"{args.video}: query {empty[0] + 1} is empty: every query needs words", EXIT_USAGE)
    if args.top_k < 1:
        raise CommandError(f"--top-k must be >= 1, got {args.top_k}", EXIT_USAGE)
    if args.min_score is not None and not 0.0 <= args.min_score <= 1.0:
        raise CommandError(f"--min-score must be in [0, 1], got {args.min_score}", EXIT_USAGE)
    if args.window_s is not None and not args.window_s > 0:
        raise CommandError(f"--window-s must be > 0 seconds, got {args.window_s}", EXIT_USAGE)
    if args.query_batch_size is not None and args.query_batch_size < 1:
        raise CommandError(f"--query-batch-size must be >= 1, got {args.query_batch_size}", EXIT_USAGE)
    if not 0 <= args.window_overlap < 1:
        raise CommandError(f"--window-overlap must be in [0, 1), got {args.window_overlap}", EXIT_USAGE)
    from .video import VideoDecodeError, check_video_path

    try:
        check_video_path(args.video)  # a URL, a folder, no file: said before the model is loaded
    except VideoDecodeError as err:
        raise CommandError(str(err)) from err
    if args.plot and not os.path.isdir(os.path.dirname(os.path.abspath(args.plot))):
        raise CommandError(f"{args.plot}: the folder for the plot does not exist")


def load_pipeline(model: str, device: str | None, dtype: str):
    """The grounding pipeline for `model`, quietly (no progress bars); CommandError when it cannot be loaded."""
    import transformers
    from transformers import pipeline

    from . import register
    from .pipeline_tsgv import TASK, ModelFolderError, check_model_folder

    register()  # the package skipped it at import for this command (see modeling_tsgv/__init__.py)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    try:
        check_model_folder(model)
        return pipeline(TASK, model=model, device=device, dtype=dtype)
    except ModelFolderError as err:
        raise CommandError(str(err)) from err
    except Exception as err:  # from_pretrained raises OSError / ValueError / KeyError... with long messages
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CommandError(f"{model}: cannot load the model ({first_line})") from err


def clip_path(out_dir: str, video: str, index: int, span: dict) -> str:
    """DIR/<video stem>_q<index>_<start>-<end>s.mp4 for the clip of query `index` (1-based)."""
    stem = re.sub(r"[^\w.-]+", "_", os.path.splitext(os.path.basename(video))[0])
    return os.path.join(out_dir, f"{stem}_q{index}_{span['start']:.2f}-{span['end']:.2f}s.mp4")


def cut_best_span(video: str, timeline: dict, index: int, out_dir: str) -> str | None:
    """Cut query `index`'s (1-based) best span of `timeline` (a pipeline answer with `return_timeline=True`) out of
    `video` into `clip_path(out_dir, ...)`; returns the clip's path, or None when there is no span (`--min-score`)
    or it is empty (no frames)."""
    from .video import cut_clip

    if not timeline["spans"]:
        return None
    best = timeline["spans"][0]
    if best["end"] - best["start"] < 1e-3:
        return None
    path = clip_path(out_dir, video, index, best)
    cut_clip(video, best["start"], best["end"], path)
    return path


def format_table(video: str, timelines: list[dict], timings_s: dict, clips: list, plot: str | None) -> str:
    """The human-readable report: per query its spans (rank, start, end, length in seconds, score)."""
    duration_s = timelines[0]["duration_s"]
    lines = [f"{video}  ({duration_s:.1f} s)"]
    for index, timeline in enumerate(timelines, start=1):
        lines.append("")
        lines.append(f'[{index}] "{timeline["query"]}"')
        if "relevance" in timeline:  # a relevance head: is the moment in this video at all
            verdict = "probably not in this video" if timeline["absent"] else "probably in this video"
            lines.append(f"  relevance {timeline['relevance']:.3f}: {verdict}")
        lines.append(f"  {'rank':>4}  {'start (s)':>9}  {'end (s)':>9}  {'length (s)':>10}  {'score':>6}")
        if not timeline["spans"]:
            lines.append("     (no span scores at least --min-score)")
        for rank, span in enumerate(timeline["spans"], start=1):
            length = span["end"] - span["start"]
            lines.append(
                f"  {rank:>4}  {span['start']:>9.2f}  {span['end']:>9.2f}  {length:>10.2f}  {span['score']:>6.3f}"
            )
        if clips:
            lines.append(f"  clip: {clips[index - 1] or 'none (no span, or the best span is empty)'}")
    if plot:
        lines.append("")
        lines.append(f"plot: {plot}")
    lines.append("")
    lines.append(
        f"{len(timelines)} quer{'y' if len(timelines) == 1 else 'ies'} in {timings_s['total']:.2f} s "
        f"(decoding {timings_s['decode']:.2f}, shared blocks {timings_s['shared']:.2f}, "
        f"per-query {timings_s['per_query']:.2f})"
    )
    return "\n".join(lines)


def run(args) -> str:
    """Do what the parsed arguments ask; return the text to print. Raises CommandError."""
    from .video import VideoDecodeError

    check_arguments(args)
    pipe = load_pipeline(args.model, args.device, args.dtype)
    try:
        timelines = pipe(
            args.video,
            queries=list(args.queries),
            top_k=args.top_k,
            min_score=args.min_score,
            window_s=args.window_s,
            window_overlap=args.window_overlap,
            query_batch_size=args.query_batch_size,
            backend=args.backend,
            return_timeline=True,
        )
        clips = []
        if args.clip:
            os.makedirs(args.clip, exist_ok=True)
            clips = [cut_best_span(args.video, t, index, args.clip) for index, t in enumerate(timelines, start=1)]
        if args.plot:
            from .visualization import plot_grounding

            plot_grounding(args.video, timelines, args.plot, backend=args.backend)
    except (VideoDecodeError, ValueError, OSError, ImportError) as err:
        raise CommandError(str(err)) from err

    if args.json:
        report = {
            "video": args.video,
            "duration_s": timelines[0]["duration_s"],
            "model": args.model,
            "queries": [
                {
                    "query": t["query"],
                    "spans": t["spans"],
                    # highlight detection: how much each time step matters to the sentence, in [0, 1]
                    "saliency": {"times_s": t["times_s"], "scores": t["saliency"]},
                    **({"relevance": t["relevance"], "absent": t["absent"]} if "relevance" in t else {}),
                    **({"clip": clips[i]} if clips else {}),
                }
                for i, t in enumerate(timelines)
            ],
            "plot": args.plot,
            "timings_s": pipe.last_timings_s,
        }
        return json.dumps(report, indent=2)
    return format_table(args.video, timelines, pipe.last_timings_s, clips, args.plot)


def main(argv: list[str] | None = None) -> int:
    """Entry point of `tsgv-ground`; returns the exit status (0 ok, 1 failed run, 2 bad arguments)."""
    args = build_parser().parse_args(argv)
    try:
        print(run(args))
    except CommandError as err:
        print(f"tsgv-ground: error: {err}", file=sys.stderr)
        return err.code
    return 0


if __name__ == "__main__":
    sys.exit(main())
