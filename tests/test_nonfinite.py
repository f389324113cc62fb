"""Non-finite values in training: an fp16 GradScaler skips its own overflowed steps, and one bad micro-batch of a
gradient accumulation leaves the gradient of the others intact."""

import pytest
import torch
from conftest import tiny_config
from trainer_scaling_job import MomentsOfFourLengths, collate
from transformers import TrainerCallback, TrainingArguments

from modeling_tsgv import TSGVForGrounding
from modeling_tsgv.loss_tsgv import count_positive_steps
from modeling_tsgv.trainer import TSGVTrainer


def _trainer(tmp_path, model, accumulation=1, max_steps=1, collator=collate, max_grad_norm=0.0):
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=2,
        gradient_accumulation_steps=accumulation,
        max_steps=max_steps,
        learning_rate=0.1,
        optim="sgd",
        lr_scheduler_type="constant",
        weight_decay=0.0,
        max_grad_norm=max_grad_norm,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        remove_unused_columns=False,
        label_names=["labels", "durations_s"],
        seed=0,
        disable_tqdm=True,
    )
    return TSGVTrainer(model=model, args=args, train_dataset=MomentsOfFourLengths(), data_collator=collator)


def _model():
    torch.manual_seed(0)
    return TSGVForGrounding(tiny_config(sentence_standardization=False))


def _trainable(model):
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def _poison_forward(model, calls):
    """NaN scores on the given (1-based) training forward passes, as an fp16/bf16 overflow in the head would give."""
    count = [0]

    def hook(module, inputs, output):
        if not module.training:
            return output
        count[0] += 1
        return (output[0] * float("nan"), *output[1:]) if count[0] in calls else output

    model.head.register_forward_hook(hook)


def test_a_grad_scaler_skips_an_overflowed_step_and_training_goes_on(tmp_path):
    model = _model()
    trainer = _trainer(tmp_path, model, max_steps=4, max_grad_norm=1.0)  # clipping unscales first
    # the CPU has no fp16 autocast in the Trainer, so hand it the GradScaler an fp16 GPU run gets
    trainer.accelerator.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    trainer.accelerator.native_amp = True  # as on a GPU: gradients unscaled before clipping, fp16 autocast
    overflow_on = {2}
    step = [0]

    class Counter(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            step[0] = state.global_step + 1

    trainer.add_callback(Counter())
    # a gradient overflow (finite loss, infinite gradient) on step 2, as a too-large loss scale gives
    weight = model.head.score[3].weight
    weight.register_hook(lambda grad: grad * float("inf") if step[0] in overflow_on else grad)
    trainer.train()  # before: "No inf checks were recorded for this optimizer" from the scaler
    assert trainer.scaler_skipped_steps == 1
    assert trainer.nonfinite_steps == 0  # the scaler's own business, not a skipped bad batch
    assert trainer.accelerator.scaler.get_scale() == pytest.approx(2.0**9)  # lowered once
    assert all(torch.isfinite(p).all() for p in model.parameters())
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 4 and all(loss == loss for loss in losses)


def test_one_bad_micro_batch_leaves_the_others_gradient_intact(tmp_path):
    seen = []

    def recording(items):
        batch = collate(items)
        seen.append(batch["labels"].clone())
        return batch

    # one step of 2 micro-batches of 2; the second's loss is NaN
    model = _model()
    before = _trainable(model)
    _poison_forward(model, {2})
    trainer = _trainer(tmp_path / "a", model, accumulation=2, collator=recording)
    trainer.train()
    assert trainer.nonfinite_steps == 1
    update = {name: model.state_dict()[name] - value for name, value in before.items()}
    first_batch, total = seen[0], count_positive_steps(torch.cat(seen[:2]), 4)

    # the same first micro-batch as a step of its own
    seen.clear()
    alone = _model()
    trainer = _trainer(tmp_path / "b", alone, accumulation=1, collator=recording)
    trainer.train()
    torch.testing.assert_close(seen[0], first_batch)
    alone_update = {name: alone.state_dict()[name] - value for name, value in before.items()}

    # the accumulated gradient is the first micro-batch's, divided by the whole step's foreground steps
    scale = float(count_positive_steps(first_batch, 4)) / float(total)
    assert 0 < scale < 1
    got = torch.cat([update[name].flatten() for name in alone_update])
    expected = torch.cat([value.flatten() for value in alone_update.values()]) * scale
    assert expected.norm() > 1e-3  # the step does move the weights
    torch.testing.assert_close(got, expected, rtol=1e-3, atol=1e-4 * float(expected.abs().max()))
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert all(loss == loss for loss in losses)


def _weights_after_each_step(trainer):
    snapshots = []

    class Snapshot(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            snapshots.append({n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad})

    trainer.add_callback(Snapshot())
    return snapshots


def test_a_step_with_no_finite_micro_batch_changes_nothing_even_with_adamw_momentum(tmp_path):
    model = _model()
    _poison_forward(model, {3, 4})  # both micro-batches of step 2
    trainer = _trainer(tmp_path, model, accumulation=2, max_steps=2)
    trainer.args.optim = "adamw_torch"  # momentum and weight decay would move weights on zero gradients
    trainer.args.weight_decay = 0.1
    snapshots = _weights_after_each_step(trainer)
    trainer.train()
    assert trainer.nonfinite_steps == 1 and len(snapshots) == 2
    for name, value in snapshots[0].items():
        assert torch.equal(snapshots[1][name], value), name


def test_a_batch_whose_videos_all_failed_goes_through_an_fp16_step(tmp_path):
    calls = []

    def sometimes_empty(items):
        calls.append(len(items))
        if len(calls) == 2:  # the second batch: every video failed to decode
            failure = {"index": 0, "video_id": "v", "video_path": "/v.mp4", "error": "truncated"}
            return {"video_ids": ["v"], "decode_failures": [failure]}
        return collate(items)

    model = _model()
    trainer = _trainer(tmp_path, model, max_steps=3, collator=sometimes_empty)
    trainer.max_bad_sample_fraction = 1.0
    trainer.accelerator.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    trainer.accelerator.native_amp = True
    snapshots = _weights_after_each_step(trainer)
    trainer.train()  # before: "No inf checks were recorded for this optimizer" on the empty batch's step
    for name, value in snapshots[0].items():
        assert torch.equal(snapshots[1][name], value), name  # step 2 had nothing to learn from


def test_fp16_overflowing_step_after_step_stops_the_run_in_one_line(tmp_path):
    from modeling_tsgv.trainer import SCALER_SKIPS_IN_A_ROW, NonFiniteStepsError

    model = _model()
    trainer = _trainer(tmp_path, model, max_steps=SCALER_SKIPS_IN_A_ROW + 5)
    trainer.accelerator.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    trainer.accelerator.native_amp = True
    model.head.score[3].weight.register_hook(lambda grad: grad * float("inf"))  # every step overflows
    with pytest.raises(NonFiniteStepsError, match=f"{SCALER_SKIPS_IN_A_ROW} fp16 steps in a row overflowed"):
        trainer.train()
    assert trainer.state.global_step == SCALER_SKIPS_IN_A_ROW - 1  # raised during the 25th optimiser step
