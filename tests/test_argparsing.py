"""`GroundingArgumentParser`: the same parse as transformers' HfArgumentParser, a `--help` that reads."""

import dataclasses

import pytest
from transformers import HfArgumentParser

import run_grounding
from modeling_tsgv.argparsing import COMMON_TRAINER_FLAGS, GroundingArgumentParser

TYPES = (run_grounding.ModelArguments, run_grounding.DataArguments, run_grounding.GroundingTrainingArguments)


def help_text(capsys, flag: str) -> str:
    with pytest.raises(SystemExit) as stop:
        GroundingArgumentParser(TYPES, prog="run_grounding.py").parse_args([flag])
    assert stop.value.code == 0
    return capsys.readouterr().out


def test_it_parses_exactly_as_transformers_parser():
    argv = [
        "--backbone_tuning",
        "partial",
        "--adam_beta1",
        "0.8",
        "--no_load_best_model_at_end",
        "--layer_decay",
        "0.75",
    ]
    ours = GroundingArgumentParser(TYPES).parse_args_into_dataclasses(args=argv)
    theirs = HfArgumentParser(TYPES).parse_args_into_dataclasses(args=argv)
    assert [dataclasses.asdict(a) for a in ours] == [dataclasses.asdict(a) for a in theirs]
    assert ours[2].adam_beta1 == 0.8 and ours[2].load_best_model_at_end is False  # a hidden flag still parses


def test_help_puts_our_flags_first_with_true_defaults_and_points_to_the_trainers(capsys):
    text = help_text(capsys, "--help")
    assert "(default: None)" not in text  # a default resolved later is stated by the help text, never as None
    model, data = text.index("\nmodel ("), text.index("\ndata (")
    training, trainer = text.index("\ntraining (tsgv's)"), text.index("\ntransformers TrainingArguments:")
    assert model < data < training < trainer
    ours = text[training:trainer]
    assert "--layer_decay" in ours and "--num_train_epochs" in ours  # added, and a default tsgv changed
    assert "default: 6.0)" in ours[ours.index("--num_train_epochs") :]
    assert "--adam_beta1" not in text and "--help_all" in text
    assert all(f"--{name} " in text[training:] for name in COMMON_TRAINER_FLAGS)
    assert "huggingface.co/docs/transformers/main_classes/trainer" in text
    assert "--adam_beta1" in help_text(capsys, "--help_all")
