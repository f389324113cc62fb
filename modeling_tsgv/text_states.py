"""A frozen text encoder's token states, computed once per distinct sentence and served to the batches.

While the text encoder does not train, a sentence always gets the same states, and a training run asks for the same
few thousand sentences every epoch. `SentenceStates.encode` runs the encoder once per distinct sentence before
training, on the encoder's own device (the accelerator, once the Trainer has placed the model), and keeps the states
in one CPU tensor. The collators (`data.VideoCentricCollator(text_states=...)`) look each batch's sentences up by
their token ids, on the CPU in the DataLoader workers, and put `text_states` (B_q, S, D_text) into the batch, which
then travels to the accelerator with the frames. The model reads them instead of running the encoder
(`TSGVForGrounding.forward(text_states=...)`): a training step holds no host-side lookup, no wait for the device and
no tensor that stayed on the CPU, whatever the order in which the run was set up.

Each sentence is encoded unpadded (padding changes the float reduction order), in batches of sentences of equal
length, sorted: the table depends only on the set of sentences, never on the order the data came in, so a resumed
run gets the bits an uninterrupted one got. The last bits of a sentence's states can depend on which other sentences
share its batch (the matrix kernels block by batch size); the states equal the encoder's own to float32 rounding
(tests/test_modeling_tsgv.py).
"""

from collections.abc import Iterable, Sequence

import torch
from torch import nn


class SentenceStates:
    """Token states of a fixed set of sentences, keyed by their token ids (with the tokenizer's special tokens, as
    the training tokenization gives them).

    Attributes:
        states: (total_tokens, D_text) every sentence's states, one after another, on the CPU.
        index: token ids (tuple) -> (first row in `states`, number of tokens).
    """

    def __init__(self, states: torch.Tensor, index: dict[tuple[int, ...], tuple[int, int]]):
        self.states, self.index = states, index

    def __len__(self) -> int:
        return len(self.index)

    def __contains__(self, token_ids: Sequence[int]) -> bool:
        return tuple(token_ids) in self.index

    def nbytes(self) -> int:
        """Bytes of the states table."""
        return self.states.numel() * self.states.element_size()

    @classmethod
    @torch.no_grad()
    def encode(
        cls, text_model: nn.Module, token_ids: Iterable[Sequence[int]], batch_size: int = 64
    ) -> "SentenceStates":
        """Encode every distinct sentence of `token_ids` (id lists; repeats and empty lists are skipped) with
        `text_model` on its own device, in eval mode, in batches of equal length (nothing padded), and keep the
        states on the CPU: one copy back per batch. Sorted first, so the table does not depend on the order of
        `token_ids`."""
        device = next(text_model.parameters()).device
        unique = sorted({tuple(int(t) for t in ids) for ids in token_ids if len(ids)})
        by_length: dict[int, list[tuple[int, ...]]] = {}
        for ids in unique:
            by_length.setdefault(len(ids), []).append(ids)
        was_training = text_model.training
        text_model.eval()
        chunks, index, row = [], {}, 0
        try:
            for length in sorted(by_length):
                group = by_length[length]
                for first in range(0, len(group), batch_size):
                    part = group[first : first + batch_size]
                    ids = torch.tensor(part, dtype=torch.long, device=device)  # (n, length)
                    states = text_model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
                    chunks.append(states.reshape(-1, states.shape[-1]).to("cpu"))  # (n * length, D_text)
                    for sentence in part:
                        index[sentence] = (row, length)
                        row += length
        finally:
            text_model.train(was_training)
        hidden = getattr(getattr(text_model, "config", None), "hidden_size", 0)
        states = torch.cat(chunks) if chunks else torch.zeros(0, hidden)
        return cls(states, index)

    def lookup(self, token_ids: Sequence[Sequence[int]], length: int) -> torch.Tensor | None:
        """States of right-padded sentences: (B_q, length, D_text), zeros after each sentence's last token (every
        consumer masks them); None when a sentence is not in the table (the model then runs the encoder).

        Args:
            token_ids: each sentence's ids without padding (B_q lists).
            length: S, the padded length of the batch (>= the longest sentence).
        """
        spans = [self.index.get(tuple(ids)) for ids in token_ids]
        if any(span is None for span in spans):
            return None
        out = self.states.new_zeros(len(spans), length, self.states.shape[1])  # (B_q, S, D_text)
        for row, (first, count) in enumerate(spans):
            out[row, :count] = self.states[first : first + count]
        return out


__all__ = ["SentenceStates"]
