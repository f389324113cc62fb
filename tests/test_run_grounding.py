"""run_grounding.py end to end on a tiny synthetic world: train, evaluate, save, model card; resume after a SIGKILL;
two CPU ranks (gloo) with ragged evaluation; DeepSpeed ZeRO-2 / ZeRO-3 on two CPU ranks."""

import importlib.util
import json
import os
import re
import shlex
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT
from conftest import TINY_RUN as TINY
from safetensors.torch import load_file

sys.path.insert(0, str(REPO_ROOT))
import run_grounding  # noqa: E402


def tiny_args(tmp_path, *extra):
    return [*TINY, "--synthetic_dir", str(tmp_path.parent / "world"), "--output_dir", str(tmp_path / "out"), *extra]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The 8-video synthetic world, generated once for the module (run_grounding finds it in its cache)."""
    from modeling_tsgv.synthetic import generate

    folder = tmp_path_factory.mktemp("shared") / "world"
    generate(folder, num_videos=8, seed=0, preset="easy", progress=False)  # the default job's preset
    return folder


def run_script(args, launcher=None, python_code=None, timeout=600):
    """Run run_grounding.py (or `python -c python_code`) in a fresh process, optionally under a launcher, with one
    thread per process (the same float reduction order in every run); returns the CompletedProcess."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    if python_code is not None:
        command = [sys.executable, "-c", python_code]
    else:
        command = [*(launcher or [sys.executable]), str(REPO_ROOT / "run_grounding.py"), *args]
    return subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_default_job_pipeline_trains_evaluates_and_saves(world, tmp_path):
    out = tmp_path / "out"
    args = tiny_args(tmp_path, "--synthetic_dir", str(world), "--max_steps", "4", "--eval_strategy", "steps")
    args += ["--eval_steps", "2", "--save_strategy", "steps", "--save_steps", "2"]
    metrics = run_grounding.main(args)
    # the Trainer's files, ours beside them
    results = json.loads((out / "all_results.json").read_text())
    for split in ("test", "test_novel"):
        for key in ("R1@0.3", "R1@0.5", "R1@0.7", "R5@0.5", "mIoU"):
            assert 0.0 <= results[f"{split}_{key}"] <= 100.0 and f"{split}_prior_{key}" in results
    assert metrics["test_R1@0.5"] == results["test_R1@0.5"]
    test_queries = sum(1 for line in (world / "annotations" / "test.jsonl").read_text().splitlines() if line.strip())
    assert results["test_num_queries"] == test_queries
    predictions = [json.loads(line) for line in (out / "predictions_test.jsonl").read_text().splitlines()]
    assert len(predictions) == test_queries
    first = predictions[0]
    assert set(first) >= {"video_id", "query", "gt_windows_s", "pred_spans_s"} and len(first["pred_spans_s"][0]) == 3
    assert all(0 <= s <= e <= p["duration_s"] for p in predictions for s, e, _ in p["pred_spans_s"])
    # the saved model and processor load through the Auto classes
    from transformers import AutoModel, AutoProcessor

    from modeling_tsgv import TSGVForGrounding, TSGVProcessor

    model = AutoModel.from_pretrained(out)
    assert isinstance(model, TSGVForGrounding)
    assert isinstance(AutoProcessor.from_pretrained(out), TSGVProcessor)
    train = [json.loads(line) for line in (world / "annotations" / "train.jsonl").read_text().splitlines()]
    durations = list({q["video_id"]: q["duration_s"] for q in train}.values())
    assert model.config.inference_window_s == float(np.ceil(np.percentile(durations, 95)))
    # ... and the output folder is what the inference pipeline loads
    from transformers import pipeline

    pipe = pipeline("temporal-sentence-grounding", model=str(out), device="cpu")
    spans = pipe(str(world / f"videos/{first['video_id']}.mp4"), queries=first["query"], top_k=3)
    assert [s["start"] for s in spans] == pytest.approx([s for s, _, _ in first["pred_spans_s"][:3]], abs=1e-3)
    # scores calibrated on the validation split (calibration.py), saved with the model, served with it
    assert results["calibration_split"] == "val" and results["calibration_span_outcomes"] > 0
    assert model.config.span_calibration == results["calibration_span_calibration"]
    if model.config.span_calibration is not None:  # a 1-video validation split may have too little to fit
        assert [s["score"] for s in spans] == pytest.approx([p for _, _, p in first["pred_spans_s"][:3]], abs=1e-3)
    for key in ("span_ECE", "kept_precision", "kept_recall", "multi_queries"):
        assert f"test_{key}" in results
    # a model card with Hub metadata and the results table
    from huggingface_hub import ModelCard

    card = ModelCard.load(out / "README.md")
    # no Hub pipeline tag names this task (video-text-to-text is another): the task is a tag, the library says the rest
    assert card.data.pipeline_tag is None and card.data.library_name == "tsgv"
    assert "temporal-sentence-grounding" in card.data.tags
    assert {r.dataset_split for r in card.data.eval_results} == {"test", "test_novel"}
    assert "| test (prior) |" in card.text and "python run_grounding.py" in card.text
    assert f"longer than {model.config.inference_window_s:g} s" in card.text and "{{" not in card.text
    # the card's Python blocks compile and fit the line length (committed cards are linted): the folder, whose
    # length the user chooses, is named once on a line of its own
    python_lines = [
        line for block in card.text.split("```python\n")[1:] for line in block.split("```")[0].splitlines()
    ]
    assert compile("\n".join(python_lines), "card", "exec") and all(
        len(line) <= 119 for line in python_lines if not line.startswith("path = ")
    )
    assert {line for line in python_lines if str(out) in line} == {f'path = "{out}"'}
    # sentence binding for the model and the prior (metrics.sentence_binding on the predictions file)
    from modeling_tsgv.metrics import sentence_binding

    assert results["test_binding_queries"] == sentence_binding(predictions)[1]
    assert results["test_binding"] == pytest.approx(sentence_binding(predictions)[0], nan_ok=True)
    assert "test_prior_binding" in results and "| binding |" in card.text
    # the learning curve: a PNG of the run and its numbers in the card (2 evaluations: steps 2 and 4)
    from PIL import Image

    with Image.open(out / "learning_curve.png") as image:
        assert image.format == "PNG" and image.size == (1000, 450)
    table = card.text.split("### Learning curve")[1].split("## Use")[0]
    curve_rows = [line.split("|")[1:-1] for line in table.splitlines() if line[:3] in ("| 0", "| 1")]
    assert len(curve_rows) == 2 and all(np.isfinite(float(row[1])) for row in curve_rows)  # a loss before each


