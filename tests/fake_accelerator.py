"""A fake accelerator for CPU-only CI: torch's `FakeTensorMode` with tensors on "cuda" (or "meta").

Under the mode a fake tensor carries shape, dtype and device but no data: code runs as it would on a GPU, and
- any mix of devices in one op (a CPU tensor meeting a CUDA one) raises `FakeTensorDeviceMismatchError`;
- any read of a value back to the host (`bool(t)`, `.item()`, `.tolist()`, a data-dependent shape) raises
  `DataDependentOutputException`: on a real GPU each is a wait for all queued work.

One limit, checked with torch 2.14.1: autograd's engine asks the CUDA driver for a primary context before running a
backward, so `loss.backward()` on fake "cuda" tensors fails without a GPU. A backward therefore runs on fake "meta"
tensors: another device than the CPU, so device mixes raise there too, and the engine runs it on the CPU.
"""

import contextlib
from unittest import mock

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode, unset_fake_temporarily
from torch.utils.data import DataLoader
from transformers import Trainer


def fake_like(tensor: torch.Tensor, device: str) -> torch.Tensor:
    """A fake tensor with `tensor`'s shape, strides and dtype on `device` (call under the fake mode)."""
    return torch.empty_strided(tensor.shape, tensor.stride(), dtype=tensor.dtype, device=device)


def move_to_fake_device(module: nn.Module, device: str) -> nn.Module:
    """Replace every parameter and buffer of `module` with a fake one on `device`, keeping `requires_grad` and
    shared (tied) tensors shared. Call under the fake mode."""
    replaced = {}
    for submodule in module.modules():
        for name, param in list(submodule._parameters.items()):
            if param is not None:
                if id(param) not in replaced:
                    replaced[id(param)] = nn.Parameter(fake_like(param, device), requires_grad=param.requires_grad)
                submodule._parameters[name] = replaced[id(param)]
        for name, buffer in list(submodule._buffers.items()):
            if buffer is not None:
                submodule._buffers[name] = fake_like(buffer, device)
    return module


class _RealIterator:
    """A DataLoader's iterator whose set-up and batches run outside the fake mode: the loading side of a GPU run
    (sampler, workers' seeds, decoding, collating) is real CPU work."""

    def __init__(self, loader, make_iterator):
        with unset_fake_temporarily():
            self._iterator = make_iterator(loader)

    def __iter__(self):
        return self

    def __next__(self):
        with unset_fake_temporarily():
            return next(self._iterator)

    def __len__(self):
        return len(self._iterator)


@contextlib.contextmanager
def trainer_on_fake_device(device: str = "cuda"):
    """Within: a Trainer places its model on a fake `device` (the fake mode is entered at that moment and stays on
    until the block ends), as it would place it on a GPU; DataLoaders load real CPU tensors, as on a GPU host. Yields a function `on_device(trainer)` that, once the
    run is set up, points `trainer.args.device` at the fake device, so `_prepare_inputs` moves batches there."""
    mode = FakeTensorMode(allow_non_fake_inputs=True)  # real CPU tensors (data) are taken in, as a GPU run takes them
    entered = []

    def move(trainer, model, _device):
        mode.__enter__()
        entered.append(True)
        move_to_fake_device(model, device)

    def on_device(trainer):
        trainer.args.__dict__["_setup_devices"] = torch.device(device)  # TrainingArguments.device's cached value

    make_iterator = DataLoader.__iter__
    try:
        with (
            mock.patch.object(Trainer, "_move_model_to_device", move),
            mock.patch.object(DataLoader, "__iter__", lambda loader: _RealIterator(loader, make_iterator)),
        ):
            yield on_device
    finally:
        if entered:
            mode.__exit__(None, None, None)
