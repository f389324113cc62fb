"""Faults of long runs, end to end through run_grounding.py on an 8-video world: videos that fail to decode mid-run
(skipped, counted, listed; too many stop the run), a DataLoader worker that dies (named with its file), non-finite
losses (skipped, counted; too many in a row stop the run)."""

import json
import os
import shutil
import signal
import sys

import pytest
import torch
from conftest import REPO_ROOT
from transformers import TrainerCallback

sys.path.insert(0, str(REPO_ROOT))
from test_run_grounding import tiny_args  # noqa: E402

import modeling_tsgv.data  # noqa: E402
import run_grounding  # noqa: E402


@pytest.fixture(scope="module")
def broken_world(tmp_path_factory):
    """The 8-video easy world with one training video truncated to garbage; returns (folder, that video)."""
    from modeling_tsgv.synthetic import generate

    folder = tmp_path_factory.mktemp("faults") / "world"
    generate(folder, num_videos=8, seed=0, preset="easy", progress=False)
    truncated = _first_video(folder, "train")
    truncated.write_bytes(truncated.read_bytes()[:300])
    return folder, truncated


def _first_video(folder, split):
    with open(folder / "annotations" / f"{split}.jsonl") as f:
        return folder / json.loads(f.readline())["video_path"]


class DeleteWhenTrainingStarts(TrainerCallback):
    """Deletes a file after the annotations were read and checked, as when files vanish during a long run."""

    def __init__(self, path):
        self.path = path

    def on_train_begin(self, args, state, control, **kwargs):
        os.remove(self.path)


def _queries(folder, split):
    return sum(1 for line in (folder / "annotations" / f"{split}.jsonl").read_text().splitlines() if line.strip())


@pytest.mark.parametrize("cache", ["no", "auto"])
def test_videos_that_fail_to_decode_are_skipped_counted_and_listed(broken_world, tmp_path, cache):
    folder, truncated = tmp_path / "world", broken_world[1]
    shutil.copytree(broken_world[0], folder)
    deleted = _first_video(folder, "test")
    args = tiny_args(tmp_path, "--synthetic_dir", str(folder), "--max_steps", "4", "--eval_strategy", "no")
    args += ["--save_strategy", "no", "--load_best_model_at_end", "False", "--cache_video_states", cache]
    args += ["--max_bad_sample_fraction", "0.5"]
    metrics = run_grounding.main(args, callbacks=[DeleteWhenTrainingStarts(deleted)])
    out = tmp_path / "out"
    skipped = json.loads((out / "skipped_videos.json").read_text())
    by_split = {(f["split"], os.path.basename(f["video_path"])) for f in skipped}
    assert by_split == {("train", truncated.name), ("test", deleted.name)}
    # the test video's queries stay in the denominator, as misses, and say why
    assert metrics["test_failed_videos"] == 1
    assert metrics["test_num_queries"] == _queries(folder, "test")
    records = [json.loads(line) for line in (out / "predictions_test.jsonl").read_text().splitlines()]
    lost = [r for r in records if "decode_error" in r]
    assert lost and metrics["test_failed_queries"] == len(lost)
    assert all(r["pred_spans_s"] == [] for r in lost)  # not seen: no answer (a miss in every metric)
    assert (out / "model.safetensors").exists()


def test_too_many_failures_stop_the_run_naming_them(broken_world, tmp_path):
    folder, truncated = broken_world
    args = tiny_args(tmp_path, "--synthetic_dir", str(folder), "--max_steps", "4", "--eval_strategy", "no")
    args += ["--save_strategy", "no", "--load_best_model_at_end", "False", "--cache_video_states", "no"]
    args += ["--max_bad_sample_fraction", "0"]
    with pytest.raises(RuntimeError, match=f"1 of 5 training videos failed to decode.*{truncated.name}"):
        run_grounding.main(args)


def test_a_dataloader_worker_that_dies_is_named_with_its_file(broken_world, tmp_path, monkeypatch):
    folder = tmp_path / "world"
    shutil.copytree(broken_world[0], folder)
    victim = sorted((folder / "videos").glob("*.mp4"))[0]
    read_frames = modeling_tsgv.data.read_frames

    def read_or_die(path, *args, **kwargs):
        if os.path.basename(str(path)) == victim.name:
            os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer or a decoder segfault would
        return read_frames(path, *args, **kwargs)

    monkeypatch.setattr(modeling_tsgv.data, "read_frames", read_or_die)  # forked DataLoader workers inherit it
    args = tiny_args(tmp_path, "--synthetic_dir", str(folder), "--max_steps", "2", "--eval_strategy", "no")
    args += ["--save_strategy", "no", "--cache_video_states", "no", "--dataloader_num_workers", "1"]
    args += ["--max_bad_sample_fraction", "1", "--dataloader_persistent_workers", "False"]
    with pytest.raises(RuntimeError, match=f"DataLoader worker.*it was reading .*{victim.name}"):
        run_grounding.main(args)


