"""tsgv-ground: table, JSON, plot, clips and one-line errors, on generated videos with a tiny saved model."""

import json
import os
import subprocess
import sys
import time

import av
import numpy as np
import pytest
from conftest import frame_number, write_test_video
from PIL import Image

from modeling_tsgv.cli import main
from modeling_tsgv.visualization import plot_size_px

QUERIES = ["a red ball rolls left", "the blue square jumps"]


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """40 s, 4 frames per second, frame k grey 8k (so a decoded frame tells its number)."""
    return str(write_test_video(tmp_path_factory.mktemp("v") / "walk.mp4", np.arange(0, 40, 0.25)))


def test_table_lists_every_query_and_its_spans(model_dir, video, capsys):
    assert main([video, *QUERIES, "--model", str(model_dir), "--top-k", "3"]) == 0
    out = capsys.readouterr().out
    for query in QUERIES:
        assert f'"{query}"' in out
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit() and len(line.split()) == 5]
    assert [int(r[0]) for r in rows] == [1, 2, 3, 1, 2, 3]
    for _, start, end, length, score in rows:
        assert 0 <= float(start) <= float(end) <= 40.0
        assert float(length) == pytest.approx(float(end) - float(start), abs=0.011)
        assert 0 <= float(score) <= 1


def test_min_score_keeps_the_spans_above_it_and_says_when_none_is_left(model_dir, video, tmp_path, capsys):
    assert main([video, QUERIES[0], "--model", str(model_dir), "--json"]) == 0
    spans = json.loads(capsys.readouterr().out)["queries"][0]["spans"]
    threshold = spans[1]["score"]
    assert main([video, QUERIES[0], "--model", str(model_dir), "--json", "--min-score", str(threshold)]) == 0
    kept = json.loads(capsys.readouterr().out)["queries"][0]["spans"]
    assert kept == [s for s in spans if s["score"] >= threshold] and len(kept) >= 2
    clips = tmp_path / "clips"
    assert main([video, QUERIES[0], "--model", str(model_dir), "--min-score", "1", "--clip", str(clips)]) == 0
    out = capsys.readouterr().out
    assert "no span scores at least --min-score" in out and "clip: none (no span" in out


def test_json_plot_and_clips(model_dir, video, tmp_path, capsys):
    plot, clips = tmp_path / "timeline.png", tmp_path / "clips"
    code = main([video, *QUERIES, "--model", str(model_dir), "--json", "--plot", str(plot), "--clip", str(clips)])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["duration_s"] == pytest.approx(40.0, abs=0.3)
    assert [q["query"] for q in report["queries"]] == QUERIES
    assert all(len(q["spans"]) == 5 for q in report["queries"])
    for query in report["queries"]:  # the saliency curve (highlight detection) over the whole video
        curve = query["saliency"]
        assert len(curve["times_s"]) == len(curve["scores"]) > 0 and all(0 <= v <= 1 for v in curve["scores"])
        assert curve["times_s"][-1] <= report["duration_s"]

    assert Image.open(plot).size == plot_size_px(len(QUERIES)) == (1200, 70 + 120 + 130 * 2)

    for entry in report["queries"]:
        best = entry["spans"][0]
        assert os.path.dirname(entry["clip"]) == str(clips)
        with av.open(entry["clip"]) as container:
            frames = [(f.time, frame_number(f.to_ndarray(format="rgb24"))) for f in container.decode(video=0)]
        # frame k of the source is shown from k/4 s: the clip opens with the frame on screen at the span's start
        first_frame = int(np.floor(best["start"] * 4 + 1e-6))
        assert frames[0] == (0.0, first_frame % 32)
        expected = int(np.ceil(best["end"] * 4 - 1e-6)) - first_frame
        assert len(frames) == expected
        assert frames[-1][0] == pytest.approx((first_frame + len(frames) - 1) / 4 - best["start"], abs=2e-3)


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["{tmp}/missing.mp4", "q"], 1, "{tmp}/missing.mp4: video file not found"),
        (["{video}", "q", "  "], 2, "{video}: query 2 is empty"),
        (["{broken}", "q"], 1, "{broken}: cannot decode video"),
        (["{video}", "q", "--model", "{tmp}/no_model"], 1, "{tmp}/no_model: model folder not found"),
        (["{video}", "q", "--model", "{minilm}"], 1, "{minilm}: not a tsgv model"),
        (["{video}", "q", "--model", "{tmp}"], 1, "{tmp}: no config.json"),
        (["{video}", "q", "--top-k", "0"], 2, "--top-k must be >= 1"),
        (["{video}", "q", "--query-batch-size", "0"], 2, "--query-batch-size must be >= 1"),
        (["{video}", "q", "--min-score", "1.5"], 2, "--min-score must be in [0, 1]"),
    ],
)
def test_errors_are_one_line_with_a_non_zero_exit(
    model_dir, video, minilm_path, tmp_path, capsys, args, code, message
):
    broken = tmp_path / "broken.mp4"
    broken.write_text("not a video")
    names = {"tmp": str(tmp_path), "video": video, "broken": str(broken), "minilm": minilm_path}
    argv = [a.format(**names) for a in args]
    if "--model" not in argv:
        argv += ["--model", str(model_dir)]
    assert main(argv) == code
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert err.startswith("tsgv-ground: error: ") and message.format(**names) in err, err