KILL_AT_STEP_SCRIPT = """
import os, signal, sys
sys.path.insert(0, {root!r})
from transformers import TrainerCallback
import run_grounding

class Kill(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == {step}:
            os.kill(os.getpid(), signal.SIGKILL)

run_grounding.main({args!r}, callbacks=[Kill()])
"""


def test_resume_after_sigkill_matches_an_uninterrupted_run(world, tmp_path):
    # full tuning, so VideoMAE's q/v biases train: a resume that drops them (transformers#43701) would show here
    common = ["--synthetic_dir", str(world), "--backbone_tuning", "full", "--max_steps", "6", "--save_steps", "3"]
    common += ["--save_strategy", "steps", "--eval_strategy", "no", "--load_best_model_at_end", "False"]
    straight = run_script(tiny_args(tmp_path / "a", *common))
    assert straight.returncode == 0, straight.stderr[-3000:]

    killed_args = tiny_args(tmp_path / "b", *common)
    script = KILL_AT_STEP_SCRIPT.format(root=str(REPO_ROOT), step=4, args=killed_args)
    killed = run_script([], python_code=script)
    assert killed.returncode == -signal.SIGKILL
    out_b = tmp_path / "b" / "out"
    assert (out_b / "checkpoint-3").is_dir() and not (out_b / "model.safetensors").exists()

    resumed = run_script([*killed_args, "--resume_from_checkpoint", str(out_b / "checkpoint-3")])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "missing keys" not in resumed.stderr.lower()

    expected = load_file(tmp_path / "a" / "out" / "model.safetensors")
    actual = load_file(out_b / "model.safetensors")
    assert expected.keys() == actual.keys()
    q_bias = [k for k in expected if k.endswith("q_bias") or k.endswith("query.bias")]
    assert q_bias and any(expected[k].abs().sum() > 0 for k in q_bias)  # they trained
    for key in expected:
        assert torch.equal(expected[key], actual[key]), key
    metrics_a = json.loads((tmp_path / "a" / "out" / "all_results.json").read_text())
    metrics_b = json.loads((out_b / "all_results.json").read_text())
    for key in ("test_R1@0.5", "test_mIoU", "test_novel_R1@0.5"):
        assert metrics_a[key] == metrics_b[key], key


def _two_rank_launcher(port):
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port)]


