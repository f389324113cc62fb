"""What a run logs: tsgv's own lines at the run's level, transformers' only from its Trainer (the rest warnings and
errors), and none of the lines that say nothing to a tsgv user."""

import logging
import os

import datasets
import torch
import transformers


class _DropLines(logging.Filter):
    """Drops log records whose message contains one of `phrases`."""

    def __init__(self, *phrases):
        super().__init__()
        self.phrases = phrases

    def filter(self, record):
        return not any(phrase in record.getMessage() for phrase in self.phrases)


def quiet_transformers(level: int) -> None:
    """transformers logs at `level` only for the Trainer (its run summary, evaluation and checkpoint lines); its
    other modules (config dumps, "weights saved", tokenizer files...) only warnings and errors, and the Trainer's
    invitation to share the model is dropped."""
    transformers.utils.logging.set_verbosity(max(level, logging.WARNING))
    trainer_logger = transformers.utils.logging.get_logger("transformers.trainer")
    trainer_logger.setLevel(level)
    if not any(isinstance(f, _DropLines) for f in trainer_logger.filters):
        trainer_logger.addFilter(_DropLines("Do not forget to share your model", "Saving Trainer.data_collator"))


def setup_logging(level: int, names: tuple[str, ...] = ()) -> None:
    """Log lines with time, level and logger name; tsgv's loggers (and `names`) at `level`, transformers through
    `quiet_transformers`, datasets at `level`. Without a GPU, DeepSpeed is told it runs on the CPU (else it warns
    that it found no accelerator)."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    for name in (*names, "modeling_tsgv", "modeling_tsgv.annotations", "modeling_tsgv.data"):
        logging.getLogger(name).setLevel(level)
    quiet_transformers(level)
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    datasets.utils.logging.set_verbosity(level)


__all__ = ["quiet_transformers", "setup_logging"]
