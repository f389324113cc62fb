"""run_grounding.py refuses arguments that cannot work, and never replaces a trained model by accident: each check
fires before anything is generated, trained or written, with one line naming the flag."""

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

from modeling_tsgv import grounding_args, splits, trainer

sys.path.insert(0, str(REPO_ROOT))
import run_grounding  # noqa: E402
from run_grounding import ArgumentError  # noqa: E402

NONSENSE = [
    (["--num_train_epochs", "-1"], "--num_train_epochs"),
    (["--num_train_epochs", "0"], "--num_train_epochs"),
    (["--max_steps", "0"], "--max_steps"),
    (["--learning_rate", "0"], "--learning_rate"),
    (["--learning_rate=-1e-3"], "--learning_rate"),
    (["--per_device_train_batch_size", "0"], "--per_device_train_batch_size"),
    (["--num_frames", "0"], "--num_frames"),
    (["--num_frames", "12"], "--num_frames"),  # not a multiple of the 8-frame clips
    (["--clip_frames", "3", "--num_frames", "12"], "--clip_frames"),
    (["--image_size", "50"], "--image_size"),  # not a multiple of 16-px patches
    (["--backbone_tuning", "lora"], "--backbone_tuning"),
    (["--spatial_pooling", "max"], "--spatial_pooling"),
    (["--scada_temporal_kernel", "2"], "--scada_temporal_kernel"),
    (["--nms_threshold", "1.5"], "--nms_threshold"),
    (["--max_queries_per_video", "0"], "--max_queries_per_video"),
    (["--dataset", "kinetics"], "--dataset"),
    (["--dataset", "charades-sta"], "--dataset charades-sta needs"),  # a format without files
    (["--dataset", "charades-sta", "--train_file", "no/such/file.txt"], "--train_file"),
    (["--video_model", "tinyy/../x"], "--video_model"),
    (["--video_model", "./no_such_folder"], "--video_model"),
    (["--video_model", "tine"], "random-init size (tiny, vit-s"),
    (["--text_model", "/no/such/encoder"], "--text_model"),
    (["--decode_backend", "ffmpeg"], "--decode_backend"),
    (["--synthetic_preset", "hard"], "--synthetic_preset"),
    (["--synthetic_num_videos", "2"], "--synthetic_num_videos"),
    (["--evaluate_only"], "--evaluate_only needs --model_name_or_path"),
    (["--resume_from_checkpoint", "last"], "--resume_from_checkpoint last"),
    (["--resume_from_checkpoint", "no/such/checkpoint-3"], "--resume_from_checkpoint"),
    (["--dataloader_persistent_workers", "--dataloader_num_workers", "1"], "--dataloader_persistent_workers"),
    (["--synthetic_split_videos", "10", "2", "3"], "--synthetic_split_videos needs 4 counts"),
    (["--synthetic_num_videos", "40", "--synthetic_split_videos", "10", "2", "3", "3"], "not both"),
    (["--backbone_lr_multiplier", "0"], "--backbone_lr_multiplier must be > 0"),
    (["--layer_decay", "1.5"], "--layer_decay must be in (0, 1]"),
    (["--config_overrides", "drop_path_rate=1.0"], "drop_path_rate"),
]


@pytest.mark.parametrize("extra,flag", NONSENSE, ids=[" ".join(args) for args, _ in NONSENSE])
def test_nonsense_arguments_stop_before_anything_is_written(tmp_path, extra, flag):
    out, world = tmp_path / "out", tmp_path / "world"
    with pytest.raises(ArgumentError) as error:
        run_grounding.main(["--output_dir", str(out), "--synthetic_dir", str(world), *extra])
    message = str(error.value)
    assert flag in message and "\n" not in message
    assert not out.exists() and not world.exists()  # no model, no card, no generated world


def test_the_script_prints_one_line_and_exits_2(tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "run_grounding.py"), "--num_train_epochs", "-1", "--output_dir", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "run_grounding.py: error: --num_train_epochs must be > 0, got -1.0"
    ], result.stderr[-2000:]
    assert not out.exists()


