"""A run's output folder: a trained model is never replaced by accident, an earlier run's checkpoints are set aside
(not deleted) until the new run has saved, `--resume_from_checkpoint last` means the newest complete checkpoint, and
a finished run is not "resumed" into an empty record."""

import glob
import json
import logging
import math
import os
import shlex
import shutil
import tempfile

from transformers import TrainerCallback

from .configuration_tsgv import PICKLE_WEIGHT_FILES, WEIGHT_FILES
from .trainer import checkpoint_problem, last_complete_checkpoint

logger = logging.getLogger(__name__)

REPLACED_CHECKPOINTS = ".replaced-checkpoints"  # where --overwrite_output_dir keeps the earlier run's checkpoints
TRAINED_MODEL_FILES = WEIGHT_FILES + PICKLE_WEIGHT_FILES


class OutputFolderError(ValueError):
    """An output folder or checkpoint the arguments cannot use; the message names the flag and the path."""


def check_output_dir(training_args) -> None:
    """A run never replaces a trained model by accident. Refuses an --output_dir that holds a trained model or
    checkpoints of an earlier run unless --overwrite_output_dir (which then sets those checkpoints aside until this
    run has saved, so its checkpoint rotation and a later `--resume_from_checkpoint last` see only its own) or
    --resume_from_checkpoint;
    turns `--resume_from_checkpoint last` into the newest complete checkpoint's path (one a kill left half-written is
    passed over) and refuses an incomplete checkpoint given by path. Raises `OutputFolderError` (one line, naming
    the flag). `training_args`: the run's `TrainingArguments`."""
    output_dir = training_args.output_dir
    resume = training_args.resume_from_checkpoint
    if resume is not None and resume.lower() in ("last", "true"):
        last = last_complete_checkpoint(output_dir)
        if last is None:
            raise OutputFolderError(
                f"--resume_from_checkpoint {resume}: no complete checkpoint-* folder in {output_dir}"
            )
        logger.info(f"resuming from {last}, the newest complete checkpoint")
        training_args.resume_from_checkpoint = resume = last
    elif resume is not None and checkpoint_problem(resume) is not None:
        parent = os.path.dirname(os.path.normpath(resume))
        last = last_complete_checkpoint(parent) if os.path.isdir(parent) else None
        hint = f"; the newest complete one is {last}" if last else ""
        raise OutputFolderError(f"--resume_from_checkpoint {resume}: {checkpoint_problem(resume)}{hint}")
    if resume is not None:
        check_something_to_resume(resume, training_args)
    if resume is not None or not os.path.isdir(output_dir):
        return
    found = [name for name in TRAINED_MODEL_FILES if os.path.exists(os.path.join(output_dir, name))]
    checkpoints = sorted(glob.glob(os.path.join(output_dir, "checkpoint-*")))
    if not found and not checkpoints:
        return
    if not training_args.overwrite_output_dir:
        what = f"a trained model ({found[0]})" if found else f"checkpoints of an earlier run ({len(checkpoints)})"
        raise OutputFolderError(
            f"--output_dir {output_dir} already holds {what}: pass --overwrite_output_dir to replace it, "
            "--resume_from_checkpoint last to continue that training, or another --output_dir"
        )
    if training_args.process_index == 0 and checkpoints:
        os.makedirs(os.path.join(output_dir, REPLACED_CHECKPOINTS), exist_ok=True)
        # set aside, not deleted: until this run has saved something, the earlier run's work stays on disk
        # one subfolder per overwrite: an earlier overwrite that was killed may have left its own set here
        held = tempfile.mkdtemp(prefix="run-", dir=os.path.join(output_dir, REPLACED_CHECKPOINTS))
        for path in checkpoints:
            os.replace(path, os.path.join(held, os.path.basename(path)))
        logger.info(
            f"--overwrite_output_dir: {len(checkpoints)} checkpoint folders of an earlier run moved to {held}; "
            "removed once this run has saved its first checkpoint or its model"
        )


def check_something_to_resume(checkpoint: str, training_args) -> None:
    """Refuse (`OutputFolderError`) to resume a run that has finished the training these arguments ask for: the Trainer
    would train zero steps and the run's record (all_results.json, the model card) would be rewritten with a
    training time of 0 s. More steps or epochs than the checkpoint's run planned do continue it."""
    try:
        with open(os.path.join(checkpoint, "trainer_state.json")) as f:
            state = json.load(f)
    except (OSError, ValueError):
        return  # checkpoint_problem has judged the folder complete; the Trainer reports what it lacks
    step = state.get("global_step", 0)
    if training_args.max_steps > 0:
        asked = training_args.max_steps
    else:  # epochs: in steps, at the checkpoint run's own steps per epoch
        epoch = state.get("epoch") or 0
        if not step or not epoch:
            return
        asked = math.ceil(training_args.num_train_epochs * round(step / epoch))
    if step >= asked:
        raise OutputFolderError(
            f"--resume_from_checkpoint: {checkpoint} has trained {step} steps, all that these arguments ask for, "
            "so there is nothing left to resume; raise --max_steps or --num_train_epochs to train further, or "
            f"evaluate it with --model_name_or_path {checkpoint} --evaluate_only --output_dir <another folder>"
        )


class DropReplacedCheckpoints(TrainerCallback):
    """Removes the checkpoints `--overwrite_output_dir` set aside (`check_output_dir`) once this run has a complete
    checkpoint of its own (`on_save` comes after the checkpoint's completion marker); `drop` does it after the final
    save."""

    def on_save(self, args, state, control, **kwargs):
        self.drop(args)

    @staticmethod
    def drop(args):
        held = os.path.join(args.output_dir, REPLACED_CHECKPOINTS)
        if args.process_index == 0 and os.path.isdir(held):
            shutil.rmtree(held, ignore_errors=True)


class RunInterrupted(KeyboardInterrupt):
    """Training stopped by Ctrl-C; its message names the newest complete checkpoint and how to resume it."""

    def __init__(self, output_dir: str, argv: list[str]):
        last = last_complete_checkpoint(output_dir)
        if last is None:
            super().__init__(f"interrupted before the first checkpoint was saved in {output_dir}: nothing to resume")
        else:
            super().__init__(f"interrupted; the newest complete checkpoint is {last}; {resume_instructions(argv)}")


def resume_instructions(argv: list[str]) -> str:
    """How to resume the run started with `argv`: the same command with `--resume_from_checkpoint last` (replacing
    an earlier one), or the line to add to its .json / .yaml file."""
    if len(argv) == 1 and argv[0].endswith((".json", ".yaml", ".yml")):
        return f'to resume, add "resume_from_checkpoint": "last" to {argv[0]} and run it again'
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--resume_from_checkpoint":
            skip = True
        elif not arg.startswith("--resume_from_checkpoint="):
            kept.append(arg)
    command = shlex.join(["python", "run_grounding.py", *kept, "--resume_from_checkpoint", "last"])
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # started by a launcher we cannot see: name its part
        command = f"your launch command (torchrun / accelerate launch) with {command.removeprefix('python ')}"
    return f"resume with: {command}"


__all__ = [
    "RunInterrupted",
    "resume_instructions",
    "check_output_dir",
    "check_something_to_resume",
    "DropReplacedCheckpoints",
    "OutputFolderError",
]
