"""An `HfArgumentParser` whose `--help` reads: tsgv's flags first, grouped, each with its true default; the Trainer's
own flags behind a pointer (`--help_all` lists every one of them).

transformers' parser prints every `TrainingArguments` flag (about 700 lines) and appends "(default: X)" to each help
text, which for a flag whose default is resolved later (None here, "the top half" in its help) contradicts the help.
Written here because argparse and `HfArgumentParser` have neither a per-field group for a subclass's own fields nor
a formatter that leaves a stated default alone.
"""

import argparse
import copy
import dataclasses
from typing import get_type_hints

from transformers import HfArgumentParser, TrainingArguments


class ArgumentError(ValueError):
    """An argument that cannot work, found before anything is written; the message names the flag.
    `python run_grounding.py` prints it as one line and exits with status 2."""


TRAINER_DOCS = "https://huggingface.co/docs/transformers/main_classes/trainer#transformers.TrainingArguments"

# the Trainer's flags a grounding run changes most; `--help` shows these, `--help_all` every one
COMMON_TRAINER_FLAGS = (
    "per_device_train_batch_size",
    "per_device_eval_batch_size",
    "gradient_accumulation_steps",
    "max_steps",
    "warmup_steps",
    "seed",
    "bf16",
    "fp16",
    "activation_checkpointing",
    "torch_compile",
    "deepspeed",
    "use_cpu",
    "report_to",
    "resume_from_checkpoint",
    "eval_steps",
    "save_steps",
)


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's "(default: X)" only where it is true and new: not for a None default (resolved later; the help
    says to what) and not where the help text already states its default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default is None or action.default is argparse.SUPPRESS or "default" in text.lower():
            return text
        return super()._get_help_string(action)


class _HelpAll(argparse.Action):
    """`--help_all`: the same parser's help with every Trainer flag, then exit."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        full = type(parser)(parser.dataclass_types, all_trainer_flags=True, **parser.init_kwargs)
        full.print_help()
        parser.exit()


class GroundingArgumentParser(HfArgumentParser):
    """`HfArgumentParser` over `dataclass_types` (parses exactly as it does) with a readable `--help`.

    A dataclass's fields form one help group titled by its `_argument_group_name` (transformers' rule). For a
    `TrainingArguments` subclass, the fields it adds or whose default it changes form its own group; the inherited
    rest form a "transformers TrainingArguments" group that shows `COMMON_TRAINER_FLAGS` (every flag with
    `all_trainer_flags=True`, which `--help_all` uses). Hidden flags still parse.
    """

    def __init__(self, dataclass_types, all_trainer_flags: bool = False, **kwargs):
        self.all_trainer_flags = all_trainer_flags
        self.init_kwargs = dict(kwargs)
        kwargs.setdefault("formatter_class", DefaultsHelpFormatter)
        pointer = f"Every transformers TrainingArguments flag works here; --help_all lists them all ({TRAINER_DOCS})."
        kwargs["epilog"] = f"{kwargs['epilog']} {pointer}" if kwargs.get("epilog") else pointer
        super().__init__(dataclass_types, **kwargs)
        self.add_argument("--help_all", action=_HelpAll, help="show this help with every Trainer flag, then exit")

    def _add_dataclass_arguments(self, dtype) -> None:
        if not (isinstance(dtype, type) and issubclass(dtype, TrainingArguments)):
            return super()._add_dataclass_arguments(dtype)  # one group per `_argument_group_name`, as transformers
        base = {field.name: field for field in dataclasses.fields(TrainingArguments)}
        title = getattr(dtype, "_argument_group_name", dtype.__name__)
        own = self.add_argument_group(title, "flags tsgv adds, and Trainer flags whose default tsgv changes")
        trainer = self.add_argument_group(
            "transformers TrainingArguments",
            "the rest of the Trainer's flags" + ("" if self.all_trainer_flags else " (the common ones; --help_all)"),
        )
        for field, hint in self._fields(dtype):
            field.type = hint
            inherited = field.name in base and _same_default(field, base[field.name])
            if field.name in base and not inherited and not field.metadata.get("help"):
                field = _with_trainer_help(field, base[field.name])
            before = len(self._actions)
            self._parse_dataclass_field(trainer if inherited else own, field)
            if inherited and not self.all_trainer_flags and field.name not in COMMON_TRAINER_FLAGS:
                for action in self._actions[before:]:
                    action.help = argparse.SUPPRESS

    @staticmethod
    def _fields(dtype) -> list[tuple[dataclasses.Field, type]]:
        """(field, resolved type hint) of `dtype`'s init fields, in declaration order."""
        try:
            hints = get_type_hints(dtype)
        except NameError as error:
            raise RuntimeError(f"type hints of {dtype.__name__} cannot be resolved: {error}") from error
        return [(field, hints[field.name]) for field in dataclasses.fields(dtype) if field.init]


def _same_default(field: dataclasses.Field, base: dataclasses.Field) -> bool:
    """Whether `field` keeps `base`'s default (value or factory)."""
    return field.default == base.default and field.default_factory == base.default_factory


def _with_trainer_help(field: dataclasses.Field, base: dataclasses.Field) -> dataclasses.Field:
    """A copy of `field` (a Trainer flag whose default tsgv changes, declared without help) carrying the Trainer's
    help text and the default tsgv gives it (the Trainer's text may name its own)."""
    default = field.default_factory() if field.default is dataclasses.MISSING else field.default
    text = (base.metadata.get("help") or "").strip()
    field = copy.copy(field)
    field.metadata = {**field.metadata, "help": f"{text} (tsgv's default: {default})".strip()}
    return field