def _trained_folder(path, checkpoints=()):
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"weights of a trained model")
    (path / "all_results.json").write_text("{}")
    for step in checkpoints:
        (path / f"checkpoint-{step}").mkdir()
        (path / f"checkpoint-{step}" / "model.safetensors").write_bytes(b"x")
        (path / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
        marker = {"step": step, "files": {"model.safetensors": 1, "trainer_state.json": 2}}  # complete: written last
        (path / f"checkpoint-{step}" / "tsgv_checkpoint.json").write_text(json.dumps(marker))
    return path


def test_a_trained_model_is_never_replaced_without_being_asked(tmp_path):
    out = _trained_folder(tmp_path / "out")
    with pytest.raises(ArgumentError, match="already holds a trained model.*--overwrite_output_dir"):
        run_grounding.main(["--output_dir", str(out), "--synthetic_dir", str(tmp_path / "world")])
    assert (out / "model.safetensors").read_bytes() == b"weights of a trained model"
    assert sorted(os.listdir(out)) == ["all_results.json", "model.safetensors"]
    assert not (tmp_path / "world").exists()
    # evaluating into it would rewrite its card and results: refused as well
    with pytest.raises(ArgumentError, match="already holds a trained model"):
        run_grounding.main(["--output_dir", str(out), "--evaluate_only", "--model_name_or_path", str(out)])


def test_checkpoints_of_an_earlier_run_are_refused_too(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "checkpoint-88").mkdir()
    with pytest.raises(ArgumentError, match=r"checkpoints of an earlier run \(1\)"):
        run_grounding.main(["--output_dir", str(out), "--synthetic_dir", str(tmp_path / "world")])


def _training_args(out, *extra):
    parser = run_grounding.GroundingArgumentParser(run_grounding.GroundingTrainingArguments)
    (args,) = parser.parse_args_into_dataclasses(args=["--output_dir", str(out), *extra])
    return args


def test_overwrite_sets_the_earlier_runs_checkpoints_aside_until_the_new_run_saves(tmp_path):
    out = _trained_folder(tmp_path / "out", checkpoints=(264, 528))
    args = _training_args(out, "--overwrite_output_dir")
    grounding_args.check_output_dir(args)
    # the new run's checkpoint rotation and a later `--resume_from_checkpoint last` must not see stale ones...
    assert sorted(os.listdir(out)) == [".replaced-checkpoints", "all_results.json", "model.safetensors"]
    assert trainer.last_complete_checkpoint(str(out)) is None
    # ...but nothing is deleted before the new run has saved something
    (held,) = (out / ".replaced-checkpoints").iterdir()
    assert sorted(os.listdir(held)) == ["checkpoint-264", "checkpoint-528"]
    # a second overwrite killed before its first save adds its own set beside the first
    (out / "checkpoint-264").mkdir()
    (out / "checkpoint-264" / "trainer_state.json").write_text("{}")
    grounding_args.check_output_dir(_training_args(out, "--overwrite_output_dir"))
    assert len(list((out / ".replaced-checkpoints").iterdir())) == 2
    run_grounding.DropReplacedCheckpoints.drop(args)
    assert sorted(os.listdir(out)) == ["all_results.json", "model.safetensors"]


def test_resume_last_finds_the_newest_complete_checkpoint(tmp_path):
    out = _trained_folder(tmp_path / "out", checkpoints=(9, 10))
    (out / "checkpoint-11").mkdir()  # a kill while it was being written left only its weights
    (out / "checkpoint-11" / "model.safetensors").write_bytes(b"x")
    args = _training_args(out, "--resume_from_checkpoint", "last")
    grounding_args.check_output_dir(args)
    assert args.resume_from_checkpoint == str(out / "checkpoint-10")
    assert (out / "model.safetensors").exists()  # resuming replaces nothing before training ends


# ---- the model flags: shorthands for --config_overrides, applied to new and saved models alike, refused where not


def _parsed(tmp_path, *extra):
    return run_grounding.parse_arguments(["--output_dir", str(tmp_path / "out"), *extra])


def test_config_overrides_reach_the_model_with_the_named_flags(tmp_path):
    model_args, _, _ = _parsed(
        tmp_path,
        *("--video_model", "tiny", "--image_size", "32", "--clip_frames", "4", "--num_frames", "8"),
        *("--backbone_tuning", "partial", "--partial_layers", "1", "--max_spans", "3"),
        *("--config_overrides", "head_dropout=0.3, loss_diou_weight=2.5,head_sentence_gating=false"),
    )
    config = run_grounding.build_model(model_args).config
    assert (config.head_dropout, config.loss_diou_weight, config.head_sentence_gating) == (0.3, 2.5, False)
    assert (config.backbone_tuning, config.partial_layers, config.max_spans) == ("partial", [1], 3)
    assert config.num_frames == 8 and config.image_size == 32


CONFIG_NONSENSE = [
    (["--config_overrides", "head_dropuot=0.3"], "--config_overrides"),  # a typo
    (["--config_overrides", "head_dropout=lots"], "--config_overrides"),
    (["--config_overrides", "head_dropout=1.5"], "--config_overrides head_dropout must be in [0, 1)"),
    (["--config_overrides", "scada_layers=1"], "--config_overrides"),  # a list: its own flag
    (["--config_overrides", "max_spans=2", "--max_spans", "3"], "give it once"),
    (["--head_layers", "-1"], "--head_layers must be >= 0"),
    (["--config_overrides", "focal_alpha=2"], "--config_overrides focal_alpha"),
    (["--config_overrides", "hidden_size=512"], "'hidden_size' is not a TSGVConfig field"),  # a read-only property
    (["--config_overrides", "return_dict=false"], "'return_dict' is not a TSGVConfig field"),  # not ours
    (["--config_overrides", "head_dropout=0.1=0.2"], "is not key=value"),
    (["--clip_frames", "12"], "--clip_frames: num_frames (32) must be a positive multiple of clip_frames (12)"),
    (["--config_overrides", "num_frames=30"], "--config_overrides num_frames (30)"),
    (["--nms_threshold", "high"], "--nms_threshold must be a number in (0, 1] or none"),
]


@pytest.mark.parametrize("extra,words", CONFIG_NONSENSE, ids=[" ".join(args) for args, _ in CONFIG_NONSENSE])
def test_bad_config_overrides_stop_in_one_line(tmp_path, extra, words):
    with pytest.raises(ArgumentError) as error:
        _parsed(tmp_path, "--synthetic_dir", str(tmp_path / "world"), *extra)
    assert words in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "world").exists()


