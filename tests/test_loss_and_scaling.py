"""The loss, its gradients and its scaling by the Trainer, each tested on its own; the adapter's temporal reach."""

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO_ROOT, tiny_config
from trainer_scaling_job import run as run_one_step

from modeling_tsgv import TSGVForGrounding
from modeling_tsgv.modeling_tsgv import ScadaAdapter, SentenceStandardizer
from modeling_tsgv.spans import offsets_to_spans


def test_a_boundary_predicted_past_the_video_edge_still_gets_a_gradient():
    torch.manual_seed(0)
    model = TSGVForGrounding(tiny_config())
    # 4 steps, centres 0.125 ... 0.875; the moment [0, 0.3] covers steps 0 and 1
    logits = torch.zeros(1, 4)
    offsets = torch.tensor([[[0.4, 0.2], [0.3, 0.1], [0.1, 0.1], [0.1, 0.1]]], requires_grad=True)
    spans = offsets_to_spans(offsets)
    assert spans[0, 0, 0] < 0  # step 0 predicts a start 0.275 before the video begins
    loss, _ = model.compute_loss(logits, offsets, torch.tensor([[0.0, 0.3]]))
    loss.backward()
    # the start distance of step 0 overshoots: the span losses must pull it back (a clamp to [0, 1] would give 0)
    assert offsets.grad[0, 0, 0] > 0
    # decoding still returns spans inside the video
    decoded, _ = model.decode(logits, offsets.detach())
    assert decoded.min() >= 0 and decoded.max() <= 1


@pytest.mark.parametrize("kernel", [3, 1])
def test_adapter_temporal_conv_reaches_exactly_the_neighbouring_steps_across_clips(kernel):
    config = tiny_config(scada_temporal_kernel=kernel)
    torch.manual_seed(0)
    adapter = ScadaAdapter(config).eval()
    with torch.no_grad():
        adapter.up.weight.normal_(std=0.5)  # `up` starts at zero: make the adapter do something
    clips, steps_per_clip, patches, width = 3, 2, 4, config.backbone_config.hidden_size
    hidden = torch.randn(clips, steps_per_clip * patches, width)  # one query: (C, t*hw, D), t-major
    sentence = torch.randn(1, config.text_config.hidden_size)
    base = adapter(hidden, sentence, steps_per_clip).view(clips * steps_per_clip, patches, width)

    # perturb the last step of clip 0 at patch 2: global time step 1 of 6
    perturbed = hidden.clone().view(clips, steps_per_clip, patches, width)
    perturbed[0, 1, 2] += 1.0
    out = adapter(perturbed.view_as(hidden), sentence, steps_per_clip).view(clips * steps_per_clip, patches, width)
    changed = (out - base).abs().amax(-1) > 1e-6  # (global step, patch)

    expected = torch.zeros(clips * steps_per_clip, patches, dtype=torch.bool)
    expected[1, 2] = True  # the token itself (its own bottleneck path)
    if kernel == 3:
        expected[0, 2] = expected[2, 2] = True  # one step either side: step 2 is the first step of clip 1
    assert torch.equal(changed, expected)


def test_sentence_standardizer_learns_statistics_and_is_the_identity_at_start():
    norm = SentenceStandardizer(3)
    x = torch.tensor([[1.0, 10.0, -5.0], [3.0, 30.0, -5.0], [5.0, 50.0, -5.0]])
    torch.testing.assert_close(norm.eval()(x), x, rtol=1e-4, atol=0)  # fresh: mean 0, variance 1
    norm.train()(x)  # the first update takes the batch statistics whole
    torch.testing.assert_close(norm.running_mean, torch.tensor([3.0, 30.0, -5.0]))
    out = norm.eval()(x)
    torch.testing.assert_close(out[:, 0], out[:, 1])  # dimensions of different scales come out alike
    assert out[:, 0].tolist() == pytest.approx([-1.0, 0.0, 1.0], abs=1e-4)
    before = norm.running_mean.clone()
    norm.train()(x[:1])  # a batch of one query leaves the statistics alone
    torch.testing.assert_close(norm.running_mean, before)


def test_gradient_accumulation_gives_the_update_of_a_doubled_batch(tmp_path):
    doubled = run_one_step(str(tmp_path / "a"), batch_size=4, accumulation=1)
    accumulated = run_one_step(str(tmp_path / "b"), batch_size=2, accumulation=2)
    assert accumulated["loss"] == pytest.approx(doubled["loss"], rel=1e-4)
    for name, expected in doubled["update"].items():
        torch.testing.assert_close(
            torch.tensor(accumulated["update"][name]), torch.tensor(expected), rtol=1e-4, atol=1e-7
        )
    assert any(abs(v) > 0 for values in doubled["update"].values() for v in values)  # something was updated


def test_two_ranks_log_the_loss_of_one_and_apply_its_update(tmp_path):
    single = run_one_step(str(tmp_path / "single"), batch_size=4, accumulation=1)
    out = tmp_path / "ranks" / "result.json"
    out.parent.mkdir()
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29541"]
    command = [*launcher, str(REPO_ROOT / "tests" / "trainer_scaling_job.py"), str(out), "--batch_size", "2"]
    # the job script runs from tests/: make the checkout importable even without an (up-to-date) editable install
    python_path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": python_path}
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = json.loads(out.read_text())
    assert ranks["world_size"] == 2
    assert ranks["loss"] == pytest.approx(single["loss"], rel=1e-4)  # one objective: not 2x, not a mean of means
    for name, expected in single["update"].items():
        torch.testing.assert_close(torch.tensor(ranks["update"][name]), torch.tensor(expected), rtol=1e-4, atol=1e-7)