def test_two_cpu_ranks_train_and_gather_ragged_evaluation(world, tmp_path):
    args = tiny_args(tmp_path, "--synthetic_dir", str(world), "--use_cpu", "--max_steps", "3")
    args += ["--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end", "False"]
    result = run_script(args, launcher=_two_rank_launcher(29511))
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert "Total train batch size (w. parallel, distributed & accumulation) = 4" in log  # 2 per rank x 2 ranks
    out = tmp_path / "out"
    # the training and validation caches: each rank encodes its share of the videos (rank 0 logs its own: 3 of the 5
    # training videos, the 1 validation video), every rank maps both shares (one copy for the machine); the files go
    # at the end
    assert re.findall(r"cached encode_video states of (\d+) videos", log) == ["3", "1"], log[-3000:]
    assert not list(out.glob(".video-states-*"))
    results = json.loads((out / "all_results.json").read_text())
    test_queries = sum(1 for line in (world / "annotations" / "test.jsonl").read_text().splitlines() if line.strip())
    # every query evaluated exactly once although videos (with ragged query counts) were split over 2 ranks
    assert results["test_num_queries"] == test_queries
    predictions = [json.loads(line) for line in (out / "predictions_test.jsonl").read_text().splitlines()]
    assert sorted(p["query_id"] for p in predictions) == sorted({p["query_id"] for p in predictions})
    assert len(predictions) == test_queries
    # the same model evaluated in one process gives the same numbers
    single = run_grounding_eval_only(out, world, tmp_path / "single")
    card = (tmp_path / "single" / "README.md").read_text()
    assert "`None`" not in card and f"VideoMAE of `{out}`" in card  # the saved model's backbone, named
    for key in ("test_R1@0.5", "test_R5@0.5", "test_mIoU"):
        assert single[key] == pytest.approx(results[key], abs=1e-6), key


def run_grounding_eval_only(model_dir, world, tmp_path):
    args = [
        "--model_name_or_path", str(model_dir), "--synthetic_dir", str(world), "--synthetic_num_videos", "8",
        "--output_dir", str(tmp_path), "--evaluate_only", "--per_device_eval_batch_size", "3",
        "--dataloader_num_workers", "0", "--eval_strategy", "no", "--save_strategy", "no",
        "--load_best_model_at_end", "False",
    ]  # fmt: skip
    return run_grounding.main(args)


needs_deepspeed = pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None, reason="deepspeed not installed")


@needs_deepspeed
@pytest.mark.parametrize("stage,port,precision", [("zero2", 29521, []), ("zero3", 29531, ["--bf16"])])
def test_deepspeed_on_two_cpu_ranks_trains_and_saves_a_loadable_model(world, tmp_path, stage, port, precision):
    # ZeRO-3 in bf16: our own modules must be partitioned and cast like the pretrained parts (a mixed
    # bf16 / fp32 model fails with "mat1 and mat2 must have the same dtype")
    args = tiny_args(tmp_path, "--synthetic_dir", str(world), "--use_cpu", "--max_steps", "2", *precision)
    args += ["--deepspeed", str(REPO_ROOT / "ds_configs" / f"{stage}.json"), "--eval_strategy", "no"]
    args += ["--save_strategy", "no", "--load_best_model_at_end", "False"]
    result = run_script(args, launcher=_two_rank_launcher(port))
    assert result.returncode == 0, result.stderr[-4000:]
    from modeling_tsgv import TSGVForGrounding

    model = TSGVForGrounding.from_pretrained(tmp_path / "out")
    saved = load_file(tmp_path / "out" / "model.safetensors")
    assert all(t.numel() > 0 for t in saved.values())  # ZeRO-3 gathered full weights on save
    assert any(k.startswith("backbone.adapters.") for k in saved)
    assert model.config.backbone_tuning == "scada"
    # the frozen pretrained text encoder came through zero.Init partitioning untouched (no re-initialisation)
    from transformers import AutoModel

    from modeling_tsgv import default_text_encoder_path

    reference = AutoModel.from_pretrained(default_text_encoder_path()).state_dict()
    for name, tensor in reference.items():
        if f"text_model.{name}" in saved:
            stored = saved[f"text_model.{name}"]
            assert torch.equal(stored, tensor.to(stored.dtype)), name  # bf16 runs save bf16 weights


