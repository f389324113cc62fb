"""Loading refuses what it should, in one line naming the path and the field: pickled weights, folders that are not
tsgv models, configs with unknown or invalid fields, processors that do not fit the model."""

import json
import shutil

import pytest
import torch
from transformers import AutoConfig, pipeline

from modeling_tsgv import TSGVConfig, TSGVForGrounding, TSGVProcessor
from modeling_tsgv.configuration_tsgv import ModelFolderError, check_model_folder
from modeling_tsgv.pipeline_tsgv import TASK


def _copy(model_dir, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(model_dir, folder)
    return folder


def _edit_config(folder, **changes):
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


def _one_line(error) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_a_good_folder_loads(model_dir):
    check_model_folder(model_dir)
    model = TSGVForGrounding.from_pretrained(model_dir)
    assert isinstance(model, TSGVForGrounding)


def test_pickled_weights_are_never_loaded(model_dir, tmp_path):
    folder = _copy(model_dir, tmp_path)
    model = TSGVForGrounding.from_pretrained(folder)
    (folder / "model.safetensors").unlink()
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    with pytest.raises(ModelFolderError) as error:
        TSGVForGrounding.from_pretrained(folder)
    message = _one_line(error)
    assert str(folder) in message and "pytorch_model.bin" in message and "safetensors" in message
    with pytest.raises(ValueError, match="has pytorch_model.bin but no model.safetensors"):
        pipeline(TASK, model=str(folder), device="cpu")  # transformers wraps the loading error with its own lines


def test_folders_that_are_not_tsgv_models(model_dir, tmp_path, minilm_path):
    with pytest.raises(ModelFolderError, match=r"not a tsgv model \(config.json has model_type 'bert'\)"):
        TSGVForGrounding.from_pretrained(minilm_path)
    with pytest.raises(ModelFolderError, match="no config.json"):
        TSGVForGrounding.from_pretrained(tmp_path)
    folder = _copy(model_dir, tmp_path)
    (folder / "config.json").write_text('{"model_type": "tsgv", ')
    with pytest.raises(ModelFolderError, match="config.json: unreadable config"):
        TSGVForGrounding.from_pretrained(folder)
    (folder / "config.json").write_text("[1, 2]")
    with pytest.raises(ModelFolderError, match="not a config"):
        check_model_folder(folder)


def test_unknown_config_keys_are_kept_and_misspelt_fields_warned(model_dir, tmp_path):
    """A saved folder loads whatever extra keys transformers or another library wrote into config.json (they are
    kept, as PreTrainedConfig keeps them); a key that looks like a typo of one of our fields is warned about."""
    from transformers.testing_utils import CaptureLogger

    from modeling_tsgv.configuration_tsgv import logger as config_logger

    folder = _copy(model_dir, tmp_path)
    ecosystem = {"tie_word_embeddings": False, "gradient_checkpointing": True, "peft_task_type": "FEATURE_EXTRACTION"}
    _edit_config(folder, scada_layerz=[2, 3], **ecosystem)
    with CaptureLogger(config_logger) as captured:
        model = TSGVForGrounding.from_pretrained(folder)
    assert "'scada_layerz'" in captured.out and "did you mean 'scada_layers'" in captured.out
    assert all(key not in captured.out for key in ecosystem)
    assert model.config.scada_layerz == [2, 3] and model.config.peft_task_type == "FEATURE_EXTRACTION"
    assert AutoConfig.from_pretrained(folder).scada_layers == model.config.scada_layers  # the Auto path loads it too
    # what save_pretrained writes is all known: nothing to warn about
    with CaptureLogger(config_logger) as captured:
        TSGVConfig.from_pretrained(model_dir)
    assert captured.out == ""


@pytest.mark.parametrize(
    "change,field",
    [
        ({"backbone_tuning": "lora"}, "backbone_tuning"),
        ({"num_frames": 6}, "num_frames"),
        ({"nms_threshold": 2.0}, "nms_threshold"),
        ({"scada_layers": [9]}, "scada_layers"),
        ({"head_temporal_kernel": 2}, "head_temporal_kernel"),
    ],
)
def test_invalid_config_values_are_refused_naming_the_field(model_dir, tmp_path, change, field):
    folder = _copy(model_dir, tmp_path)
    _edit_config(folder, **change)
    with pytest.raises(ModelFolderError) as error:
        TSGVForGrounding.from_pretrained(folder)
    message = _one_line(error)
    assert str(folder / "config.json") in message and field in message


def test_a_processor_that_does_not_fit_the_model_is_refused(model_dir, tmp_path, minilm_path):
    folder = _copy(model_dir, tmp_path)
    TSGVProcessor.from_text_encoder(minilm_path, image_size=64).save_pretrained(folder)  # model expects 32
    with pytest.raises(ModelFolderError) as error:
        pipeline(TASK, model=str(folder), device="cpu")
    message = _one_line(error)
    assert str(folder) in message and "crop_size" in message and "image_size 32" in message

    small_vocab = _copy(model_dir, tmp_path / "b")
    _edit_config(small_vocab, text_config={**json.loads((model_dir / "config.json").read_text())["text_config"]})
    config = TSGVConfig.from_pretrained(small_vocab)
    config.text_config.vocab_size = 100  # a text encoder with a 100-token vocabulary, MiniLM's 30,522-id tokenizer
    TSGVForGrounding(config).save_pretrained(small_vocab)
    with pytest.raises(
        ModelFolderError, match=r"tokenizer has 30,522 token ids but the text encoder's vocab_size is 100"
    ):
        pipeline(TASK, model=str(small_vocab), device="cpu")


def test_head_mlps_are_torchvision_mlps_saved_under_their_own_names(tmp_path):
    """The head's MLPs are `torchvision.ops.MLP` (layers 0 / 3); files hold the module's own keys, no renaming."""
    from conftest import tiny_batch, tiny_config
    from safetensors.torch import load_file
    from torchvision.ops import MLP

    torch.manual_seed(0)
    model = TSGVForGrounding(tiny_config()).eval()
    assert isinstance(model.head.score, MLP)
    model.save_pretrained(tmp_path)
    assert set(load_file(tmp_path / "model.safetensors")) >= {"head.score.3.bias", "head.offsets.0.weight"}
    reloaded = TSGVForGrounding.from_pretrained(tmp_path).eval()
    batch = tiny_batch()
    with torch.no_grad():
        assert torch.equal(model(**batch).step_logits, reloaded(**batch).step_logits)


def _trainer_with_a_saved_checkpoint(tmp_path):
    """A Trainer on a tiny tsgv model and a checkpoint folder (`save_pretrained`) whose VideoMAE biases differ."""
    from conftest import tiny_config
    from transformers import Trainer, TrainingArguments

    torch.manual_seed(0)
    model = TSGVForGrounding(tiny_config())
    checkpoint = tmp_path / "checkpoint-1"
    with torch.no_grad():
        model.video_model.encoder.layer[0].attention.attention.query.bias.fill_(0.25)
    model.save_pretrained(checkpoint)
    with torch.no_grad():
        model.video_model.encoder.layer[0].attention.attention.query.bias.zero_()
    args = TrainingArguments(str(tmp_path / "out"), use_cpu=True, report_to="none")
    return Trainer, model, checkpoint, args


def test_transformers_own_checkpoint_reload_still_skips_videomaes_renames(tmp_path):
    """Pins the transformers behaviour `SafeCheckpointsMixin` works around (huggingface/transformers#43701): the
    Trainer's `_load_from_checkpoint` loads a checkpoint's keys as saved (`...attention.attention.q_bias`), so the
    model's `query.bias` is left as it was. When this test fails, transformers renames by itself: drop the overrides."""
    from safetensors.torch import load_file

    trainer_class, model, checkpoint, args = _trainer_with_a_saved_checkpoint(tmp_path)
    assert any(key.endswith("attention.attention.q_bias") for key in load_file(checkpoint / "model.safetensors"))
    trainer_class(model=model, args=args)._load_from_checkpoint(str(checkpoint))
    assert torch.all(model.video_model.encoder.layer[0].attention.attention.query.bias == 0)  # not restored


def test_our_checkpoint_reload_restores_every_weight_strictly(tmp_path):
    from transformers import Trainer

    from modeling_tsgv.trainer import SafeCheckpointsMixin

    _, model, checkpoint, args = _trainer_with_a_saved_checkpoint(tmp_path)

    class SafeTrainer(SafeCheckpointsMixin, Trainer):
        pass

    SafeTrainer(model=model, args=args)._load_from_checkpoint(str(checkpoint))
    assert torch.all(model.video_model.encoder.layer[0].attention.attention.query.bias == 0.25)
    reference = TSGVForGrounding.from_pretrained(checkpoint)
    for name, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
