"""Train and evaluate a tsgv temporal sentence grounding model with the transformers Trainer.

Default job (no arguments): generate the synthetic world (cached), train a small SCADA model on it, evaluate on test
and test_novel, save model + processor + model card into outputs/tsgv-synthetic:

    python run_grounding.py

Several processes (DDP; on CPU add --use_cpu):
    accelerate launch --multi_gpu --num_processes 2 run_grounding.py --use_cpu ...
    torchrun --nproc_per_node 2 run_grounding.py --use_cpu ...
    (`accelerate launch --cpu --num_processes 2` starts ONE process: do not use it for 2 CPU ranks)
DeepSpeed ZeRO-2 / ZeRO-3 (giant backbones): add --deepspeed ds_configs/zero3.json to a torchrun / accelerate launch.

Real Charades-STA (videos from the Charades site, annotations from the STA release):
    python run_grounding.py --dataset charades-sta --video_dir /data/Charades_v1_480 \
        --train_file charades_sta_train.txt --test_file charades_sta_test.txt \
        --durations Charades_v1_train.csv Charades_v1_test.csv \
        --video_model MCG-NJU/videomae-base --text_model distilbert-base-uncased --num_frames 64 --image_size 224 \
        --output_dir outputs/tsgv-charades --bf16 --per_device_train_batch_size 8

Arguments come from the command line or from one .json / .yaml file (`python run_grounding.py args.json`); they
are defined and checked in modeling_tsgv/grounding_args.py. The path below reads top to bottom: `setup` (arguments,
splits, model, processor, collators, Trainer, caches), then `main` (train, save, calibrate, evaluate, report).
"""

import logging
import os
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
from transformers import AutoProcessor, TrainingArguments, VideoMAEModel, set_seed

from modeling_tsgv import TSGVConfig, TSGVForGrounding, TSGVProcessor, default_text_encoder_path
from modeling_tsgv.argparsing import GroundingArgumentParser
from modeling_tsgv.configuration_tsgv import (
    BACKBONE_SIZES,
    BUILTIN_BACKBONES,
    ModelFolderError,
    builtin_backbone_path,
    config_with_overrides,
)
from modeling_tsgv.evaluation import calibrate_scores, evaluate_splits
from modeling_tsgv.feature_cache import FeatureStore, fill_caches
from modeling_tsgv.grounding_args import (
    ArgumentError,
    DataArguments,
    GroundingTrainingArguments,
    ModelArguments,
    backbone_config,
    check_arguments,
    config_error,
)
from modeling_tsgv.logs import quiet_transformers, setup_logging
from modeling_tsgv.processing_tsgv import check_processor_matches
from modeling_tsgv.reporting import write_run_report
from modeling_tsgv.run_folder import DropReplacedCheckpoints, RunInterrupted
from modeling_tsgv.splits import check_validation_labels, data_defaults, load_splits, prepare_data
from modeling_tsgv.trainer import (
    BadSampleBudgetError,
    EpochCallback,
    NonFiniteStepsError,
    TSGVTrainer,
    compute_grounding_metrics,
    lr_recipe,
    training_measures,
)

logger = logging.getLogger(__name__)


def parse_arguments(argv: list[str]):
    """(ModelArguments, DataArguments, GroundingTrainingArguments) from the command line or one .json / .yaml file;
    sets up logging and checks them (`grounding_args.check_arguments`) before anything is generated or written.
    Raises `ArgumentError` (one line) for anything wrong."""
    parser = GroundingArgumentParser((ModelArguments, DataArguments, GroundingTrainingArguments))
    try:
        if len(argv) == 1 and argv[0].endswith(".json"):
            model_args, data_args, training_args = parser.parse_json_file(os.path.abspath(argv[0]))
        elif len(argv) == 1 and argv[0].endswith((".yaml", ".yml")):
            model_args, data_args, training_args = parser.parse_yaml_file(os.path.abspath(argv[0]))
        else:
            model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=argv)
    except ArgumentError:
        raise
    except (ValueError, TypeError) as error:  # TrainingArguments' own checks, a bad file: one line like the others
        raise ArgumentError(str(error).strip().splitlines()[0]) from error
    if training_args.remove_unused_columns:
        raise ArgumentError("--remove_unused_columns must stay False: frames are decoded in a dataset transform")
    setup_logging(training_args.get_process_log_level(), (__name__,))
    check_arguments(model_args, data_args, training_args)  # before anything is generated or written
    if not torch.cuda.is_available():
        training_args.dataloader_pin_memory = False  # nothing to pin for; torch warns in every DataLoader
    set_seed(training_args.seed)
    if training_args.deepspeed and training_args.use_cpu:
        # on CPU accelerate sets up torch.distributed but not deepspeed.comm, which zero.Init needs
        import deepspeed

        _ = training_args.device
        deepspeed.init_distributed(dist_backend="gloo")
    return model_args, data_args, training_args