def test_real_charades_sta_annotations_with_generated_stand_in_videos(shared_data, tmp_path):
    """The README's Charades-STA recipe on the real annotation files; the first 3 test videos exist as generated
    stand-ins (real durations from the Charades CSV), every other video is reported missing and skipped."""
    import csv

    import numpy as np
    from conftest import write_test_video

    sta = shared_data / "charades_sta"
    lines = (sta / "charades_sta_test.txt").read_text().splitlines()
    video_ids = list(dict.fromkeys(line.split()[0] for line in lines))[:3]
    with open(sta / "Charades_v1_test.csv", newline="") as f:
        lengths = {row["id"]: float(row["length"]) for row in csv.DictReader(f)}
    videos = tmp_path / "videos"
    videos.mkdir()
    for video_id in video_ids:  # 4 frames per second over the real duration
        write_test_video(videos / f"{video_id}.mp4", np.arange(0, lengths[video_id], 0.25), size=(32, 32))
    args = [
        "--dataset", "charades-sta", "--train_file", str(sta / "charades_sta_test.txt"),
        "--test_file", str(sta / "charades_sta_test.txt"), "--video_dir", str(videos),
        "--durations", str(sta / "Charades_v1_train.csv"), str(sta / "Charades_v1_test.csv"),
        "--video_model", "tiny", "--image_size", "32", "--clip_frames", "4", "--num_frames", "8",
        "--head_hidden_size", "32", "--scada_bottleneck", "8", "--max_steps", "2", "--eval_strategy", "no",
        "--save_strategy", "no", "--load_best_model_at_end", "False", "--per_device_train_batch_size", "2",
        "--dataloader_num_workers", "0", "--output_dir", str(tmp_path / "out"),
    ]  # fmt: skip
    metrics = run_grounding.main(args)
    expected = sum(1 for line in lines if line.split()[0] in video_ids)
    assert metrics["test_num_queries"] == expected
    predictions = [json.loads(line) for line in (tmp_path / "out" / "predictions_test.jsonl").read_text().splitlines()]
    assert {p["video_id"] for p in predictions} == set(video_ids)
    assert all(p["duration_s"] == lengths[p["video_id"]] for p in predictions)


def test_a_saved_videomae_checkpoint_gets_the_papers_recipe(world, tmp_path):
    """--video_model PATH (here a self-supervised stage-1 checkpoint, VideoMAEForPreTraining): SCADA on the pretrained
    backbone, as the paper does: its weights load and stay as they were, the adapters and head train."""
    from transformers import VideoMAEConfig, VideoMAEForPreTraining

    from modeling_tsgv import TSGVForGrounding

    torch.manual_seed(0)
    stage1_config = VideoMAEConfig(
        image_size=32, patch_size=16, num_frames=4, tubelet_size=2, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64, decoder_hidden_size=32, decoder_num_hidden_layers=1,
        decoder_num_attention_heads=2, decoder_intermediate_size=64, use_mean_pooling=False, norm_pix_loss=True,
    )  # fmt: skip
    stage1 = VideoMAEForPreTraining(stage1_config)
    stage1.save_pretrained(tmp_path / "stage1")
    args = tiny_args(tmp_path, "--synthetic_dir", str(world), "--video_model", str(tmp_path / "stage1"))
    args += ["--max_steps", "3", "--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end", "False"]
    results = run_grounding.main(args)
    assert np.isfinite(results["train_loss"])
    model = TSGVForGrounding.from_pretrained(tmp_path / "out")
    assert model.config.backbone_tuning == "scada" and model.config.scada_layers == [1]  # the top half of 2 blocks
    pretrained = stage1.videomae.state_dict()
    for name, tensor in model.video_model.state_dict().items():
        torch.testing.assert_close(tensor, pretrained[name], rtol=0, atol=0, msg=name)  # loaded, and kept frozen
    assert all(adapter.up.weight.abs().sum() > 0 for adapter in model.adapters.values())  # trained from zero


