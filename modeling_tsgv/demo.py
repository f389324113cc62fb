"""tsgv-demo: a Gradio page to ground sentences in your own videos.

    tsgv-demo [--model PATH] [--host 127.0.0.1] [--port 7860] [--examples DIR]
    (python -m modeling_tsgv.demo ... is the same)

Upload a video (or pick one of the default job's generated test videos), type one query per line and choose top-k:
the page shows the timeline picture (`plot_grounding`), a table of the spans in seconds with their scores, and the
best span of each query as a playable clip (`cut_clip`). Problems (an unreadable video, no query) appear in the page
as a message. Gradio is an optional extra: `pip install -e ".[demo]"`.
"""

import argparse
import json
import os
import sys
import tempfile

from .cli import DEFAULT_MODEL, cut_best_span

DEFAULT_EXAMPLES = os.path.join("outputs", "synthetic", "easy")  # the world the default job generates
MAX_EXAMPLES = 4


def example_rows(world_dir: str | None, limit: int = MAX_EXAMPLES) -> list[list]:
    """[[video path, "query one\\nquery two", top_k], ...] from a synthetic world's test split (or any folder with
    `annotations/test.jsonl` rows carrying `video_path` and `sentence`); [] when there is none."""
    if not world_dir:
        return []
    annotations = os.path.join(world_dir, "annotations", "test.jsonl")
    if not os.path.isfile(annotations):
        return []
    queries = {}
    with open(annotations) as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                queries.setdefault(os.path.join(world_dir, row["video_path"]), []).append(row["sentence"])
    rows = [[path, "\n".join(sentences[:3]), 3] for path, sentences in queries.items() if os.path.isfile(path)]
    return rows[:limit]


class Grounder:
    """What one click does: ground the queries in the video, draw the timeline, cut the best span of each query.

    Args:
        pipe: a "temporal-sentence-grounding" pipeline.
        work_dir: folder for the pictures and clips handed to the page.
    """

    def __init__(self, pipe, work_dir: str):
        self.pipe, self.work_dir = pipe, work_dir

    def __call__(self, video_path: str | None, queries_text: str, top_k: float, progress=None):
        """Returns (timeline PNG path, rows [query, rank, start_s, end_s, score], [(clip path, caption), ...]).

        Raises ValueError / VideoDecodeError with a message for the page."""
        from .visualization import plot_grounding

        report = progress or (lambda *args, **kwargs: None)
        if not video_path:
            raise ValueError("upload a video (or pick an example) first")
        queries = [line.strip() for line in (queries_text or "").splitlines() if line.strip()]
        if not queries:
            raise ValueError("type at least one query (one per line)")
        report(0.05, desc="decoding and grounding")
        timelines = self.pipe(video_path, queries=queries, top_k=int(top_k), return_timeline=True)
        report(0.6, desc="drawing the timeline")
        out = tempfile.mkdtemp(dir=self.work_dir)
        picture = plot_grounding(video_path, timelines, os.path.join(out, "timeline.png"))
        rows, clips = [], []
        for index, timeline in enumerate(timelines, start=1):
            for rank, span in enumerate(timeline["spans"], start=1):
                rows.append(
                    [timeline["query"], rank, round(span["start"], 2), round(span["end"], 2), round(span["score"], 3)]
                )
            best = timeline["spans"][0]
            report(0.6 + 0.4 * index / len(timelines), desc=f"cutting the clip of query {index}")
            clip = cut_best_span(video_path, timeline, index, out)
            if clip is not None:
                clips.append((clip, f"{index}. {timeline['query']} ({best['start']:.2f}-{best['end']:.2f} s)"))
        return picture, rows, clips


def build_demo(pipe, examples: list[list] | None = None, work_dir: str | None = None):
    """The Gradio Blocks app around `pipe` (see the module docstring); `examples` from `example_rows`."""
    import gradio as gr

    from .video import VideoDecodeError

    grounder = Grounder(pipe, work_dir or tempfile.mkdtemp(prefix="tsgv-demo-"))

    def run(video_path, queries_text, top_k, progress=gr.Progress()):  # noqa: B008 (Gradio's own idiom)
        try:
            return grounder(video_path, queries_text, top_k, progress)
        except (ValueError, VideoDecodeError, OSError) as err:
            raise gr.Error(" ".join(str(err).split()), print_exception=False) from err

    with gr.Blocks(title="tsgv: temporal sentence grounding") as demo:
        gr.Markdown(
            "# Temporal sentence grounding\nUpload a video, type one sentence per line: each gets the start and end "
            "seconds of the moment it describes."
        )
        with gr.Row():
            with gr.Column():
                video = gr.Video(label="video", sources=["upload"], elem_id="video")
                queries = gr.Textbox(label="queries (one per line)", lines=3, elem_id="queries")
                top_k = gr.Slider(1, 10, value=3, step=1, label="spans per query (top-k)", elem_id="top_k")
                button = gr.Button("Ground", variant="primary", elem_id="ground")
            with gr.Column():
                timeline = gr.Image(label="timeline", type="filepath", elem_id="timeline")
                table = gr.Dataframe(
                    headers=["query", "rank", "start (s)", "end (s)", "score"], label="spans", elem_id="spans"
                )
                clips = gr.Gallery(label="best span of each query", elem_id="clips", columns=2)
        if examples:
            gr.Examples(examples, inputs=[video, queries, top_k], label="the default job's test videos")
        button.click(run, inputs=[video, queries, top_k], outputs=[timeline, table, clips], api_name="ground")
    return demo


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tsgv-demo", description="A web page to ground sentences in videos.")
    parser.add_argument("--model", help=f"a tsgv model folder (default: the default job's {DEFAULT_MODEL})")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (default: 127.0.0.1, this machine)")
    parser.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    parser.add_argument(
        "--examples", help=f"a synthetic world whose test videos are offered (default: {DEFAULT_EXAMPLES})"
    )
    parser.add_argument("--device", help="e.g. cpu, cuda (default: the first GPU if any, else cpu)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of `tsgv-demo`: load the model, serve the page until interrupted; 2 for bad arguments."""
    args = build_parser().parse_args(argv)
    model = args.model or DEFAULT_MODEL
    if not os.path.isfile(os.path.join(model, "config.json")) and args.model is None:
        print(f"tsgv-demo: error: --model is needed (no model of the default job in {DEFAULT_MODEL})", file=sys.stderr)
        return 2
    if not 0 < args.port < 65536:
        print(f"tsgv-demo: error: --port must be in 1..65535, got {args.port}", file=sys.stderr)
        return 2
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from a local demo
    try:
        import gradio  # noqa: F401
    except ImportError:
        print('tsgv-demo: error: Gradio is not installed: pip install -e ".[demo]"', file=sys.stderr)
        return 1
    from .cli import CommandError, load_pipeline

    try:
        pipe = load_pipeline(model, args.device, "auto")
    except CommandError as err:
        print(f"tsgv-demo: error: {err}", file=sys.stderr)
        return err.code
    examples = example_rows(args.examples or DEFAULT_EXAMPLES)
    demo = build_demo(pipe, examples)
    print(f"tsgv-demo: serving {model} on http://{args.host}:{args.port}", flush=True)
    demo.queue().launch(server_name=args.host, server_port=args.port, show_error=True, quiet=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