class NonFiniteLoss(TrainerCallback):
    """Makes the head's scores NaN for the given (1-based) optimiser steps, as a bf16 overflow would."""

    def __init__(self, steps):
        self.steps, self.step = set(steps), 0

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        def poison(module, inputs, output):
            if self.step in self.steps and module.training:
                return (output[0] * float("nan"), *output[1:])
            return output

        model.head.register_forward_hook(poison)

    def on_step_begin(self, args, state, control, **kwargs):
        self.step = state.global_step + 1


def test_non_finite_steps_are_skipped_and_counted(broken_world, tmp_path):
    folder = broken_world[0]
    args = tiny_args(tmp_path, "--synthetic_dir", str(folder), "--max_steps", "5", "--eval_strategy", "no")
    args += ["--save_strategy", "no", "--load_best_model_at_end", "False", "--max_bad_sample_fraction", "1"]
    metrics = run_grounding.main(args, callbacks=[NonFiniteLoss({2, 3})])
    assert metrics["train_nonfinite_steps"] == 2
    from safetensors.torch import load_file

    weights = load_file(tmp_path / "out" / "model.safetensors")
    assert all(torch.isfinite(w).all() for w in weights.values())  # no NaN reached the weights
    assert metrics["train_loss"] == metrics["train_loss"] and metrics["train_loss"] > 0  # no NaN in the mean


def test_non_finite_steps_in_a_row_stop_the_run_naming_the_videos(broken_world, tmp_path):
    folder = broken_world[0]
    args = tiny_args(tmp_path, "--synthetic_dir", str(folder), "--max_steps", "6", "--eval_strategy", "no")
    args += ["--save_strategy", "no", "--max_bad_sample_fraction", "1", "--max_nonfinite_steps", "3"]
    with pytest.raises(FloatingPointError, match=r"3 training steps in a row .*videos: syn\d+"):
        run_grounding.main(args, callbacks=[NonFiniteLoss(range(1, 7))])
    assert not (tmp_path / "out" / "model.safetensors").exists()


KILL_WHILE_SAVING_SCRIPT = """
import os, signal, sys
sys.path.insert(0, {root!r})
from transformers import Trainer
import run_grounding

save_optimizer = Trainer._save_optimizer_and_scheduler

def save_then_die(self, output_dir):
    if self.state.global_step == {step}:  # the weights of this checkpoint are written, the rest is not
        os.kill(os.getpid(), signal.SIGKILL)
    return save_optimizer(self, output_dir)

Trainer._save_optimizer_and_scheduler = save_then_die
run_grounding.main({args!r})
"""