def test_a_first_run_is_quiet_and_ends_saying_what_to_do_next(world, tmp_path):
    """What a new user sees: progress bars and one line per file, no config dumps or library warnings, and at the end
    where everything went plus a ready-to-paste tsgv-ground line; the card and all_results.json read well."""
    args = tiny_args(tmp_path, "--synthetic_dir", str(world), "--max_steps", "2", "--eval_strategy", "no")
    args += ["--save_strategy", "no", "--load_best_model_at_end", "False"]
    done = run_script(args)
    assert done.returncode == 0, done.stderr[-3000:]
    log = done.stdout + done.stderr
    for noise in ("Model config BertConfig", "pin_memory", "Setting accelerator to CPU", "share your model",
                  "Configuration saved in", "[train] train.jsonl"):  # fmt: skip
        assert noise not in log, noise
    assert log.count("train.jsonl: ") == 1  # one summary line per annotation file
    out = tmp_path / "out"
    tail = done.stdout.strip().splitlines()[-6:]
    assert f"model, processor and model card (README.md): {out}" in tail
    command = [line for line in tail if line.strip().startswith("tsgv-ground ")]
    assert command and f"--model {out}" in command[0] and "--plot grounding.png" in command[0]
    video = shlex.split(command[0])[1]
    assert os.path.isfile(video) and video.endswith(".mp4")
    results = json.loads((out / "all_results.json").read_text())
    assert isinstance(results["test_num_queries"], int) and isinstance(results["test_binding_queries"], int)
    assert 0 <= results["prior_span_start_fraction"] < results["prior_span_end_fraction"] <= 1
    assert all(round(v, 4) == v for v in results.values() if isinstance(v, float) and v == v)
    card = (out / "README.md").read_text()
    assert "## Limitations" in card and "synthetic world only" in card
    assert "https://github.com/)" not in card and "type: mean_iou" in card and "trust_remote_code=True" in card


def test_without_a_validation_file_a_share_of_the_training_videos_picks_the_model(world, tmp_path):
    """A real-data layout (train and test files, no validation file): 1 of the 5 training videos is held out by
    video, evaluation during training and the best checkpoint use it, never the test split; said in all_results.json
    and the card."""
    annotations = world / "annotations"
    args = [
        *TINY, "--dataset", "jsonl", "--train_file", str(annotations / "train.jsonl"),
        "--test_file", str(annotations / "test.jsonl"), "--video_dir", str(world), "--validation_split_fraction", "0.2",
        "--max_steps", "2", "--eval_strategy", "steps", "--eval_steps", "1", "--save_strategy", "steps",
        "--save_steps", "1", "--output_dir", str(tmp_path / "out"),
    ]  # fmt: skip
    metrics = run_grounding.main(args)
    train = [json.loads(line) for line in (annotations / "train.jsonl").read_text().splitlines()]
    assert metrics["validation_split"].startswith("held out from train.jsonl: 1 of 5 videos")
    state = json.loads((tmp_path / "out" / "checkpoint-2" / "trainer_state.json").read_text())
    evaluations = [entry for entry in state["log_history"] if "eval_num_queries" in entry]
    held_out = int(re.search(r"\((\d+) queries", metrics["validation_split"]).group(1))
    test_queries = len((annotations / "test.jsonl").read_text().splitlines())
    assert evaluations and all(entry["eval_num_queries"] == held_out for entry in evaluations)
    assert held_out < len(train) and (held_out, 1) != (test_queries, 0)
    card = (tmp_path / "out" / "README.md").read_text()
    assert "validation split (evaluation during training, best checkpoint): held out from train.jsonl" in card
    results = json.loads((tmp_path / "out" / "all_results.json").read_text())
    assert results["validation_split"] == metrics["validation_split"]


def test_no_validation_split_and_evaluation_during_training_is_refused(world, tmp_path):
    annotations = world / "annotations"
    args = [
        "--dataset", "jsonl", "--train_file", str(annotations / "train.jsonl"), "--test_file",
        str(annotations / "test.jsonl"), "--video_dir", str(world), "--validation_split_fraction", "0",
        "--output_dir", str(tmp_path / "out"),
    ]  # fmt: skip
    with pytest.raises(run_grounding.ArgumentError, match="--validation_split_fraction 0 without --validation_file"):
        run_grounding.main(args)
    with pytest.raises(run_grounding.ArgumentError, match="must be in \\[0, 1\\)"):
        run_grounding.main([*args[:-4], "--validation_split_fraction", "1", "--output_dir", str(tmp_path / "o")])


