"""transformers' own model contract, run against tsgv: `ModelTesterMixin`, `ConfigTester` and `ProcessorTesterMixin`
from the installed transformers version's source distribution (fetched by `transformers_common.py`).

Every switch set below is one that transformers' own models of this kind set, with its reason.
"""

import unittest

import pytest
import torch
from conftest import tiny_config
from transformers_common import ContractUnavailable, common_tests

from modeling_tsgv import TSGVConfig, TSGVForGrounding, TSGVProcessor

try:
    modeling_common, configuration_common, processing_common = common_tests()
except ContractUnavailable as error:  # no package index and no sdist given: say so instead of failing 100 tests
    pytest.skip(str(error), allow_module_level=True)

ModelTesterMixin = modeling_common.ModelTesterMixin
ConfigTester = configuration_common.ConfigTester
ProcessorTesterMixin = processing_common.ProcessorTesterMixin


class TSGVModelTester:
    """Tiny config and inputs in the shape transformers' testers give: one query per video (B_q == B_v), so every
    input's first dimension is the batch, as the common tests slice it. Two backbone blocks (transformers' testers use
    at most two): block 0 runs once per video, block 1 carries the SCADA adapter and runs per query. `attentions` and
    the first `hidden_states` are the backbone's, per clip: `seq_length` tokens per clip (2 time steps x 2 x 2 patches),
    `hidden_size` wide; the head's step features follow them in `hidden_states`."""

    def __init__(self, parent, batch_size: int = 2, text_length: int = 7, **config_overrides):
        self.parent = parent
        self.config_overrides = config_overrides
        self.batch_size = batch_size
        self.text_length = text_length
        self.is_training = True
        config = self.get_config()
        backbone = config.backbone_config
        self.num_hidden_layers = backbone.num_hidden_layers
        self.expected_num_hidden_layers = backbone.num_hidden_layers + 1 + config.head_layers + 1
        self.num_attention_heads = backbone.num_attention_heads
        self.hidden_size = backbone.hidden_size
        patches = (backbone.image_size // backbone.patch_size) ** 2
        self.seq_length = backbone.num_frames // backbone.tubelet_size * patches

    def get_config(self) -> TSGVConfig:
        backbone = tiny_config().backbone_config
        backbone.num_hidden_layers = 2
        return tiny_config(
            backbone_config=backbone, **self.config_overrides
        )  # SCADA (default) on the top half: block 1

    def prepare_config_and_inputs(self):
        config = self.get_config()
        vocab = config.text_config.vocab_size
        pixel_values = torch.randn(self.batch_size, config.num_frames, 3, config.image_size, config.image_size)
        input_ids = torch.randint(1, vocab, (self.batch_size, self.text_length))
        attention_mask = torch.ones_like(input_ids)
        attention_mask[0, -2:] = 0  # one padded sentence
        return config, pixel_values, input_ids, attention_mask

    def prepare_config_and_inputs_for_common(self):
        config, pixel_values, input_ids, attention_mask = self.prepare_config_and_inputs()
        return config, {"pixel_values": pixel_values, "input_ids": input_ids, "attention_mask": attention_mask}


class TSGVModelTest(ModelTesterMixin, unittest.TestCase):
    all_model_classes = (TSGVForGrounding,)
    # a composite model (VideoMAE + a text encoder + our modules), as CLIP / LLaVA: sub-configs, sub-models
    _is_composite = True
    # the sentences are an input of their own beside the main input (pixel_values), as `input_ids` of CLIP-like models
    additional_model_inputs = ["input_ids"]

    def setUp(self):
        self.model_tester = TSGVModelTester(self)
        self.config_tester = ConfigTester(self, config_class=TSGVConfig, has_text_modality=False)

    def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
        inputs = super()._prepare_for_class(inputs_dict, model_class, return_labels)
        if return_labels:  # the training tests ask for labels: one (start, end) moment per query, normalised
            batch = inputs["input_ids"].shape[0]
            inputs["labels"] = torch.tensor([[0.2, 0.6]]).repeat(batch, 1)
        return inputs

    def _prepare_config_and_inputs_for_retain_grad_hidden_states_attentions(self):
        # the check is that returned hidden states / attentions are the tensors the output was computed from; under
        # the default SCADA tuning the blocks below the first adapter are frozen by design (no gradient reaches their
        # states), so it is made with the whole backbone training
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        config.backbone_tuning = "full"
        return config, inputs

    def test_config(self):
        self.config_tester.run_common_tests()


class TSGVFullTuningModelTest(TSGVModelTest):
    """The same contract with every weight training (`backbone_tuning="full"`, the text encoder too) and the saliency
    head (highlight detection): the gradient tests then reach every parameter, and the PEFT-style check
    (`enable_input_require_grads` with activation checkpointing) has token embeddings that train."""

    def setUp(self):
        self.model_tester = TSGVModelTester(self, backbone_tuning="full", train_text_encoder=True, saliency_head=True)
        self.config_tester = ConfigTester(self, config_class=TSGVConfig, has_text_modality=False)


class TSGVProcessorTest(ProcessorTesterMixin, unittest.TestCase):
    processor_class = TSGVProcessor
    # VideoMAE's video processor names its output `pixel_values` (the model's input too), not `pixel_values_videos`
    videos_input_name = "pixel_values"

    @classmethod
    def _setup_tokenizer(cls):
        from transformers import AutoTokenizer

        from modeling_tsgv import default_text_encoder_path

        return AutoTokenizer.from_pretrained(default_text_encoder_path())  # the offline MiniLM's

    @classmethod
    def _setup_video_processor(cls):
        from transformers import VideoMAEVideoProcessor

        from modeling_tsgv.processing_tsgv import video_processor_settings

        return VideoMAEVideoProcessor(**video_processor_settings(32))
