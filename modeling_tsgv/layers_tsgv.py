"""Generic layers the method in `modeling_tsgv.py` uses: the sentence standardiser, the head's fixed time-step
positions and MLPs, stochastic depth for the backbone's blocks, and where a spatial attention looked. Nothing here
knows about videos or queries."""

import math

import torch
from torch import nn
from torchvision.ops import MLP


class SentenceStandardizer(nn.Module):
    """Standardises pooled sentence embeddings per dimension with running statistics: (s - mean) / std.

    Frozen text encoders give anisotropic embeddings (a large component shared by every sentence, dimensions of very
    different scales), which makes the projections that read the sentence learn slowly. Statistics are running
    averages over training batches (the first updates are plain cumulative means, so they settle within a few steps);
    the same statistics are used in training and evaluation, so a batch of one query behaves like any other. Starts as
    the identity (mean 0, variance 1).
    """

    def __init__(self, dim: int, momentum: float = 0.01, eps: float = 1e-5):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_var", torch.ones(dim))
        self.register_buffer("num_batches_tracked", torch.zeros((), dtype=torch.long))

    def forward(self, sentence: torch.Tensor) -> torch.Tensor:
        """sentence (B_q, D_text) -> (B_q, D_text); updates the statistics in training mode."""
        if self.training and sentence.shape[0] > 1:
            with torch.no_grad():
                batch = sentence.detach().float()
                # a tensor, not a float: reading the count back would wait for the device
                rate = (1.0 / (self.num_batches_tracked + 1).float()).clamp(min=self.momentum)
                # DeepSpeed casts buffers to the training dtype (bf16): update in the buffers' own dtype
                self.running_mean.lerp_(batch.mean(0).to(self.running_mean.dtype), rate)
                self.running_var.lerp_(batch.var(0).to(self.running_var.dtype), rate)
                self.num_batches_tracked += 1
        mean, var = self.running_mean.to(sentence.dtype), self.running_var.to(sentence.dtype)
        return (sentence - mean) * torch.rsqrt(var + self.eps)


def sinusoidal_positions(length: int, dim: int, device, dtype) -> torch.Tensor:
    """Fixed sin/cos embedding of time-step indices: (length, dim). Fixed, so any number of steps works."""
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq[: dim // 2])
    return table.to(dtype)


def mlp(in_features: int, hidden_features: int, out_features: int) -> MLP:
    """Linear -> GELU -> Linear (`torchvision.ops.MLP`: the linear layers are `0` and `3`, in memory and in files)."""
    return MLP(in_features, [hidden_features, out_features], activation_layer=nn.GELU)


def drop_path(block: nn.Module, hidden: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """`block(hidden)` with stochastic depth (per clip, the whole block's residual update dropped with probability
    `rate` and the kept ones scaled by 1 / (1 - rate)) in training when the block trains; otherwise `block(hidden)`.
    A frozen block never drops: its output is a cached, query-independent state. hidden (B*C, N, D)."""
    out = block(hidden)
    if not training or rate == 0.0 or not any(p.requires_grad for p in block.parameters()):
        return out
    keep = (torch.rand(hidden.shape[0], 1, 1, device=hidden.device) >= rate).to(hidden.dtype) / (1.0 - rate)
    return hidden + (out - hidden) * keep


def attention_location(weights: torch.Tensor, logits: torch.Tensor, grid: int) -> torch.Tensor:
    """Where softmax attention over a grid x grid patch grid (row-major, as a patch embedding orders tokens) looked:
    weights / logits (..., grid * grid) -> (..., 4): the weights' mean (x, y) patch-centre position in [-1, 1], their
    spread (mean squared distance from it) and how strongly the best tokens matched (logsumexp of the logits above
    the uniform level: 0 when nothing stands out)."""
    if weights.shape[-1] != grid**2:
        raise ValueError(f"{weights.shape[-1]} spatial tokens per step, expected {grid}x{grid}")
    # built here, not kept as a buffer: from_pretrained leaves non-persistent buffers uninitialised
    axis = torch.linspace(-1, 1, grid, device=weights.device, dtype=weights.dtype)
    positions = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), -1).reshape(-1, 2)  # (hw, 2)
    where = weights @ positions  # (..., 2)
    spread = (weights * (positions - where[..., None, :]).pow(2).sum(-1)).sum(-1)
    peak = logits.logsumexp(-1) - math.log(weights.shape[-1])
    return torch.cat([where, spread[..., None], peak[..., None]], -1)


__all__ = ["SentenceStandardizer", "sinusoidal_positions", "mlp", "drop_path", "attention_location"]