@pytest.fixture
def saved_model(tmp_path, minilm_path):
    from conftest import save_tiny_model

    from modeling_tsgv import TSGVProcessor

    folder = save_tiny_model(tmp_path / "saved", minilm_path)
    TSGVProcessor.from_text_encoder(minilm_path, image_size=32, max_text_length=7).save_pretrained(folder)
    return folder


def test_nms_can_be_turned_off_from_the_command_line(tmp_path):
    model_args, _, _ = _parsed(tmp_path, "--nms_threshold", "none")
    assert model_args.config_overrides_dict()["nms_threshold"] is None


def test_flags_apply_to_a_saved_model_and_its_own_processor_is_loaded(tmp_path, saved_model):
    model_args, _, _ = _parsed(
        tmp_path, "--model_name_or_path", str(saved_model), "--max_spans", "2", "--backbone_tuning", "scada"
    )
    model = run_grounding.build_model(model_args)
    assert model.config.max_spans == 2  # applied, not dropped
    processor = run_grounding.load_processor(model_args, model)
    assert processor.max_text_length == 7  # the saved processor, not one rebuilt from defaults


SAVED_MODEL_REFUSALS = [
    (["--scada_bottleneck", "16"], "scada_bottleneck cannot change"),
    (["--backbone_tuning", "full"], "backbone_tuning cannot change"),
    (["--config_overrides", "head_hidden_size=64"], "head_hidden_size cannot change"),
    (["--video_model", "tiny"], "--video_model cannot apply with --model_name_or_path"),
    (["--text_model", "bert-base-uncased"], "--text_model cannot apply"),
]


