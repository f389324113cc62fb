"""Non-finite losses and gradients kept out of the weights, with one read back from the device per optimiser step.

Policy (what `TSGVTrainer` guarantees; tests/test_nonfinite.py):
- a micro-batch whose loss is not finite adds no gradient; the other micro-batches of its step keep theirs;
- a step in which no micro-batch had a finite loss (or whose videos all failed to decode) changes nothing;
- a non-finite accumulated gradient drops the step (gradients set to None, so AdamW's momentum and weight decay do
  not move the weights either), except under fp16, where the GradScaler skips it and lowers its scale;
- `max_nonfinite_steps` steps in a row with a non-finite loss or gradient stop the run (`NonFiniteStepsError`).

How, without waiting for the accelerator inside a step: each micro-batch's loss gets a device-side flag
(`isfinite`), and a hook on every trainable parameter keeps its gradient only where the flag holds
(`torch.where`, so a NaN of a bad micro-batch never reaches `.grad`, not even as 0 * NaN). At the step's last
micro-batch, a step without a good micro-batch gets NaN gradients (device-side, so the GradScaler or the norm check
below skips it). The decision that needs the host — skip the optimiser step or not, count, stop — is taken once per
optimiser step, from the gradient norm the Trainer computes anyway (for clipping and logging), in one small read
back. Under DeepSpeed and FSDP the engines own the gradients: losses are counted, nothing is masked.
"""

import math

import torch
from transformers.utils import logging

logger = logging.get_logger(__name__)


class NonFiniteStepsError(FloatingPointError):
    """`max_nonfinite_steps` training steps in a row had a non-finite loss or gradient; one line naming the batch's
    videos and what to try."""