def test_test_figures_are_what_the_pipeline_answers_on_the_saved_model(world, tmp_path):
    """A test video longer than the serving window (the training set's 95th-percentile duration) is scored in
    windows, as `pipeline(...)` serves it: the predictions file holds exactly what the pipeline on the saved folder
    answers, and the reported recall is computed from those answers."""
    from conftest import write_test_video
    from transformers import pipeline

    from modeling_tsgv import register
    from modeling_tsgv.metrics import grounding_metrics
    from modeling_tsgv.pipeline_tsgv import TASK

    annotations = world / "annotations"
    long_video = write_test_video(tmp_path / "long.mp4", [i / 4 for i in range(4 * 90)], size=(32, 32))  # 90 s
    queries = [("the red circle moves left", 10.0, 20.0), ("a blue square appears", 60.0, 75.0)]
    test_file = tmp_path / "test.jsonl"
    test_file.write_text(
        "".join(
            json.dumps(
                {
                    "video_id": "long",
                    "video_path": str(long_video),
                    "duration_s": 90.0,
                    "sentence": sentence,
                    "start_s": start,
                    "end_s": end,
                }
            )
            + "\n"
            for sentence, start, end in queries
        )  # fmt: skip
    )
    out = tmp_path / "out"
    args = [
        *TINY, "--dataset", "jsonl", "--train_file", str(annotations / "train.jsonl"), "--test_file", str(test_file),
        "--video_dir", str(world), "--max_steps", "2", "--eval_strategy", "no", "--save_strategy", "no",
        "--load_best_model_at_end", "False", "--validation_split_fraction", "0", "--output_dir", str(out),
    ]  # fmt: skip
    metrics = run_grounding.main(args)
    assert metrics["test_windowed_videos"] == 1 and "pipeline" in metrics["test_scored_by"]
    register()
    pipe = pipeline(TASK, model=str(out), device="cpu")
    assert pipe.model.config.inference_window_s < 90
    # scored with the top 10 (QVHighlights' mAP reads 10 windows; R1 / R5 read the first ones)
    answers = pipe({"video": str(long_video), "queries": [q for q, _, _ in queries]}, top_k=10)
    lines = [json.loads(line) for line in (out / "predictions_test.jsonl").read_text().splitlines()]
    assert [line["windows"] for line in lines] == ["several", "several"]
    for line, answer in zip(lines, answers):
        assert line["pred_spans_s"] == [
            [round(a["start"], 3), round(a["end"], 3), round(a["score"], 3)] for a in answer
        ]
    expected = grounding_metrics(answers, [[start, end] for _, start, end in queries])
    for key in ("R1@0.5", "R5@0.5", "mIoU"):  # all_results.json rounds to 4 decimals
        assert metrics[f"test_{key}"] == pytest.approx(expected[key], abs=1e-4), key


def test_qvhighlights_gets_a_saliency_head_and_the_official_moment_and_highlight_figures(shared_data, tmp_path):
    """`--dataset qvhighlights` on the real validation annotations (3 videos as generated stand-ins): the clip
    ratings give the model a saliency head, and the test split is reported with QVHighlights' own figures (moment
    retrieval mAP per length bucket, highlight detection mAP and HIT@1), from what the pipeline answers."""
    import numpy as np
    from conftest import write_test_video

    annotations = shared_data / "qvhighlights" / "highlight_val_release.jsonl"
    records = [json.loads(line) for line in annotations.read_text().splitlines()]
    video_ids = list(dict.fromkeys(r["vid"] for r in records))[:3]
    videos = tmp_path / "videos"
    videos.mkdir()
    for video_id in video_ids:
        duration = next(r["duration"] for r in records if r["vid"] == video_id)
        write_test_video(videos / f"{video_id}.mp4", np.arange(0, duration, 0.5), size=(32, 32))
    args = [
        "--dataset", "qvhighlights", "--train_file", str(annotations), "--test_file", str(annotations),
        "--video_dir", str(videos), "--video_model", "tiny", "--image_size", "32", "--clip_frames", "4",
        "--num_frames", "24", "--head_hidden_size", "32", "--scada_bottleneck", "8", "--max_steps", "2",
        "--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end", "False",
        "--per_device_train_batch_size", "2", "--dataloader_num_workers", "0", "--output_dir", str(tmp_path / "out"),
    ]  # fmt: skip
    metrics = run_grounding.main(args)
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["saliency_head"] is True
    for name in ("MR-full-mAP", "MR-full-mAP@0.5", "MR-long-mAP", "HL-min-VeryGood-mAP", "HL-min-Fair-Hit1", "mAP"):
        assert 0 <= metrics[f"test_{name}"] <= 100, name
    predictions = [json.loads(line) for line in (tmp_path / "out" / "predictions_test.jsonl").read_text().splitlines()]
    assert {p["video_id"] for p in predictions} == set(video_ids)
    first = predictions[0]
    assert len(first["pred_saliency_clips"]) == int(first["duration_s"] / 2) and first["gt_ratings_s"]
    assert len(first["pred_spans_s"]) == 10  # QVHighlights' mAP reads the top 10 windows (of 12 time steps here)
