"""A run's splits, from the annotation files (or the built-in synthetic world) to datasets the Trainer reads: every
split read (one summary line per file), a validation split held out of the training videos when none is given, the
fields of a new model the data decides, and the per-split frame transforms and the collators."""

import atexit
import logging
import os
import shutil
import tempfile
from typing import TYPE_CHECKING

from .annotations import explode_queries, read_annotations, rows_to_dataset
from .argparsing import ArgumentError
from .data import FrameTransform, QueryCentricCollator, VideoCentricCollator
from .prepare import PreparedStore

if TYPE_CHECKING:  # the arguments' module imports this one (its split rule)
    from .grounding_args import DataArguments

logger = logging.getLogger(__name__)


def resolve_annotation_files(data_args: "DataArguments") -> dict:
    """split -> (path, format, video_dir, durations) for the chosen dataset; builds the synthetic world if needed."""
    if data_args.dataset == "synthetic":
        from .synthetic import generate, with_absent_queries

        generate(
            data_args.synthetic_dir,
            seed=data_args.synthetic_seed,
            preset=data_args.synthetic_preset,
            **synthetic_sizes(data_args),
        )
        folder = os.path.join(data_args.synthetic_dir, "annotations")
        splits = {s: os.path.join(folder, f"{s}.jsonl") for s in ("train", "val", "test", "test_novel")}
        for split in ("test", "test_novel"):  # one absent query per video besides the present ones (relevance)
            if os.path.isfile(splits[split]):
                splits[split] = str(with_absent_queries(splits[split], data_args.synthetic_seed))
        return {s: (p, "jsonl", data_args.synthetic_dir, None) for s, p in splits.items()}
    files = {"train": data_args.train_file, "val": data_args.validation_file, "test": data_args.test_file}
    return {s: (p, data_args.dataset, data_args.video_dir, data_args.durations) for s, p in files.items() if p}


def synthetic_sizes(data_args: "DataArguments") -> dict:
    """`synthetic.generate`'s size arguments: `num_videos` (split 70/10/10/10) for --synthetic_num_videos, else
    `split_videos` (--synthetic_split_videos, which `DataArguments` sets to `DEFAULT_SPLIT_VIDEOS` without either)."""
    if data_args.synthetic_num_videos is not None:
        return {"num_videos": data_args.synthetic_num_videos}
    return {"split_videos": data_args.synthetic_split_videos}


def load_splits(data_args: "DataArguments", seed: int) -> tuple[dict, str | None, str]:
    """Read every split (one summary log line per file); without a validation file, hold out
    --validation_split_fraction of the training videos as "val" (`hold_out_validation`). Returns
    ({split: Dataset}, the validation split's name or None, how the validation split was made, in words)."""
    splits = {}
    for split, (path, fmt, video_dir, durations) in resolve_annotation_files(data_args).items():
        rows, stats = read_annotations(path, fmt, video_dir=video_dir, durations=durations)
        limit = data_args.max_train_videos if split == "train" else data_args.max_eval_videos
        rows = rows[:limit] if limit else rows
        # read_annotations has logged its one-line summary of the file
        splits[split] = rows_to_dataset(rows)
    if "val" in splits:
        where = "the synthetic world's own" if data_args.dataset == "synthetic" else data_args.validation_file
        return splits, "val", f"{where} ({len(splits['val']):,d} videos)"
    if "train" not in splits or data_args.evaluate_only or data_args.validation_split_fraction == 0:
        return splits, None, "none"
    return (splits, "val", hold_out_validation(splits, data_args.validation_split_fraction, seed, data_args))


def validation_problem(data_args: "DataArguments", training_args) -> str | None:
    """Why these arguments leave a training run without a fair validation split (None: they do not): with
    --validation_split_fraction 0 and no --validation_file, `load_splits` holds nothing out, and evaluating on the
    test split during training would let it pick the model. Checked while the arguments are parsed."""
    training = bool(data_args.train_file) and not data_args.evaluate_only
    holds_out = data_args.dataset != "synthetic" and not data_args.validation_file
    if training and holds_out and data_args.validation_split_fraction == 0 and training_args.eval_strategy != "no":
        return (
            "--validation_split_fraction 0 without --validation_file leaves no validation split, and evaluating on "
            "the test split during training would let it pick the model: give a --validation_file or a fraction "
            "> 0, or pass --eval_strategy no --load_best_model_at_end False"
        )
    return None


def hold_out_validation(splits: dict, fraction: float, seed: int, data_args: "DataArguments") -> str:
    """Move `fraction` of the training videos (by video: rows are videos; drawn with `seed` by
    `Dataset.train_test_split`) into `splits["val"]`; logs and returns what was done, in words."""
    train = splits["train"]
    try:
        parts = train.train_test_split(test_size=fraction, seed=seed)
    except ValueError as error:  # too few videos to hold any out
        raise ArgumentError(
            f"--validation_split_fraction {fraction:g}: cannot hold out validation videos from the {len(train)} "
            f"training videos of {data_args.train_file} ({str(error).splitlines()[0]}); give a --validation_file"
        ) from error
    splits["train"], splits["val"] = parts["train"], parts["test"]
    queries = sum(len(sentences) for sentences in splits["val"]["sentences"])
    description = (
        f"held out from {os.path.basename(data_args.train_file)}: {len(splits['val']):,d} of {len(train):,d} videos "
        f"({queries:,d} queries; fraction {fraction:g}, seed {seed})"
    )
    logger.info(f"validation split {description}; the test split is used only after training")
    return description