class NonFiniteGuard:
    """The per-step bookkeeping of the policy above for one Trainer (see the module docstring).

    Args:
        max_in_a_row: consecutive bad steps that stop the run.
        engine_owned: DeepSpeed / FSDP: count only.
    """

    def __init__(self, max_in_a_row: int, engine_owned: bool = False):
        self.max_in_a_row, self.engine_owned = max_in_a_row, engine_owned
        self.bad_steps, self.in_a_row = 0, 0
        self._flag = None  # the current micro-batch's finite flag (0-d bool on the device), read by the hooks
        self._micro = []  # this step's micro-batches: (finite flag, None without a loss; video ids)
        self._hooks = []
        self._loss_sum = self._loss_count = None  # finite losses so far (device): what a bad micro-batch reports

    def install(self, model) -> None:
        """Put the gradient hook on every trainable parameter of `model` (once; nothing under DeepSpeed / FSDP)."""
        if self._hooks or self.engine_owned:
            return
        self._hooks = [p.register_hook(self._keep_if_finite) for p in model.parameters() if p.requires_grad]

    def remove(self) -> None:
        """Take the hooks off again (end of training)."""
        for hook in self._hooks:
            hook.remove()
        self._hooks = []

    def _keep_if_finite(self, grad: torch.Tensor) -> torch.Tensor:
        if self._flag is None:  # a backward outside a training step (a user's own): untouched
            return grad
        return torch.where(self._flag.to(grad.device), grad, 0.0)

    def begin(self) -> None:
        """Before a micro-batch's forward: until its loss is known, its gradients are kept (no flag yet)."""
        self._flag = None

    def loss(self, loss: torch.Tensor) -> torch.Tensor:
        """Flag a micro-batch's training loss (before its backward): its gradients are then kept only if it is
        finite. Returns `loss` itself."""
        self._flag = torch.isfinite(loss.detach()).all()
        return loss

    def end_micro_batch(self, loss: torch.Tensor, has_loss: bool, video_ids: list[str]) -> torch.Tensor:
        """After a micro-batch's backward: remember it for the step's decision (`has_loss` False: its videos all
        failed to decode). Returns the loss to report: the micro-batch's, or for one without a finite loss the mean
        finite loss so far (0 before any), computed on the device, so the logged mean is neither pulled down nor NaN
        (and the Trainer's own NaN filter, a read back per micro-batch, can stay off).

        No value comes back to the host here, and no host value goes to the device (a blocking copy would wait for
        the queued work as surely as a read): flags stay device tensors, constants are made there (`torch.full`)."""
        flag = self._flag if has_loss else None
        self._flag = None
        self._micro.append((flag, video_ids))
        loss = loss.detach().float()
        counted = flag if flag is not None else torch.zeros((), dtype=torch.bool, device=loss.device)
        if self._loss_sum is None:
            self._loss_sum, self._loss_count = torch.zeros_like(loss), torch.zeros_like(loss)
        self._loss_sum = self._loss_sum + torch.where(counted, loss, 0.0)
        self._loss_count = self._loss_count + counted.float()
        return torch.where(counted, loss, self._loss_sum / self._loss_count.clamp(min=1))

    def good_micro_batches(self, device, reduce) -> torch.Tensor:
        """Micro-batches of this step with a finite loss, summed over processes (`reduce`: a sum across ranks, a
        collective that does not wait on the host): a 0-d device tensor."""
        flags = [flag.long() for flag, _ in self._micro if flag is not None]
        good = torch.stack(flags).sum() if flags else torch.zeros((), dtype=torch.long, device=device)
        return reduce(good)

    def poison_if_nothing_good(self, model, good: torch.Tensor) -> None:
        """At the step's last micro-batch, before clipping: when no micro-batch anywhere had a finite loss, make every
        gradient NaN (device-side), so the GradScaler skips the step (under fp16) or the norm check drops it."""
        if self.engine_owned:
            return
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        if grads:
            scale = torch.where(good > 0, 1.0, float("nan")).to(grads[0].dtype)
            torch._foreach_mul_(grads, scale)

    def decide(self, model, grad_norm, scaler, step: int, device, reduce, host_counts: list[int]) -> list[int]:
        """Once per optimiser step, after the Trainer's gradient norm and before its optimiser step: the step's one
        read back from the device. It must be on the host: the Trainer's optimiser step has no device-side skip.

        Args:
            grad_norm: the Trainer's total gradient norm of the step (tensor or float; None: not computed).
            scaler: the fp16 GradScaler or None. step: the optimiser step about to run (1-based, for messages).
            device: the training device. reduce: a sum across processes. host_counts: integers to sum across
                processes alongside (e.g. new decode failures).
        Returns: `host_counts` summed over processes. Raises `NonFiniteStepsError`.
        """
        micro, self._micro = self._micro, []
        zero = torch.zeros((), dtype=torch.long, device=device)
        bad = [(~flag).long() if flag is not None else zero for flag, _ in micro]  # this process's bad ones
        if isinstance(grad_norm, torch.Tensor):
            norm_bad = (~torch.isfinite(grad_norm.to(device))).long()
        else:  # a float (DeepSpeed's), or no norm
            norm_bad = torch.full((), int(grad_norm is not None and not math.isfinite(grad_norm)), device=device)
        shared = [sum(bad, zero), *(torch.full((), int(c), dtype=torch.long, device=device) for c in host_counts)]
        values = torch.stack([*bad, norm_bad, *reduce(torch.stack(shared))]).tolist()  # the one read back
        n = len(micro)  # values: this process's bad flags, the norm's flag, the summed bad count, the host counts
        bad_here, norm_bad, nonfinite, others = values[:n], values[n], values[n + 1], values[n + 2 :]
        if any(bad_here):
            videos = [v for (_, ids), b in zip(micro, bad_here) if b for v in ids]
            logger.warning(
                f"step {step}: {sum(bad_here)} of {len(micro)} micro-batch(es) had a non-finite loss and added no "
                f"gradient (videos: {', '.join(videos) or 'unknown'})"
            )
        step_bad = nonfinite > 0
        if norm_bad and not self.engine_owned and scaler is None:
            model.zero_grad(set_to_none=True)  # the optimiser skips parameters without a gradient
            if not step_bad:
                logger.warning(f"step {step}: non-finite gradient, the step is skipped")
            step_bad = True
        self._count(step_bad, [v for _, ids in micro for v in ids])
        return others

    def _count(self, step_bad: bool, video_ids: list[str]) -> None:
        if not step_bad:
            self.in_a_row = 0
            return
        self.bad_steps += 1
        self.in_a_row += 1
        if self.in_a_row >= self.max_in_a_row:
            raise NonFiniteStepsError(
                f"{self.in_a_row} training steps in a row had a non-finite loss or gradient (last batch's videos: "
                f"{', '.join(video_ids) or 'unknown'}); lower the learning rate, train in float32 instead of "
                "fp16/bf16, or check them"
            )


__all__ = ["NonFiniteGuard", "NonFiniteStepsError"]