def build_model(model_args: ModelArguments, defaults: dict | None = None) -> TSGVForGrounding:
    """A tsgv model from a saved tsgv folder (its config updated by the flags that can apply to it), from a pretrained
    VideoMAE (a path, a Hub name or a backbone shipped in the package) + text encoder, or from a random-init size;
    the config flags and --config_overrides applied, over `defaults` (fields the data decides, for a new model)."""
    overrides = model_args.config_overrides_dict()
    if not model_args.model_name_or_path:
        overrides = {**(defaults or {}), **overrides}
    try:
        if model_args.model_name_or_path:
            config = config_with_overrides(TSGVConfig.from_pretrained(model_args.model_name_or_path), overrides)
            return TSGVForGrounding.from_pretrained(model_args.model_name_or_path, config=config)
        text = model_args.text_model or default_text_encoder_path()
        video = model_args.video_model
        if video in BACKBONE_SIZES:
            # `_from_config` builds under DeepSpeed ZeRO-3's zero.Init when --deepspeed is set (what ViT-g needs)
            video = VideoMAEModel._from_config(backbone_config(model_args, overrides))
        elif video in BUILTIN_BACKBONES:
            video = builtin_backbone_path(video)
        return TSGVForGrounding.from_backbones(video=video, text=text, **overrides)
    except ValueError as error:
        if isinstance(error, ModelFolderError):
            raise
        raise config_error(error, model_args) from error


def load_processor(model_args: ModelArguments, model) -> TSGVProcessor:
    """The processor saved with --model_name_or_path (`AutoProcessor`, checked against the model), else one built
    for the text encoder and the model's frame size. Raises `ArgumentError` when the saved one cannot feed the
    model."""
    path = model_args.model_name_or_path
    if not path:
        text_source = model_args.text_model or default_text_encoder_path()
        return TSGVProcessor.from_text_encoder(text_source, image_size=model.config.image_size)
    try:
        processor = AutoProcessor.from_pretrained(path)
        check_processor_matches(model.config, processor, path)
    except (OSError, ValueError) as error:
        raise ArgumentError(f"--model_name_or_path {path}: {str(error).strip().splitlines()[0]}") from error
    return processor


@dataclass
class GroundingRun:
    """What `setup` builds for a run: its arguments, splits, model, processor and Trainer (the model already on
    the training device), and the caches filled there."""

    model_args: ModelArguments
    data_args: DataArguments
    training_args: TrainingArguments
    splits: dict
    eval_split: str | None
    validation: str
    eval_splits: list[str]
    model: TSGVForGrounding
    processor: TSGVProcessor
    trainer: TSGVTrainer
    transforms: dict
    caches: list
    store: FeatureStore | None


