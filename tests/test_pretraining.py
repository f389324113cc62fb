"""Stage 1 (`modeling_tsgv.synthetic.pretraining`): token targets from the generator's tracks, the world it trains on, the
command's argument checks, and a few real steps that stop and resume."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import VideoMAEModel

from modeling_tsgv.synthetic import (
    ACTIONS,
    COLOURS,
    SHAPES,
    Event,
    SceneObject,
    VideoPlan,
    generate,
    held_out_combos,
    pretraining,
)
from modeling_tsgv.synthetic.pretraining import IGNORE, TARGET_NAMES, token_targets


def one_object_plan(action: str, **event) -> VideoPlan:
    """A 64-px, 10-fps, 10-s video with one red square of radius 12 px at (24, 24) doing `action` from 2 to 6 s."""
    plan = VideoPlan("syn00000", "train", num_frames=100, fps=10, image_size=64, blink_hz=0.8)
    plan.objects = [SceneObject("red", "square", radius_px=12.0, x_px=24.0, y_px=24.0)]
    plan.events = [Event(0, action, start_s=2.0, end_s=6.0, **event)]
    return plan


def test_token_targets_name_the_covering_object_and_its_action():
    plan = one_object_plan("move_right", amount=24.0)
    times_s = np.array([0.0, 0.1, 3.0, 3.1, 8.0, 8.1])  # before, during, after the move: three tubelets
    targets = token_targets(plan, times_s, grid=4, tubelet_size=2)
    assert set(targets) == set(TARGET_NAMES) and targets["colour"].shape == (3, 4, 4)
    red, square = list(COLOURS).index("red") + 1, list(SHAPES).index("square") + 1
    # the square (side 20.4 px around (24, 24)) covers patches rows/cols 0-2 before the move
    assert targets["colour"][0, 1, 1] == red and targets["shape"][0, 1, 1] == square
    assert targets["colour"][0, 3, 3] == 0 and targets["shape"][0, 3, 3] == 0  # background
    assert targets["action"][0, 3, 3] == IGNORE  # no action target on background
    assert targets["action"][0, 1, 1] == 0  # still before the event
    assert targets["action"][1, 1, 1] == ACTIONS.index("move_right") + 1  # moving during it
    assert targets["action"][2, 1, 2] == 0  # still after it, now further right
    assert targets["coverage"][0, 1, 1] == pytest.approx(1.0) and targets["coverage"][0, 3, 3] == 0.0
    # it moved 24 px right: into column 3 (x 37.8-58.2 px), out of column 1
    assert targets["colour"][2, 1, 3] == red and targets["colour"][0, 1, 3] == 0
    assert targets["colour"][2, 1, 1] == 0


def test_a_blinking_object_keeps_its_patches_in_its_dark_phase():
    plan = one_object_plan("blink")
    dark_s = 2.0 + 0.5 / 0.8 + 0.1  # inside the first dark half-period of the 0.8-Hz blink
    targets = token_targets(plan, np.array([dark_s, dark_s + 0.1]), grid=4, tubelet_size=2)
    assert targets["colour"][0, 1, 1] == list(COLOURS).index("red") + 1
    assert targets["action"][0, 1, 1] == ACTIONS.index("blink") + 1


def test_stage1_world_never_shows_the_grounding_worlds_held_out_combinations(tmp_path):
    meta = generate(
        tmp_path, num_videos=40, seed=5, preset="easy", held_out_seed=0, split_fractions=(0.9, 0.1, 0.0, 0.0),
        progress=False,
    )  # fmt: skip
    assert meta["counts"]["test"]["videos"] == meta["counts"]["test_novel"]["videos"] == 0
    banned = set(held_out_combos(0))
    lines = [(tmp_path / f"annotations/{split}.jsonl").read_text().splitlines() for split in ("train", "val")]
    rows = [json.loads(line) for split_lines in lines for line in split_lines]
    assert rows and all((row["object"]["colour"], row["action"]) not in banned for row in rows)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--world_seed", "0"], "differ from --held_out_seed"),
        (["--presets", "hard"], "--presets must name"),
        (["--size", "huge"], "--size must be one of"),
        (["--clip_frames", "5"], "--clip_frames (5) must be even"),
        (["--max_steps", "0"], "--max_steps must be >= 1"),
        (["--init_from", "/nonexistent"], "no config.json there"),
    ],
)
def test_arguments_that_cannot_work_stop_with_one_line(tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as stop:
        pretraining.main(["--output_dir", str(tmp_path / "out"), *flags])
    assert stop.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing written


TINY_RUN = [
    "--presets", "easy", "--num_videos", "24", "--held_out_fraction", "0.2", "--samplings_per_video", "1",
    "--num_frames", "16", "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "16",
    "--save_steps", "2", "--eval_steps", "100", "--logging_steps", "1", "--warmup_steps", "1",
    "--dataloader_num_workers", "0", "--cache_workers", "1", "--disable_tqdm", "true",
]  # fmt: skip


def backbone_weights(folder: Path) -> dict[str, torch.Tensor]:
    return VideoMAEModel.from_pretrained(folder).state_dict()


def test_stage1_trains_stops_resumes_and_makes_a_videomae_folder(tmp_path):
    straight = pretraining.main(["--output_dir", str(tmp_path / "straight"), "--max_steps", "6", *TINY_RUN])
    stopped = tmp_path / "stopped"
    pretraining.main(["--output_dir", str(stopped), "--max_steps", "4", *TINY_RUN])
    with pytest.raises(SystemExit):  # the finished run is not replaced by accident
        pretraining.main(["--output_dir", str(stopped), "--max_steps", "6", *TINY_RUN])
    resumed = pretraining.main(
        ["--output_dir", str(stopped), "--max_steps", "6", "--resume_from_checkpoint", "last", *TINY_RUN]
    )
    assert straight["steps"] == resumed["steps"] == 6
    assert set(resumed["readouts"]) >= {"colour_balanced_accuracy", "action_balanced_accuracy"}
    # the product is a plain VideoMAE checkpoint with the target heads and the record beside it
    folder = stopped / "backbone"
    assert (folder / "config.json").is_file() and (folder / "stage1_heads.safetensors").is_file()
    assert json.loads((folder / "stage1.json").read_text())["world"]["held_out_seed"] == 0
    assert "videomae.embeddings.patch_embeddings.projection.weight" not in load_file(
        folder / "stage1_heads.safetensors"
    )
    a, b = backbone_weights(tmp_path / "straight" / "backbone"), backbone_weights(folder)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)  # stopping and resuming changed nothing
    fresh = pretraining.build_model(pretraining.Stage1Arguments(num_frames=16), seed=0)[0].videomae.state_dict()
    assert any(not torch.allclose(fresh[k], b[k]) for k in b)  # and it trained


def test_init_from_a_saved_backbone_continues_its_count(tmp_path):
    first = tmp_path / "first"
    pretraining.main(["--output_dir", str(first), "--max_steps", "2", *TINY_RUN])
    record = pretraining.main(
        ["--output_dir", str(tmp_path / "more"), "--max_steps", "2", "--init_from", str(first / "backbone"), *TINY_RUN]
    )
    assert record["steps"] == 4  # 2 earlier + 2 now
    model, earlier = pretraining.build_model(pretraining.Stage1Arguments(init_from=str(first / "backbone")), seed=0)
    heads = load_file(first / "backbone" / "stage1_heads.safetensors")
    assert torch.equal(model.state_dict()["heads.action.weight"], heads["heads.action.weight"])
    assert earlier["steps"] == 2


def test_clip_labels_say_what_occurs_in_the_clip_and_nothing_of_where():
    from modeling_tsgv.synthetic.stage1_recognition import CLIP_LABELS, clip_labels

    colour = torch.tensor([0, 1, 1, 3, 0, 0])  # red on two tokens, blue on one, background elsewhere
    shape = torch.tensor([0, 2, 2, 5, 0, 0])
    action = torch.tensor([IGNORE, 0, ACTIONS.index("spin") + 1, 0, IGNORE, IGNORE])
    labels = clip_labels(colour, shape, action)
    on = {CLIP_LABELS[i] for i in labels.nonzero().flatten().tolist()}
    assert on == {"action:spin", "colour:red", "colour:blue", f"shape:{list(SHAPES)[1]}", f"shape:{list(SHAPES)[4]}"}
    assert torch.equal(labels, clip_labels(colour.flip(0), shape.flip(0), action.flip(0)))  # no where, no when


def test_tube_masks_hide_the_same_patches_at_every_time_step():
    from modeling_tsgv.synthetic.stage1_recognition import tube_mask

    mask = tube_mask(16, 4, 0.9, torch.Generator().manual_seed(0))
    assert mask.shape == (64,) and mask.sum() == 4 * 14
    assert all(torch.equal(mask[:16], mask[16 * t : 16 * (t + 1)]) for t in range(4))


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--objective", "contrastive"], "--objective must be token_targets or recognition"),
        (["--objective", "recognition", "--mae_steps", "10", "--max_steps", "10"], "--mae_steps (10) must be > 0"),
        (["--objective", "recognition", "--snapshot_steps", "5"], "work with --objective token_targets only"),
        (["--objective", "recognition", "--classify_learning_rate", "0"], "--classify_learning_rate must be > 0"),
    ],
)
def test_recognition_arguments_that_cannot_work_stop_with_one_line(tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as stop:
        pretraining.main(["--output_dir", str(tmp_path / "out"), *flags])
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_recognition_stage1_makes_a_classification_checkpoint_that_grounding_loads_and_resumes(tmp_path):
    """Masked reconstruction, then clip classification: a VideoMAEForVideoClassification folder (as a Kinetics
    fine-tune is) with its record and card; stopped in phase 2 and resumed, it equals a straight run."""
    from transformers import VideoMAEForVideoClassification

    from modeling_tsgv.synthetic.stage1_recognition import CLIP_LABELS
    from modeling_tsgv.video_backbones import load_video_backbone

    recognition = ["--objective", "recognition", "--mae_steps", "2", "--classify_learning_rate", "3e-4", *TINY_RUN]
    straight = pretraining.main(["--output_dir", str(tmp_path / "straight"), "--max_steps", "5", *recognition])
    stopped = tmp_path / "stopped"
    pretraining.main(["--output_dir", str(stopped), "--max_steps", "4", *recognition])
    resumed = pretraining.main(
        ["--output_dir", str(stopped), "--max_steps", "5", "--resume_from_checkpoint", "last", *recognition]
    )
    assert straight["classification_steps"] == resumed["classification_steps"] == 3 and resumed["mae_steps"] == 2
    assert set(resumed["readouts"]) == set(pretraining.READOUT_NAMES) == set(resumed["readouts_at_init"])
    assert set(resumed["clip_readouts"]) == {"action_clip_mAP", "colour_clip_mAP", "shape_clip_mAP"}
    assert resumed["norm_pix_loss"] is False and resumed["mae_loss"] == straight["mae_loss"]  # phase 1 read back
    assert resumed["learning_rate"] == 3e-4 and resumed["mae_learning_rate"] == 1e-3  # each phase its own rate
    folder = stopped / "backbone"
    model = VideoMAEForVideoClassification.from_pretrained(folder)
    assert list(model.config.id2label.values()) == list(CLIP_LABELS)
    assert model.config.problem_type == "multi_label_classification"
    a = VideoMAEForVideoClassification.from_pretrained(tmp_path / "straight" / "backbone").state_dict()
    b = model.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)  # stopping in phase 2 and resuming changed nothing
    card = (folder / "README.md").read_text()
    assert "{" not in card.split("```")[0] and "masked reconstruction" in card and "| **" in card
    assert "reconstruction loss" in card and "NORM_PIX_LOSS" in card
    backbone = load_video_backbone(str(folder))  # as run_grounding.py --video_model loads it
    assert backbone.config.hidden_size == model.config.hidden_size and backbone.layernorm is not None


def test_frame_caches_decode_in_worker_processes_after_the_parent_used_torch_threads(tmp_path):
    """Two caches in a row (train, then held-out) with 2 decoding processes: the first fills its file with torch
    copies, which start torch's thread pool; the second's forked workers must still decode (they waited forever on
    the parent's OpenMP threads before each worker was set to one thread). In a subprocess, so a hang fails."""
    import subprocess
    import sys

    if torch.get_num_threads() < 2:
        pytest.skip("one torch thread here: the parent starts no thread pool to inherit")
    script = (
        "import torch\n"
        "from modeling_tsgv.synthetic import pretraining\n"
        "torch.ones(64, 64, 64, 32).permute(0, 3, 1, 2).contiguous()  # the parent's thread pool runs\n"
        f"pretraining.main(['--output_dir', {str(tmp_path / 'out')!r}, '--max_steps', '1', "
        f"*{TINY_RUN!r}, '--cache_workers', '2'])\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    for split in ("train", "held_out"):
        assert (tmp_path / "out" / "cache" / split / "cache.json").is_file()
