"""What a GPU run's set-up must not change: targets and seconds keep float32 under DeepSpeed's dtype, and the
adapters get their gradients under every activation-checkpointing setting."""

from types import SimpleNamespace
from unittest import mock

import pytest
import torch
from conftest import tiny_batch, tiny_config
from transformers import TrainingArguments

from modeling_tsgv import TSGVForGrounding
from modeling_tsgv.trainer import TSGVTrainer


def test_under_deepspeed_labels_and_durations_stay_float32_while_frames_take_the_engine_dtype(tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none", remove_unused_columns=False)
    trainer = TSGVTrainer(model=TSGVForGrounding(tiny_config()), args=args)
    plugin = SimpleNamespace(hf_ds_config=SimpleNamespace(dtype=lambda: torch.bfloat16))
    state = type(trainer.accelerator.state)
    batch = {
        **tiny_batch(num_videos=1, queries_per_video=1),
        "durations_s": torch.tensor([183.4], dtype=torch.float64),
    }
    batch["labels"] = torch.tensor([[0.30017, 0.90021]])
    trainer.is_deepspeed_enabled = True  # as the Trainer sets it with --deepspeed
    with mock.patch.object(state, "deepspeed_plugin", new_callable=mock.PropertyMock, return_value=plugin):
        moved = trainer._prepare_inputs(dict(batch))
    assert moved["pixel_values"].dtype == torch.bfloat16  # the Trainer's cast for the engine, as before
    assert moved["labels"].dtype == torch.float32 and torch.equal(moved["labels"], batch["labels"])
    assert moved["durations_s"].dtype == torch.float64 and moved["durations_s"].item() == 183.4
    # what bf16 would have made of them: 183.4 s -> 183.0 s, a label 0.7 s off on this video
    assert batch["durations_s"].to(torch.bfloat16).item() == 183.0


def _adapter_and_block_grads(model, batch, checkpointing: dict | None) -> dict:
    model.zero_grad(set_to_none=True)
    if checkpointing is not None:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=checkpointing)
    else:
        model.activation_checkpointing_disable()
    model.train()
    model(**batch).loss.backward()
    wanted = ("adapters.", "encoder.layer.")  # what trains inside the checkpointed block loop
    return {n: p.grad for n, p in model.named_parameters() if p.requires_grad and any(w in n for w in wanted)}


@pytest.mark.parametrize("tuning", ["scada", "partial"])
@pytest.mark.parametrize("reentrant", [True, False])
def test_activation_checkpointing_keeps_the_adapters_and_trained_blocks_training(tuning, reentrant):
    """Frozen text encoder and frozen lower blocks: no input of the first trained block needs a gradient. Under
    both checkpoint variants the adapters (scada) and trained blocks (partial) get the gradients they get without
    checkpointing."""
    torch.manual_seed(0)
    model = TSGVForGrounding(tiny_config(backbone_tuning=tuning, sentence_standardization=False))
    for adapter in model.adapters.values():  # a fresh adapter's up-projection is zero: give it a value
        torch.nn.init.normal_(adapter.up.weight, std=0.1)
    batch = tiny_batch()
    plain = _adapter_and_block_grads(model, batch, None)
    checkpointed = _adapter_and_block_grads(model, batch, {"use_reentrant": reentrant})
    assert plain and set(plain) == set(checkpointed)
    for name, grad in plain.items():
        assert grad is not None and grad.abs().sum() > 0, name
        assert checkpointed[name] is not None, f"{name}: no gradient under checkpointing"
        torch.testing.assert_close(checkpointed[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_the_sentence_pooling_keeps_no_per_query_copy_of_the_tokens_for_its_backward():
    """What the pooling holds from its forward to the step's backward (counted on fake tensors): under a copy of the
    tokens per query, where the pooling before #27 held keys of every token (a full (B_q, L_t, hw, D) copy) and, for
    a frozen backbone's fan-out, keys and tokens gathered per query."""
    import sys

    from conftest import REPO_ROOT

    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    from pooling_memory import PreviousPool, memory_gib

    from modeling_tsgv.modeling_tsgv import SentenceSpatialPool

    width, text, steps, patches, queries, videos = 256, 24, 8, 16, 24, 3  # D >> B_v, as in real backbones
    config = tiny_config(spatial_pool_location=False, head_hidden_size=32)
    config.backbone_config.hidden_size, config.text_config.hidden_size = width, text
    copy_gib = queries * steps * patches * width * 4 / 2**30  # one float32 copy of the per-query tokens
    for fan_out, batch in ((False, queries), (True, videos)):
        shape = (batch, steps, patches, width)
        after = memory_gib(lambda: SentenceSpatialPool(config), shape, queries, text, fan_out, torch.float32)
        before = memory_gib(lambda: PreviousPool(width, text), shape, queries, text, fan_out, torch.float32)
        assert before[0] >= copy_gib  # the old pooling: at least one per-query copy held (this test can fail)
        assert after[0] < 0.5 * copy_gib, (fan_out, after, copy_gib)