@pytest.mark.parametrize("extra,words", SAVED_MODEL_REFUSALS, ids=[" ".join(a) for a, _ in SAVED_MODEL_REFUSALS])
def test_flags_that_cannot_apply_to_a_saved_model_are_refused(tmp_path, saved_model, extra, words):
    with pytest.raises(ArgumentError) as error:
        _parsed(tmp_path, "--model_name_or_path", str(saved_model), *extra)
    assert words in str(error.value) and "\n" not in str(error.value)


def test_a_saved_processor_that_cannot_feed_the_model_is_refused(tmp_path, saved_model, minilm_path):
    from modeling_tsgv import TSGVProcessor

    TSGVProcessor.from_text_encoder(minilm_path, image_size=64).save_pretrained(saved_model)
    model_args, _, _ = _parsed(tmp_path, "--model_name_or_path", str(saved_model))
    model = run_grounding.build_model(model_args)
    with pytest.raises(ArgumentError, match="another size than the model's image_size 32"):
        run_grounding.load_processor(model_args, model)


def test_the_resume_command_after_ctrl_c_is_one_that_works(tmp_path):
    out = _trained_folder(tmp_path / "out", checkpoints=(4,))
    argv = ["--output_dir", str(out), "--resume_from_checkpoint", "somewhere", "--max_steps", "9"]
    message = str(run_grounding.RunInterrupted(str(out), argv))
    assert message.endswith(
        f"resume with: python run_grounding.py --output_dir {out} --max_steps 9 --resume_from_checkpoint last"
    )
    message = str(run_grounding.RunInterrupted(str(out), ["job.yaml"]))  # a config file takes no extra flags
    assert 'add "resume_from_checkpoint": "last" to job.yaml' in message
    assert "nothing to resume" in str(run_grounding.RunInterrupted(str(tmp_path / "empty"), argv))


def test_ddp_does_not_search_for_unused_parameters_by_default(tmp_path):
    _, _, training_args = _parsed(tmp_path)
    assert training_args.ddp_find_unused_parameters is False


def test_the_default_world_has_test_splits_of_at_least_1500_queries_and_num_videos_keeps_its_meaning():
    _, data_args, _ = run_grounding.parse_arguments(["--output_dir", "unused"])
    assert data_args.synthetic_split_videos == list(grounding_args.DEFAULT_SPLIT_VIDEOS) == [700, 100, 520, 1280]
    assert splits.synthetic_sizes(data_args) == {"split_videos": [700, 100, 520, 1280]}
    _, data_args, _ = run_grounding.parse_arguments(["--output_dir", "unused", "--synthetic_num_videos", "40"])
    assert data_args.synthetic_split_videos is None
    assert splits.synthetic_sizes(data_args) == {"num_videos": 40}  # split 70/10/10/10, as before
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    import study

    assert study.LARGE_SPLITS[1:] == [
        str(count) for count in grounding_args.DEFAULT_SPLIT_VIDEOS
    ]  # the study's splits


def test_a_run_on_real_data_never_imports_the_synthetic_world(tmp_path):
    (tmp_path / "train.txt").write_text("v1 0.0 2.0##a person opens the fridge\n")
    (tmp_path / "videos").mkdir()
    argv = ["--dataset", "charades-sta", "--train_file", str(tmp_path / "train.txt"), "--video_dir",
            str(tmp_path / "videos"), "--output_dir", str(tmp_path / "out")]  # fmt: skip
    code = (
        "import sys; import run_grounding; run_grounding.parse_arguments(sys.argv[1:]); "
        "print(sorted(name for name in sys.modules if name.startswith('modeling_tsgv.synthetic')))"
    )
    done = subprocess.run([sys.executable, "-c", code, *argv], cwd=REPO_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
    # and the synthetic dataset does import it, when its arguments are parsed (in a fresh output folder: the default
    # one holds a model once the README's first command has run)
    synthetic = ["--output_dir", str(tmp_path / "synthetic")]
    done = subprocess.run([sys.executable, "-c", code, *synthetic], cwd=REPO_ROOT, capture_output=True, text=True)
    assert "'modeling_tsgv.synthetic'" in done.stdout.strip().splitlines()[-1], done.stderr[-2000:]
