"""The fine-tuning recipes of VideoMAE / BEiT for the baselines: a learning-rate multiplier for the pretrained parts,
layer-wise learning-rate decay, and drop path (stochastic depth) on the backbone blocks that train."""

import pytest
import torch
from conftest import tiny_batch, tiny_config
from transformers import TrainingArguments

from modeling_tsgv import TSGVConfig, TSGVForGrounding
from modeling_tsgv.modeling_tsgv import drop_path
from modeling_tsgv.trainer import TSGVTrainer, backbone_lr_scales


class ScaledArguments(TrainingArguments):
    """TrainingArguments with run_grounding.py's two learning-rate flags."""

    def __init__(self, *args, backbone_lr_multiplier=1.0, layer_decay=1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.backbone_lr_multiplier, self.layer_decay = backbone_lr_multiplier, layer_decay


def test_scales_follow_beits_layer_ids():
    model = TSGVForGrounding(tiny_config(backbone_tuning="full", train_text_encoder=True))  # 4 blocks
    scales = backbone_lr_scales(model, multiplier=0.1, layer_decay=0.5)
    prefix = "backbone.video_model."
    assert scales[prefix + "embeddings.patch_embeddings.projection.weight"] == pytest.approx(0.1 * 0.5**5)
    for block in range(4):
        assert scales[f"{prefix}encoder.layer.{block}.output.dense.weight"] == pytest.approx(0.1 * 0.5 ** (4 - block))
    assert scales["text_model.encoder.layer.0.output.dense.weight"] == pytest.approx(0.1)
    assert scales["head.score.0.weight"] == 1.0 and scales["backbone.spatial_pool.key.weight"] == 1.0
    frozen = TSGVForGrounding(tiny_config())  # scada: the blocks do not train, the adapters keep the full rate
    assert all(
        not name.startswith(prefix + "encoder.layer.") or ".adapter" in name for name in backbone_lr_scales(frozen)
    )
    assert set(backbone_lr_scales(frozen).values()) == {1.0}


def test_the_optimiser_gets_one_group_per_scale_and_decay(tmp_path):
    model = TSGVForGrounding(tiny_config(backbone_tuning="full"))
    args = ScaledArguments(
        output_dir=str(tmp_path), use_cpu=True, report_to="none", learning_rate=1e-3, weight_decay=0.05,
        backbone_lr_multiplier=0.1, layer_decay=0.5,
    )  # fmt: skip
    optimizer = TSGVTrainer(model=model, args=args).create_optimizer()
    by_param = {
        id(p): (group["lr"], group["weight_decay"]) for group in optimizer.param_groups for p in group["params"]
    }
    named = dict(model.named_parameters())
    assert by_param[id(named["backbone.video_model.encoder.layer.3.output.dense.weight"])] == pytest.approx(
        (5e-5, 0.05)
    )
    assert by_param[id(named["backbone.video_model.encoder.layer.0.output.dense.bias"])] == pytest.approx(
        (6.25e-6, 0.0)
    )
    assert by_param[id(named["head.score.0.weight"])] == pytest.approx((1e-3, 0.05))
    assert len(by_param) == sum(p.requires_grad for p in model.parameters())  # every trainable parameter, once
    plain = TSGVTrainer(model=model, args=ScaledArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none"))
    assert {group["lr"] for group in plain.create_optimizer().param_groups} == {plain.args.learning_rate}


def test_drop_path_skips_whole_clips_of_trainable_blocks_in_training_only():
    torch.manual_seed(0)
    block = torch.nn.Linear(4, 4)
    hidden = torch.randn(2000, 3, 4)
    out = block(hidden)
    assert torch.equal(drop_path(block, hidden, 0.3, training=False), out)
    dropped = drop_path(block, hidden, 0.3, training=True)
    skipped = torch.isclose(dropped, hidden).all(-1).all(-1)  # a dropped clip passes through unchanged
    assert 0.25 < skipped.float().mean() < 0.35
    kept = ~skipped
    assert torch.allclose(dropped[kept], hidden[kept] + (out[kept] - hidden[kept]) / 0.7, atol=1e-5)
    block.requires_grad_(False)  # a frozen block: its output is a cached state, never dropped
    assert torch.equal(drop_path(block, hidden, 0.3, training=True), out)


def test_drop_path_rate_ramps_over_the_blocks_and_is_checked():
    config = tiny_config(backbone_tuning="full", drop_path_rate=0.3)
    model = TSGVForGrounding(config).train()
    assert model.backbone.drop_path_rates == pytest.approx([0.0, 0.1, 0.2, 0.3])
    batch = tiny_batch(config=config)
    assert torch.isfinite(model(**batch).loss)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(**batch).step_logits, model(**batch).step_logits)  # no randomness in evaluation
    with pytest.raises(ValueError, match="drop_path_rate"):
        TSGVConfig(drop_path_rate=1.0)


def test_a_run_without_learning_rate_flags_gets_its_modes_recipe_and_given_flags_win():
    from modeling_tsgv.trainer import LR_RECIPES, lr_recipe

    assert lr_recipe("full") == LR_RECIPES["full"] and lr_recipe("partial") == LR_RECIPES["partial"]
    assert lr_recipe("scada") == (1.0, 1.0) and lr_recipe("frozen") == (1.0, 1.0)
    assert lr_recipe("full", multiplier=1.0) == (1.0, LR_RECIPES["full"][1])  # a given value is kept
    assert lr_recipe("partial", 0.5, 0.75) == (0.5, 0.75)


def test_run_grounding_resolves_the_recipe_from_the_models_mode(tmp_path):
    import sys

    from conftest import REPO_ROOT, TINY_RUN

    sys.path.insert(0, str(REPO_ROOT))
    import run_grounding
    from modeling_tsgv.trainer import LR_RECIPES

    world, out = tmp_path / "world", tmp_path / "out"
    base = [*TINY_RUN, "--synthetic_dir", str(world), "--output_dir", str(out), "--max_steps", "1"]
    _, _, parsed = run_grounding.parse_arguments([*base, "--backbone_tuning", "full"])
    assert parsed.backbone_lr_multiplier is None and parsed.layer_decay is None  # unset until the model is known
    run = run_grounding.setup([*base, "--backbone_tuning", "full"])
    assert (run.training_args.backbone_lr_multiplier, run.training_args.layer_decay) == LR_RECIPES["full"]
    run = run_grounding.setup([*base, "--backbone_tuning", "full", "--backbone_lr_multiplier", "0.5"])
    assert (run.training_args.backbone_lr_multiplier, run.training_args.layer_decay) == (0.5, LR_RECIPES["full"][1])
