"""TSGVConfig: defaults, nested sub-configs, round trip, and errors that name the field."""

import pickle

import pytest
from conftest import tiny_config
from transformers import AutoConfig, BertConfig, DistilBertConfig, VideoMAEConfig

from modeling_tsgv import TSGVConfig


def test_defaults_are_vit_b_with_scada_on_the_top_half():
    config = TSGVConfig()
    assert isinstance(config.backbone_config, VideoMAEConfig) and config.backbone_config.hidden_size == 768
    assert isinstance(config.text_config, BertConfig) and config.text_config.hidden_size == 384  # MiniLM's shape
    assert config.scada_layers == list(range(6, 12)) and config.backbone_tuning == "scada"
    assert config.clip_frames == 16 and config.image_size == 224
    assert config.hidden_size == 768  # the video width, for DeepSpeed's "auto" buckets


def test_flat_fields_write_through_to_the_backbone_and_round_trip(tmp_path):
    config = TSGVConfig(
        text_config={"model_type": "distilbert", "dim": 32, "n_layers": 1, "n_heads": 2, "hidden_dim": 64},
        clip_frames=8,
        image_size=112,
        num_frames=64,
        scada_layers=[11, 3],
    )
    assert config.backbone_config.num_frames == 8 and config.backbone_config.image_size == 112
    assert config.scada_layers == [3, 11]
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, TSGVConfig) and isinstance(loaded.text_config, DistilBertConfig)
    ignore = {"_name_or_path"}
    assert {k: v for k, v in loaded.to_dict().items() if k not in ignore} == {
        k: v for k, v in config.to_dict().items() if k not in ignore
    }


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"backbone_tuning": "lora"}, "backbone_tuning must be one of"),
        ({"scada_layers": [4]}, r"scada_layers \[4\] out of range: the backbone has 4 blocks"),
        ({"num_frames": 6}, "num_frames .6. must be a positive multiple of clip_frames .4."),
        ({"scada_temporal_kernel": 2}, "scada_temporal_kernel must be odd"),
        ({"nms_threshold": 0.0}, "nms_threshold must be in"),
        ({"head_hidden_size": 30, "head_num_heads": 4}, "divisible by head_num_heads"),
        ({"spatial_pooling": "max"}, "spatial_pooling must be 'mean' or 'sentence'"),
    ],
)
def test_invalid_settings_name_the_field(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**overrides)


@pytest.mark.parametrize(
    "overrides, fields",
    [
        ({"num_frames": 30}, ("num_frames", "clip_frames")),  # the rule is num_frames', clip_frames takes part
        ({"head_dropout": 1.5}, ("head_dropout",)),
        ({"scada_layers": [99]}, ("scada_layers",)),
        ({"head_hidden_size": 30, "head_num_heads": 4}, ("head_hidden_size", "head_num_heads")),
        ({"span_calibration": [-1.0, 0.0]}, ("span_calibration",)),
    ],
)
def test_a_bad_value_names_its_fields_for_scripts_to_map_to_flags(overrides, fields):
    from modeling_tsgv.configuration_tsgv import ConfigFieldError

    with pytest.raises(ConfigFieldError) as error:
        tiny_config(**overrides)
    assert error.value.fields == fields and isinstance(error.value, ValueError)
    copied = pickle.loads(pickle.dumps(error.value))
    assert copied.fields == fields and str(copied) == str(error.value)
