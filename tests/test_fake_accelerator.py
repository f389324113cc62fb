"""Device bugs without a GPU: a run set up exactly as `run_grounding.py` sets it up, then one training step, and
the pipeline's forward, with the model on a fake accelerator (`fake_accelerator.py`). Any tensor left on the CPU
that meets one on the accelerator, and any value read back to the host inside the step, fails these tests."""

import sys
from unittest import mock

import pytest
import torch
from conftest import REPO_ROOT, TINY_RUN
from fake_accelerator import move_to_fake_device, trainer_on_fake_device
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode, unset_fake_temporarily

sys.path.insert(0, str(REPO_ROOT))
import run_grounding  # noqa: E402

TINY = [*TINY_RUN, "--max_steps", "1", "--eval_strategy", "no", "--save_strategy", "no"]
TINY += ["--load_best_model_at_end", "False"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from modeling_tsgv.synthetic import generate

    folder = tmp_path_factory.mktemp("fake") / "world"
    generate(folder, num_videos=8, seed=0, preset="easy", progress=False)
    return folder


def first_batch(run) -> dict:
    """The first training batch as the Trainer's DataLoader gives it: rows through the split's transform (decoded
    frames or cached states), then the training collator."""
    train = run.splits["train"]
    with unset_fake_temporarily():  # what a DataLoader worker does: real CPU work
        return run.trainer.data_collator([train[0], train[1]])


def device_types(run) -> set[str]:
    return {p.device.type for p in run.model.parameters()}


@pytest.mark.parametrize("cache_video_states", ["no", "yes"])
def test_a_training_step_set_up_as_run_grounding_does_keeps_every_tensor_on_the_accelerator(
    world, tmp_path, cache_video_states
):
    """Forward and loss on fake CUDA: the text states (computed after the Trainer placed the model), the cached video
    states and the batch all meet the model on its device, and the step reads nothing back."""
    from modeling_tsgv.modeling_tsgv import TSGVVideoBackbone

    args = [*TINY, "--synthetic_dir", str(world), "--output_dir", str(tmp_path / "out")]
    encoded_on = []  # where the video-states cache ran the backbone: the training device, not the CPU
    encode_video = TSGVVideoBackbone.encode_video

    def recording(self, pixel_values, record=None):
        encoded_on.append(pixel_values.device.type)
        return encode_video(self, pixel_values, record)

    with trainer_on_fake_device("cuda") as on_device, mock.patch.object(TSGVVideoBackbone, "encode_video", recording):
        run = run_grounding.setup([*args, "--cache_video_states", cache_video_states])
        on_device(run.trainer)
        assert device_types(run) == {"cuda"}
        assert set(encoded_on) == ({"cuda"} if cache_video_states == "yes" else set())
        batch = first_batch(run)
        assert "text_states" in batch  # the frozen encoder's states, served by the collator
        assert ("video_states" in batch) == (cache_video_states == "yes")
        batches, num_items = run.trainer.get_batch_samples(iter([batch]), 1, run.training_args.device)
        for key in ("video_ids", "decode_failures"):  # TSGVTrainer.training_step takes them out first
            batches[0].pop(key)
        inputs = run.trainer._prepare_inputs(batches[0])
        assert all(v.device.type == "cuda" for v in inputs.values() if isinstance(v, torch.Tensor))
        run.model.train()
        loss = run.trainer.compute_loss(run.model, inputs, num_items_in_batch=num_items)
        assert isinstance(loss, FakeTensor) and loss.device.type == "cuda" and loss.shape == ()


def test_the_training_step_with_its_backward_runs_on_a_fake_device_without_reading_back(world, tmp_path):
    """The Trainer's whole `training_step` (forward, loss, backward, the non-finite guard) on a fake device: no value
    is read back to the host and no tensor is left behind on the CPU. ("meta": autograd cannot run a backward on fake
    CUDA tensors without a GPU, see fake_accelerator.py.)"""
    args = [*TINY, "--synthetic_dir", str(world), "--output_dir", str(tmp_path / "out")]
    with trainer_on_fake_device("meta") as on_device:
        run = run_grounding.setup(args)
        on_device(run.trainer)
        batches, num_items = run.trainer.get_batch_samples(iter([first_batch(run)]), 1, run.training_args.device)
        run.trainer.create_optimizer_and_scheduler(num_training_steps=1)
        loss = run.trainer.training_step(run.model, batches[0], num_items)
        assert loss.device.type == "meta"
        trained = [p for p in run.model.parameters() if p.requires_grad]
        assert trained and all(p.grad is not None and p.grad.device.type == "meta" for p in trained)


def test_the_pipeline_forward_keeps_every_tensor_on_the_accelerator(model_dir, tmp_path):
    """Each window of a long video through the pipeline's preprocess and forward with the model on fake CUDA (the
    pipeline moves inputs there, as it does on a GPU): shared blocks once per window, the per-query part in chunks,
    outputs back on the CPU, nothing read back in between."""
    from conftest import write_test_video
    from transformers import pipeline

    from modeling_tsgv import register
    from modeling_tsgv.pipeline_tsgv import TASK

    register()
    pipe = pipeline(TASK, model=str(model_dir), device="cpu")  # the model's inference window: 20 s
    video = tmp_path / "long.mp4"
    write_test_video(video, [i / 4 for i in range(4 * 50)], size=(32, 32))  # 50 s: several windows
    with FakeTensorMode(allow_non_fake_inputs=True):
        move_to_fake_device(pipe.model, "cuda")
        pipe.device = torch.device("cuda")
        windows = list(pipe.preprocess(str(video), queries=["a red circle", "it moves", "a square"]))
        assert len(windows) > 1
        for window in windows:
            with torch.inference_mode():
                inputs = pipe._ensure_tensor_on_device(window, device=pipe.device)
                out = pipe._forward(inputs, query_batch_size=2)
            assert out["step_logits"].device.type == "cuda" and out["step_logits"].shape[0] == 3