def test_a_kill_while_a_checkpoint_is_written_never_resumes_from_it(broken_world, tmp_path):
    from safetensors.torch import load_file
    from test_run_grounding import run_script

    from modeling_tsgv.trainer import CHECKPOINT_MARKER

    folder = broken_world[0]
    common = ["--synthetic_dir", str(folder), "--backbone_tuning", "full", "--max_steps", "8", "--save_steps", "3"]
    common += ["--save_strategy", "steps", "--eval_strategy", "no", "--load_best_model_at_end", "False"]
    common += ["--max_bad_sample_fraction", "1"]
    straight = run_script(tiny_args(tmp_path / "a", *common))
    assert straight.returncode == 0, straight.stderr[-3000:]

    killed_args = tiny_args(tmp_path / "b", *common)
    killed = run_script([], python_code=KILL_WHILE_SAVING_SCRIPT.format(root=str(REPO_ROOT), step=6, args=killed_args))
    assert killed.returncode == -signal.SIGKILL
    out = tmp_path / "b" / "out"
    assert (out / "checkpoint-6" / "model.safetensors").exists()  # half-written: weights, no optimizer / state
    assert not (out / "checkpoint-6" / CHECKPOINT_MARKER).exists()
    assert (out / "checkpoint-3" / CHECKPOINT_MARKER).exists()

    # asked by path, the half-written one is refused, naming the one to use
    refused = run_script([*killed_args, "--resume_from_checkpoint", str(out / "checkpoint-6")])
    assert refused.returncode == 2
    assert "incomplete" in refused.stderr and "checkpoint-3" in refused.stderr, refused.stderr[-2000:]

    resumed = run_script([*killed_args, "--resume_from_checkpoint", "last"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "passing over" in resumed.stderr and "resuming from" in resumed.stderr
    expected = load_file(tmp_path / "a" / "out" / "model.safetensors")
    actual = load_file(out / "model.safetensors")
    for key in expected:
        assert torch.equal(expected[key], actual[key]), key


def test_the_bad_sample_budget_counts_videos_also_when_rows_are_queries(tmp_path):
    """Query-centric training rows are queries: 2 failed videos of 10 is 20 % (over a 10 % budget), although they are
    only 2 of 40 rows."""
    import datasets
    from conftest import tiny_config
    from transformers import TrainingArguments

    from modeling_tsgv import TSGVForGrounding
    from modeling_tsgv.annotations import explode_queries
    from modeling_tsgv.trainer import BadSampleBudgetError, TSGVTrainer

    videos = [
        {"video_id": f"v{i}", "video_path": f"/videos/v{i}.mp4", "duration_s": 10.0, "sentences": ["a"] * 4,
         "query_ids": [f"v{i}:{q}" for q in range(4)], "spans_s": [[[1.0, 2.0]]] * 4}
        for i in range(10)
    ]  # fmt: skip
    rows = explode_queries(datasets.Dataset.from_list(videos))
    assert len(rows) == 40
    args = TrainingArguments(str(tmp_path), use_cpu=True, report_to="none", remove_unused_columns=False)
    trainer = TSGVTrainer(
        model=TSGVForGrounding(tiny_config()), args=args, train_dataset=rows, max_bad_sample_fraction=0.1
    )
    failures = [
        {"index": 0, "video_id": f"v{i}", "video_path": f"/videos/v{i}.mp4", "error": "truncated"} for i in (3, 7)
    ]
    batch = {"video_ids": ["v3", "v7"], "decode_failures": failures[:1]}
    trainer.training_step(trainer.model, batch)  # 1 of 10 videos: within 10 %
    batch = {"video_ids": ["v7"], "decode_failures": failures[1:]}
    with pytest.raises(
        BadSampleBudgetError, match=r"2 of 10 training videos .*--max_bad_sample_fraction 0.1.*v3\.mp4"
    ):
        trainer.training_step(trainer.model, batch)


TRAINER_REFUSALS = [
    ({"dataloader_persistent_workers": True, "dataloader_num_workers": 1}, {}, "--dataloader_persistent_workers"),
    ({}, {"max_bad_sample_fraction": 1.5}, "--max_bad_sample_fraction must be in [0, 1], got 1.5"),
    ({}, {"max_nonfinite_steps": 0}, "--max_nonfinite_steps must be > 0, got 0"),
]


@pytest.mark.parametrize("settings,budgets,words", TRAINER_REFUSALS, ids=[w for _, _, w in TRAINER_REFUSALS])
def test_the_trainer_refuses_what_the_script_refuses_in_the_same_words(tmp_path, settings, budgets, words):
    """One rule for the Trainer's settings: a `TSGVTrainer` built in Python refuses what `run_grounding.py` refuses
    while parsing, with the same message; the DataLoader rule only when there is a training set."""
    import datasets
    from conftest import tiny_config
    from transformers import TrainingArguments

    from modeling_tsgv import TSGVForGrounding
    from modeling_tsgv.trainer import TSGVTrainer

    rows = datasets.Dataset.from_list([{"video_id": "v", "duration_s": 5.0, "sentences": ["a"], "spans_s": [[]]}])
    args = TrainingArguments(str(tmp_path), use_cpu=True, report_to="none", remove_unused_columns=False, **settings)
    model = TSGVForGrounding(tiny_config())
    with pytest.raises(ValueError) as refused:
        TSGVTrainer(model=model, args=args, train_dataset=rows, **budgets)
    assert words in str(refused.value)
    flags = [f"--{k}={v}" for k, v in {**settings, **budgets}.items()]
    with pytest.raises(run_grounding.ArgumentError) as script:
        run_grounding.main(["--output_dir", str(tmp_path / "out"), "--synthetic_dir", str(tmp_path / "w"), *flags])
    assert str(script.value) == str(refused.value)
    if settings:  # evaluation only: the DataLoader rule is about the training set's per-epoch draws
        TSGVTrainer(model=model, args=args, **budgets)


def test_a_validation_split_without_moments_is_refused_before_training(tmp_path):
    import datasets

    rows = [{"video_id": "v", "duration_s": 5.0, "sentences": ["a"], "spans_s": [[]]}]
    splits = {"train": datasets.Dataset.from_list(rows), "val": datasets.Dataset.from_list(rows)}
    _, data_args, training_args = run_grounding.parse_arguments(["--output_dir", str(tmp_path / "out")])
    with pytest.raises(run_grounding.ArgumentError, match="validation split \\(val\\) has no labelled moments"):
        run_grounding.check_validation_labels(splits, "val", data_args, training_args)
    training_args.eval_strategy = "no"
    run_grounding.check_validation_labels(splits, "val", data_args, training_args)  # nothing evaluated: fine


KILL_WHEN_TRAINING_STARTS_SCRIPT = """
import os, signal, sys
sys.path.insert(0, {root!r})
from transformers import TrainerCallback
import run_grounding

class Kill(TrainerCallback):
    def on_train_begin(self, args, state, control, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

run_grounding.main({args!r}, callbacks=[Kill()])
"""


def test_a_run_killed_before_its_first_save_leaves_the_overwritten_model_in_place(broken_world, tmp_path):
    from test_run_grounding import run_script

    out = tmp_path / "out"
    (out / "checkpoint-40").mkdir(parents=True)
    (out / "checkpoint-40" / "trainer_state.json").write_text("{}")
    (out / "model.safetensors").write_bytes(b"the earlier run's weights")
    args = tiny_args(tmp_path, "--synthetic_dir", str(broken_world[0]), "--max_bad_sample_fraction", "1")
    args += ["--overwrite_output_dir", "--max_steps", "2"]
    killed = run_script([], python_code=KILL_WHEN_TRAINING_STARTS_SCRIPT.format(root=str(REPO_ROOT), args=args))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert (out / "model.safetensors").read_bytes() == b"the earlier run's weights"
    assert list(out.glob(".replaced-checkpoints/*/checkpoint-40/trainer_state.json"))


STOP_SCRIPT = """
import os, signal, sys
# as in a terminal: a process started in the background (CI, `cmd &`) inherits SIGINT ignored, and Python then
# installs no handler of its own
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.path.insert(0, {root!r})
from transformers import TrainerCallback
import run_grounding

class CtrlC(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == {step}:
            os.kill(os.getpid(), signal.SIGINT)

sys.exit(run_grounding.cli({args!r}, callbacks=[CtrlC()]))
"""


def test_ctrl_c_says_in_one_line_where_the_checkpoint_is_and_how_to_resume(broken_world, tmp_path):
    from test_run_grounding import run_script

    args = tiny_args(tmp_path, "--synthetic_dir", str(broken_world[0]), "--max_bad_sample_fraction", "1")
    args += ["--max_steps", "6", "--save_strategy", "steps", "--save_steps", "2", "--eval_strategy", "no"]
    args += ["--load_best_model_at_end", "False"]
    stopped = run_script([], python_code=STOP_SCRIPT.format(root=str(REPO_ROOT), step=3, args=args))
    assert stopped.returncode == 130, stopped.stderr[-3000:]
    assert "Traceback" not in stopped.stderr
    (last,) = [line for line in stopped.stderr.splitlines() if line.startswith("run_grounding.py:")]
    checkpoint = tmp_path / "out" / "checkpoint-2"
    assert f"the newest complete checkpoint is {checkpoint}" in last
    assert last.endswith("--resume_from_checkpoint last") and "--max_steps 6" in last


def test_an_exceeded_bad_sample_budget_stops_in_one_line_naming_the_file_and_the_flag(broken_world, tmp_path):
    from test_run_grounding import run_script

    folder, truncated = broken_world
    args = tiny_args(tmp_path, "--synthetic_dir", str(folder), "--max_bad_sample_fraction", "0", "--max_steps", "4")
    args += ["--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end", "False"]
    result = run_script(args)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    (last,) = [line for line in result.stderr.splitlines() if line.startswith("run_grounding.py:")]
    assert last.startswith("run_grounding.py: error: 1 of ") and "--max_bad_sample_fraction 0" in last
    assert truncated.name in last


def test_resuming_a_finished_run_is_refused_and_its_record_kept(broken_world, tmp_path):
    args = tiny_args(tmp_path, "--synthetic_dir", str(broken_world[0]), "--max_bad_sample_fraction", "1")
    args += ["--max_steps", "2", "--save_strategy", "steps", "--save_steps", "2", "--eval_strategy", "no"]
    args += ["--load_best_model_at_end", "False"]
    run_grounding.main(args)
    record = (tmp_path / "out" / "all_results.json").read_text()
    with pytest.raises(run_grounding.ArgumentError, match="has trained 2 steps, all that .*nothing left to resume"):
        run_grounding.main([*args, "--resume_from_checkpoint", "last"])
    assert (tmp_path / "out" / "all_results.json").read_text() == record
    with pytest.raises(run_grounding.ArgumentError, match="nothing left to resume"):  # in epochs: 2 steps = 0.5 epoch
        run_grounding.main(
            [*args, "--resume_from_checkpoint", "last", "--max_steps", "-1", "--num_train_epochs", "0.5"]
        )
    # asking for more steps, or more epochs, continues it
    metrics = run_grounding.main([*args, "--resume_from_checkpoint", "last", "--max_steps", "3"])
    assert metrics["train_runtime"] > 0
    metrics = run_grounding.main(
        [*args, "--resume_from_checkpoint", "last", "--max_steps", "-1", "--num_train_epochs", "2"]
    )
    assert metrics["train_runtime"] > 0