def check_validation_labels(splits: dict, eval_split: str, data_args, training_args) -> None:
    """Evaluation during training needs labelled moments in the validation split (annotation files of hidden test
    sets have none): without them every metric is NaN and no checkpoint can be the best. Raises `ArgumentError`."""
    training = "train" in splits and not data_args.evaluate_only
    if not training or training_args.eval_strategy == "no" or eval_split not in splits:
        return
    if not any(query for spans in splits[eval_split].with_format(None)["spans_s"] for query in spans):
        raise ArgumentError(
            f"the validation split ({eval_split}) has no labelled moments, so evaluation during training would "
            "measure nothing and could not pick a best checkpoint: pass a --validation_file with moments, or "
            "--eval_strategy no --load_best_model_at_end False"
        )


def data_defaults(splits: dict) -> dict:
    """TSGVConfig fields of a new model that the run decides: a relevance head (is the moment in the video at all,
    trained with negative queries), and a saliency head (highlight detection) when the training annotations rate
    clips (QVHighlights' saliency_scores); `--config_overrides relevance_head=False,saliency_head=False` say
    otherwise."""
    defaults = {"relevance_head": True}
    if "train" in splits and any(any(q) for q in splits["train"]["saliency_s"]):
        logger.info("the training annotations rate clips (saliency): the model gets a saliency head")
        defaults["saliency_head"] = True
    return defaults


def prepare_data(splits: dict, model, processor, data_args, training_args):
    """Collators and per-split frame transforms (set on the datasets; the training split exploded into one row per
    query under `--sampling query_centric`). Returns (train collator, evaluation collator, {split: FrameTransform},
    the folder where DataLoader workers note the file they decode)."""
    num_moments = max(
        [len(q) for ds in splits.values() for spans in ds["spans_s"] for q in spans] + [1]
    )  # fixed label width, so evaluation batches concatenate
    train_collator_cls = QueryCentricCollator if data_args.sampling == "query_centric" else VideoCentricCollator
    seed = training_args.seed
    negatives = data_args.negatives_per_video if model.config.relevance_head else 0  # none to learn from otherwise
    train_collator = train_collator_cls(
        processor, data_args.max_queries_per_video, seed=seed, report=True, negatives_per_video=negatives
    )
    eval_collator = VideoCentricCollator(processor, None, num_moments=num_moments, report=True, drop_failed=False)
    reading_dir = tempfile.mkdtemp(prefix="tsgv-reading-")  # which file each DataLoader worker is decoding
    atexit.register(shutil.rmtree, reading_dir, True)
    prepared = open_prepared(data_args.prepared_dir, splits, model.config.image_size)
    transforms = {}
    for split, dataset in splits.items():
        spacing = "random" if split == "train" else "uniform"  # frames jittered in training
        if split == "train" and data_args.sampling == "query_centric":
            dataset = splits[split] = explode_queries(dataset)
        transforms[split] = FrameTransform(
            processor.video_processor,
            model.config.num_frames,
            spacing,
            data_args.decode_backend,
            seed=seed,
            reading_dir=reading_dir,
            prepared=prepared if split in ("train", "val") else None,  # test splits: the files, as served
            uint8=True,  # frames cross the DataLoader as uint8; TSGVTrainer normalises them on the device
        )
        dataset.set_transform(transforms[split])
    return train_collator, eval_collator, transforms, reading_dir


def open_prepared(folder: str | None, splits: dict, image_size: int) -> PreparedStore | None:
    """The `--prepared_dir` store (None without the flag), with one log line saying how many training / validation
    videos it holds as their files are now (the others are decoded from their files)."""
    if folder is None:
        return None
    store = PreparedStore(folder)
    rows = [row for split in ("train", "val") if split in splits for row in splits[split].with_format(None)]
    current = sum(store.is_current(str(row["video_id"]), str(row["video_path"])) for row in rows)
    logger.info(
        f"prepared store {folder}: {current:,d} of {len(rows):,d} training / validation videos read from it, "
        f"{len(rows) - current:,d} decoded from their files (not in it, or changed since)"
    )
    if store.settings["short_side"] < image_size:
        logger.warning(
            f"{folder} holds frames with a short side of {store.settings['short_side']} px, fewer than the model's "
            f"{image_size}: they are upscaled"
        )
    return store


__all__ = [
    "load_splits",
    "validation_problem",
    "check_validation_labels",
    "data_defaults",
    "prepare_data",
    "synthetic_sizes",
]