def test_installed_console_script(model_dir, video):
    """The `tsgv-ground` entry point from setup.cfg (and `python -m modeling_tsgv.cli`) runs end to end."""
    script = os.path.join(os.path.dirname(sys.executable), "tsgv-ground")
    command = [script] if os.path.exists(script) else [sys.executable, "-m", "modeling_tsgv.cli"]
    done = subprocess.run(
        [*command, video, QUERIES[0], "--model", str(model_dir), "--json", "--top-k", "2"],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["queries"][0]["spans"]) == 2


def test_help_and_argument_errors_answer_before_torch_loads(tmp_path):
    """`tsgv-ground --help` and argument errors come back without importing torch or transformers (seconds)."""
    script = os.path.join(os.path.dirname(sys.executable), "tsgv-ground")
    if not os.path.exists(script):
        pytest.skip("the package is not installed with its console scripts")
    probe = (
        "import runpy, sys; sys.argv = [{script!r}, *{args!r}]\n"
        "try:\n    runpy.run_path({script!r}, run_name='__main__')\n"
        "except SystemExit as exit:\n"
        "    print('heavy:', sorted(m for m in ('torch', 'transformers') if m in sys.modules), file=sys.stderr)\n"
        "    raise\n"
    )
    cases = [
        (["--help"], 0, "usage: tsgv-ground"),
        ([], 2, "the following arguments are required"),
        ([str(tmp_path / "missing.mp4"), "a ball", "--model", str(tmp_path)], 1, "video file not found"),
        ([str(tmp_path), "a ball", "--model", str(tmp_path), "--top-k", "0"], 2, "--top-k must be >= 1"),
    ]
    for args, code, message in cases:
        done = subprocess.run(
            [sys.executable, "-c", probe.format(script=script, args=args)], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == code, (args, done.stderr)
        assert message in done.stdout + done.stderr, (args, done.stderr)
        assert "heavy: []" in done.stderr, (args, done.stderr)  # neither torch nor transformers was imported
    start = time.perf_counter()
    subprocess.run([script, "--help"], capture_output=True, timeout=60, check=True)
    assert time.perf_counter() - start < 5  # about 0.2 s here; a slow CI machine gets slack, not 12 s


def test_without_model_the_default_jobs_model_is_used_and_said(model_dir, video, tmp_path, monkeypatch, capsys):
    import shutil

    from modeling_tsgv.cli import main

    monkeypatch.chdir(tmp_path)
    assert main([video, QUERIES[0], "--json"]) == 2
    assert "--model is needed (no model of the default job in outputs/tsgv-synthetic" in capsys.readouterr().err
    shutil.copytree(model_dir, tmp_path / "outputs" / "tsgv-synthetic")
    assert main([video, QUERIES[0], "--json", "--top-k", "1"]) == 0
    captured = capsys.readouterr()
    assert "using the default job's model outputs/tsgv-synthetic" in captured.err
    assert json.loads(captured.out)["model"] == "outputs/tsgv-synthetic"


def test_importing_the_package_is_enough_for_transformers_pipeline_and_auto_classes(model_dir):
    """`import modeling_tsgv`, then transformers' own entry points: the installed code is used, with no
    trust_remote_code and no "run the custom code? [y/N]" question (here without a terminal, where the question
    raises). The console scripts are the exception: `--help` stays free of torch (the test above)."""
    probe = (
        "import sys, modeling_tsgv\n"
        "from transformers import AutoConfig, AutoModel, AutoProcessor, pipeline\n"
        f"folder = {str(model_dir)!r}\n"
        "pipe = pipeline('temporal-sentence-grounding', model=folder, device='cpu')\n"
        "loaded = [type(pipe), type(AutoModel.from_pretrained(folder)), type(AutoProcessor.from_pretrained(folder)),\n"
        "          type(AutoConfig.from_pretrained(folder))]\n"
        "print([cls.__module__ for cls in loaded])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "custom code" not in done.stdout + done.stderr
    modules = done.stdout.strip().splitlines()[-1]
    assert "transformers_modules" not in modules and modules.count("modeling_tsgv.") == 4, modules