def setup(argv: list[str], callbacks=None) -> GroundingRun:
    """Everything before `trainer.train()`, in the order a GPU run needs: arguments, splits, model, processor,
    collators, then the Trainer (which places the model on the training device), then the caches, computed on that
    device (`fill_caches`). `callbacks`: extra `TrainerCallback`s."""
    model_args, data_args, training_args = parse_arguments(argv)
    with training_args.main_process_first(desc="reading annotations / generating the synthetic world"):
        splits, eval_split, validation = load_splits(data_args, training_args.seed)
    eval_splits = [s for s in ("test", "test_novel") if s in splits]
    check_validation_labels(splits, eval_split, data_args, training_args)
    model = build_model(model_args, data_defaults(splits))
    logger.info(model.trainable_parameters_report())
    training_args.backbone_lr_multiplier, training_args.layer_decay = lr_recipe(  # the mode's, where not given
        model.config.backbone_tuning, training_args.backbone_lr_multiplier, training_args.layer_decay
    )
    if "train" in splits:
        # the inference pipeline grounds videos up to this long in one pass, longer ones in windows this long
        model.config.inference_window_s = float(np.ceil(np.percentile(splits["train"]["duration_s"], 95)))
    processor = load_processor(model_args, model)
    train_collator, eval_collator, transforms, reading_dir = prepare_data(
        splits, model, processor, data_args, training_args
    )
    epochs = EpochCallback(train_collator, *transforms.values())  # the caches join it once they are built
    trainer = TSGVTrainer(
        model=model,
        args=training_args,
        train_dataset=None if data_args.evaluate_only else splits.get("train"),  # its settings rule: training only
        eval_dataset=splits.get(eval_split),
        data_collator=train_collator,
        eval_data_collator=eval_collator,
        compute_metrics=compute_grounding_metrics,
        callbacks=[epochs, DropReplacedCheckpoints()] + list(callbacks or []),
        max_bad_sample_fraction=training_args.max_bad_sample_fraction,
        max_nonfinite_steps=training_args.max_nonfinite_steps,
        reading_dir=reading_dir,
        processing_class=processor,  # checkpoints carry the processor too
    )
    quiet_transformers(training_args.get_process_log_level())  # the Trainer has just set transformers' verbosity
    prepared = transforms["train"].prepared if "train" in transforms else None
    caches, store = fill_caches(trainer, splits, eval_split, processor, data_args, prepared)
    epochs.targets += tuple(caches)
    return GroundingRun(
        model_args, data_args, training_args, splits, eval_split, validation, eval_splits, model, processor, trainer,
        transforms, caches, store,
    )  # fmt: skip


def main(argv=None, callbacks=None):
    """Parse arguments (`argv`, default sys.argv[1:]), train, evaluate, save; returns the metrics dict.
    `callbacks`: extra `TrainerCallback`s."""
    argv = sys.argv[1:] if argv is None else argv
    run = setup(argv, callbacks)
    trainer, model, training_args = run.trainer, run.model, run.training_args

    # ---- training --------------------------------------------------------------------------------------------
    metrics = {}
    start = time.time()
    if "train" in run.splits and not run.data_args.evaluate_only:
        try:
            result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
        except KeyboardInterrupt:
            raise RunInterrupted(training_args.output_dir, argv) from None
        metrics.update(result.metrics)
        metrics.update(training_measures(trainer, model))
        if run.store is not None:
            metrics.update(
                features_read_videos=run.store.read_videos, features_extracted_videos=run.store.extracted_videos
            )
        trainer.save_model()
        if trainer.is_world_process_zero():
            run.processor.save_pretrained(training_args.output_dir)
        DropReplacedCheckpoints.drop(training_args)

    # ---- calibration, evaluation and report ------------------------------------------------------------------
    metrics["validation_split"] = run.validation
    metrics.update(calibrate_scores(run))
    metrics.update(evaluate_splits(run))
    metrics["wall_time_s"] = time.time() - start
    arguments = (run.model_args, run.data_args, training_args)
    return write_run_report(trainer, metrics, run.splits, run.eval_splits, run.eval_split, model, arguments, argv)


def cli(argv=None, callbacks=None) -> int:
    """`python run_grounding.py`: `main`, with the ways a run stops without a bug said in one line on stderr (bad
    arguments: 2; the run's own stops, too many undecodable videos or non-finite steps: 1; Ctrl-C: 130, naming the
    newest checkpoint and the command that resumes it). Returns the exit status."""
    try:
        main(argv, callbacks)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # every rank done, then the process group torn down before exit (left to the interpreter's exit, gloo
            # can abort a rank while another is still shutting down)
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()
    except ArgumentError as error:
        print(f"run_grounding.py: error: {error}", file=sys.stderr)
        return 2
    except (BadSampleBudgetError, NonFiniteStepsError) as error:
        print(f"run_grounding.py: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as interrupt:
        print(
            f"run_grounding.py: {interrupt if isinstance(interrupt, RunInterrupted) else 'interrupted'}",
            file=sys.stderr,
        )
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(cli())
