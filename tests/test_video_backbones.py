"""Every kind of VideoMAE checkpoint loads as the backbone it is, each tested on a random-init tiny model of the same
layout saved to disk: pre-training (masked reconstruction), finetuned classification (Kinetics / SSv2: mean pooling
with `fc_norm`), a plain `VideoMAEModel`; a checkpoint that cannot be used is refused in one line."""

import json

import pytest
import torch
from conftest import tiny_config
from transformers import VideoMAEConfig, VideoMAEForPreTraining, VideoMAEForVideoClassification, VideoMAEModel

from modeling_tsgv import TSGVForGrounding
from modeling_tsgv.video_backbones import BackboneCheckpointError, load_video_backbone


def _config(**overrides) -> VideoMAEConfig:
    sizes = {"image_size": 32, "patch_size": 16, "num_frames": 4, "tubelet_size": 2, "hidden_size": 32}
    layers = {"num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64}
    decoder = {"decoder_hidden_size": 16, "decoder_num_hidden_layers": 1, "decoder_num_attention_heads": 2}
    return VideoMAEConfig(**sizes, **layers, **decoder, **overrides)


def _randomise_norms(model):
    """LayerNorms start at (1, 0): give them values, so that a norm that is dropped or re-initialised shows."""
    torch.manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.LayerNorm):
            torch.nn.init.normal_(module.weight, 1.0, 0.2)
            torch.nn.init.normal_(module.bias, 0.0, 0.2)
    return model


def _same_weights(loaded, expected: dict, prefix: str = "videomae."):
    """Every encoder weight of `loaded` equals the checkpoint's (`expected`, keys with `prefix`)."""
    for name, value in loaded.state_dict().items():
        torch.testing.assert_close(value, expected[prefix + name], msg=name)


@pytest.mark.parametrize("mean_pooling", [False, True])
def test_a_pretraining_checkpoint_gives_its_whole_encoder(tmp_path, mean_pooling):
    source = _randomise_norms(VideoMAEForPreTraining(_config(use_mean_pooling=mean_pooling))).eval()
    source.save_pretrained(tmp_path)
    video = load_video_backbone(tmp_path)
    assert isinstance(video, VideoMAEModel)
    assert (video.layernorm is None) == mean_pooling  # the Hub's pre-training checkpoints: a final norm
    _same_weights(video, source.state_dict())  # the decoder is left out, nothing else


def test_a_finetuned_classification_checkpoint_keeps_its_fc_norm_as_the_final_norm(tmp_path, minilm_path):
    source = _randomise_norms(VideoMAEForVideoClassification(_config(use_mean_pooling=True, num_labels=3))).eval()
    source.save_pretrained(tmp_path / "kinetics")
    video = load_video_backbone(tmp_path / "kinetics")
    assert video.layernorm is not None and not video.config.use_mean_pooling
    torch.testing.assert_close(video.layernorm.weight, source.fc_norm.weight)
    torch.testing.assert_close(video.layernorm.bias, source.fc_norm.bias)
    _same_weights(video, {**source.state_dict(), "videomae.layernorm.weight": source.fc_norm.weight,
                          "videomae.layernorm.bias": source.fc_norm.bias})  # fmt: skip
    pixels = torch.randn(1, 4, 3, 32, 32)
    with torch.no_grad():
        tokens = video(pixels).last_hidden_state
        unnormed = source.videomae(pixels).last_hidden_state  # what AutoModel alone gives: no final norm
        # the finetuned read-out, fc_norm(mean of tokens), is what the norm was trained for; per token it gives
        # tokens on the scale that norm sets
        torch.testing.assert_close(tokens, torch.nn.functional.layer_norm(
            unnormed, (32,), source.fc_norm.weight, source.fc_norm.bias, video.config.layer_norm_eps))  # fmt: skip
    # a grounding model built on it keeps the norm through save and reload
    model = TSGVForGrounding.from_backbones(tmp_path / "kinetics", minilm_path, num_frames=8, scada_layers=[1])
    torch.testing.assert_close(model.video_model.layernorm.weight, source.fc_norm.weight)
    model.save_pretrained(tmp_path / "tsgv")
    reloaded = TSGVForGrounding.from_pretrained(tmp_path / "tsgv")
    torch.testing.assert_close(reloaded.video_model.layernorm.weight, source.fc_norm.weight)
    # a classification model object handed over keeps it too
    assert TSGVForGrounding.from_backbones(source, minilm_path, num_frames=8).video_model.layernorm is not None


def test_a_plain_videomae_model_and_a_model_object_load_as_they_are(tmp_path):
    source = _randomise_norms(VideoMAEModel(_config(use_mean_pooling=False))).eval()
    source.save_pretrained(tmp_path)
    _same_weights(load_video_backbone(tmp_path), source.state_dict(), prefix="")
    resized = load_video_backbone(tmp_path, num_frames=8)  # sinusoidal positions: another clip length is fine
    assert resized.config.num_frames == 8


def test_checkpoints_that_cannot_be_used_are_refused_in_one_line(tmp_path):
    # VideoMAE V2 (remote code): the command that converts it
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "config.json").write_text(json.dumps({"model_type": "VideoMAEv2_Base", "model_config": {"embed_dim": 32}}))
    with pytest.raises(BackboneCheckpointError, match="convert_videomae_v2") as error:
        load_video_backbone(v2)
    assert str(v2) in str(error.value) and "\n" not in str(error.value)
    # another model type
    other = tmp_path / "bert"
    tiny_config().text_config.save_pretrained(other)
    with pytest.raises(BackboneCheckpointError, match="must be a VideoMAE model, got model_type='bert'"):
        load_video_backbone(other)
    # a VideoMAE config over weights of another layout: refused, not silently random
    wrong = tmp_path / "wrong"
    VideoMAEModel(_config()).save_pretrained(wrong)
    from safetensors.torch import save_file

    save_file({"blocks.0.attn.qkv.weight": torch.zeros(96, 32)}, str(wrong / "model.safetensors"))
    with pytest.raises(BackboneCheckpointError, match=r"lacks \d+ of the VideoMAE encoder's weights") as error:
        load_video_backbone(wrong)
    assert str(wrong) in str(error.value) and "\n" not in str(error.value)
