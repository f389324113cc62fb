"""Stage 1, recognition style: a backbone pretrained the way real VideoMAE checkpoints are.

`python -m modeling_tsgv.synthetic.pretraining --objective recognition` trains, on the same stage-1 worlds and frame cache as
the default objective:

1. masked reconstruction (`VideoMAEForPreTraining`, VideoMAE's recipe: tube masking of 90 % of the patches, the
   normalised pixels of the masked ones regressed by a small decoder) for `--mae_steps` steps, then
2. clip-level classification (`VideoMAEForVideoClassification`, mean pooling, multi-label): which actions, colours
   and shapes occur anywhere in the clip — labels of the kind Kinetics gives a clip, nothing per token and nothing
   about where or when — for the remaining steps up to `--max_steps`.

The product is an ordinary `VideoMAEForVideoClassification` folder (as `MCG-NJU/videomae-base-finetuned-kinetics`
is), which `run_grounding.py --video_model` loads like any fine-tuned VideoMAE checkpoint
(`video_backbones.load_video_backbone`). Its card reports the same linear probes of the tokens as the default
backbone's (`pretraining.linear_probe_readouts`), on the held-out videos, against a random-init backbone.
Each phase keeps its own checkpoints (`<output_dir>/mae/`, `<output_dir>/classification/`) and resumes with
`--resume_from_checkpoint last`; a finished phase 1 is not run again.
"""

import copy
import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import torch
from transformers import (
    Trainer,
    VideoMAEConfig,
    VideoMAEForPreTraining,
    VideoMAEForVideoClassification,
    VideoMAEModel,
    VideoMAEVideoProcessor,
)

from ..processing_tsgv import video_processor_settings
from ..trainer import SafeCheckpointsMixin, last_complete_checkpoint
from .world import ACTIONS, COLOURS, SHAPES

logger = logging.getLogger(__name__)

CLIP_LABELS = (
    [f"action:{a}" for a in ACTIONS] + [f"colour:{c}" for c in COLOURS] + [f"shape:{s}" for s in SHAPES]
)  # what occurs in a clip; index order: actions, colours, shapes
MASK_RATIO = 0.9  # VideoMAE's tube masking ratio
# VideoMAE regresses per-patch normalised pixels (norm_pix_loss=True). On this world's flat backgrounds a patch's
# normalised pixels are its compression noise blown up to unit variance: measured here, the loss stayed at 0.996-1.002
# (predicting zero) for the first 1,000 steps. The plain pixels in [0, 1] (VideoMAE un-normalises its input for the
# targets) are learnable here.
NORM_PIX_LOSS = False
PIXEL_TARGETS = {
    True: "each patch normalised by its own mean and std, VideoMAE's norm_pix_loss",
    False: "the plain pixels in [0, 1], not per patch: see NORM_PIX_LOSS in modeling_tsgv/synthetic/stage1_recognition.py",
}
DECODER = {  # a decoder sized to the tiny encoder (VideoMAE-B's is 384 wide, 4 blocks)
    "decoder_hidden_size": 64, "decoder_intermediate_size": 256, "decoder_num_attention_heads": 2,
    "decoder_num_hidden_layers": 2,
}  # fmt: skip


def clip_labels(colour: torch.Tensor, shape: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """A clip's multi-hot (len(CLIP_LABELS),) float labels from its per-token targets (as `ClipDataset` gives them:
    colour / shape index + 1, 0 background; action index + 1, 0 none, -100 background): every action, colour and
    shape that some token of the clip shows, with no trace of which token or when."""
    labels = torch.zeros(len(CLIP_LABELS))
    actions = action[action > 0].unique() - 1
    colours = colour[colour > 0].unique() - 1 + len(ACTIONS)
    shapes = shape[shape > 0].unique() - 1 + len(ACTIONS) + len(COLOURS)
    labels[torch.cat([actions, colours, shapes]).long()] = 1.0
    return labels


def tube_mask(num_patches_per_frame: int, time_steps: int, ratio: float, generator=None) -> torch.Tensor:
    """VideoMAE's tube masking: one random set of round(ratio x patches) spatial patches masked at every time step.
    Returns (time_steps * num_patches_per_frame,) bool in VideoMAE's token order (time, row, column)."""
    masked = torch.zeros(num_patches_per_frame, dtype=torch.bool)
    masked[torch.randperm(num_patches_per_frame, generator=generator)[: round(ratio * num_patches_per_frame)]] = True
    return masked.repeat(time_steps)


class RecognitionClips(torch.utils.data.Dataset):
    """A `pretraining.ClipDataset` seen by one recognition phase: "mae" items are {"pixel_values",
    "bool_masked_pos"} (a fresh tube mask each time, from a generator seeded by `seed` and the item), "classify"
    items {"pixel_values", "labels"} (`clip_labels`). Masks come from torch's generator of the loading process, which
    the Trainer seeds (and the DataLoader re-seeds per worker and epoch): a fresh mask per epoch, the same run
    twice gives the same masks."""

    def __init__(self, clips, phase: str, config: VideoMAEConfig):
        if phase not in ("mae", "classify"):
            raise ValueError(f"phase must be 'mae' or 'classify', got {phase!r}")
        self.clips, self.phase = clips, phase
        self.patches = (config.image_size // config.patch_size) ** 2
        self.steps = config.num_frames // config.tubelet_size

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = self.clips[i]
        if self.phase == "classify":
            return {
                "pixel_values": item["pixel_values"],
                "labels": clip_labels(item["colour"], item["shape"], item["action"]),
            }
        mask = tube_mask(self.patches, self.steps, MASK_RATIO)
        return {"pixel_values": item["pixel_values"], "bool_masked_pos": mask}


def recognition_metrics(eval_pred) -> dict[str, float]:
    """Held-out clip classification: mean average precision over the labels present, per group (actions, colours,
    shapes; scikit-learn's `average_precision_score`), in [0, 1]."""
    from sklearn.metrics import average_precision_score

    scores, labels = np.asarray(eval_pred.predictions), np.asarray(eval_pred.label_ids)
    out = {}
    groups = {"action": range(len(ACTIONS)), "colour": range(len(ACTIONS), len(ACTIONS) + len(COLOURS))}
    groups["shape"] = range(len(ACTIONS) + len(COLOURS), len(CLIP_LABELS))
    for name, columns in groups.items():
        present = [c for c in columns if 0 < labels[:, c].sum() < len(labels)]
        out[f"{name}_clip_mAP"] = float(
            np.mean([average_precision_score(labels[:, c], scores[:, c]) for c in present])
        )
    return out


class RecognitionTrainer(SafeCheckpointsMixin, Trainer):
    """The Trainer with checkpoints that are complete or absent (`SafeCheckpointsMixin`)."""


def phase_arguments(training_args, output_dir: Path, max_steps: int, classify: bool, learning_rate=None):
    """The stage-1 TrainingArguments for one phase: its own checkpoint folder, steps and learning rate (None: the
    run's); read-outs only while classifying (masked reconstruction has no labels to score)."""
    return dataclasses.replace(
        training_args,
        output_dir=str(output_dir),
        max_steps=max_steps,
        learning_rate=learning_rate or training_args.learning_rate,
        label_names=["labels"] if classify else [],
        eval_strategy=training_args.eval_strategy if classify else "no",
        resume_from_checkpoint=None,
    )


def _resume(folder: Path, resume) -> str | None:
    """The checkpoint of phase folder `folder` to resume from when `--resume_from_checkpoint` was given (any value:
    each phase has its own checkpoints): its newest complete one, None when it has none."""
    return last_complete_checkpoint(str(folder)) if resume and folder.is_dir() else None


def masked_reconstruction(config, datasets, training_args, output_dir: Path, steps: int, resume, init_state=None):
    """Phase 1: `steps` of `VideoMAEForPreTraining` on the training clips; returns the encoder's state dict (a phase
    already finished is read from `<output_dir>/mae/encoder`, not run again) and the phase's record: steps, training
    seconds, and the first and last logged reconstruction loss (None when no step was logged)."""
    folder = output_dir / "mae"
    done = folder / "encoder"
    if (done / "model.safetensors").is_file():
        return VideoMAEModel.from_pretrained(done).state_dict(), json.loads((folder / "phase.json").read_text())
    mae_config = copy.deepcopy(config)
    for key, value in {**DECODER, "norm_pix_loss": NORM_PIX_LOSS}.items():
        setattr(mae_config, key, value)
    torch.manual_seed(training_args.seed)
    model = VideoMAEForPreTraining(mae_config)
    if init_state is not None:
        model.videomae.load_state_dict(init_state, strict=False)
    clips = RecognitionClips(datasets["train"], "mae", config)
    trainer = RecognitionTrainer(
        model=model, args=phase_arguments(training_args, folder, steps, False), train_dataset=clips
    )
    result = trainer.train(resume_from_checkpoint=_resume(folder, resume))
    losses = [round(entry["loss"], 4) for entry in trainer.state.log_history if "loss" in entry]
    record = {"steps": steps, "train_seconds": result.metrics["train_runtime"]}
    record["learning_rate"] = training_args.learning_rate
    record |= {"first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None}
    if trainer.args.should_save:
        model.videomae.save_pretrained(done)
        (folder / "phase.json").write_text(json.dumps(record))
    return model.videomae.state_dict(), record


def classifier_config(config: VideoMAEConfig) -> VideoMAEConfig:
    """`config` with the clip-classification head's fields: mean pooling, multi-label, `CLIP_LABELS` as id2label."""
    out = copy.deepcopy(config)
    out.use_mean_pooling = True
    out.problem_type = "multi_label_classification"
    out.id2label = dict(enumerate(CLIP_LABELS))
    out.label2id = {label: index for index, label in enumerate(CLIP_LABELS)}
    return out


def clip_classification(
    config, encoder_state, datasets, training_args, output_dir: Path, steps: int, resume, learning_rate=None
):
    """Phase 2: `steps` of `VideoMAEForVideoClassification` from the phase-1 encoder at `learning_rate` (None: the
    run's), read out on the held-out clips; returns (the model, its last read-outs, the phase's training seconds)."""
    folder = output_dir / "classification"
    torch.manual_seed(training_args.seed + 1)
    model = VideoMAEForVideoClassification(classifier_config(config))
    missing, unexpected = model.videomae.load_state_dict(encoder_state, strict=False)
    if unexpected or [key for key in missing if not key.startswith("layernorm")]:
        raise ValueError(
            f"the phase-1 encoder does not fit the classifier (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    clips = {split: RecognitionClips(data, "classify", config) for split, data in datasets.items()}
    trainer = RecognitionTrainer(
        model=model, args=phase_arguments(training_args, folder, steps, True, learning_rate), train_dataset=clips["train"],
        eval_dataset=clips["held_out"], compute_metrics=recognition_metrics,
    )  # fmt: skip
    result = trainer.train(resume_from_checkpoint=_resume(folder, resume))
    readouts = {k[len("eval_") :]: round(v, 4) for k, v in trainer.evaluate().items() if k.endswith("_clip_mAP")}
    return model, readouts, result.metrics["train_runtime"]


def save_recognition_backbone(model, folder: Path, record: dict, image_size: int, card: str) -> None:
    """Write the product: the `VideoMAEForVideoClassification` folder, its video processor, `stage1.json`, card."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    VideoMAEVideoProcessor(**video_processor_settings(image_size)).save_pretrained(folder)
    (folder / "stage1.json").write_text(json.dumps(record, indent=1) + "\n")
    (folder / "README.md").write_text(card)


def recognition_card(record: dict, config: VideoMAEConfig) -> str:
    """The model card of a recognition-style backbone (`templates/backbone_card_recognition.md`) from its record."""
    from .pretraining import READOUT_NAMES

    world, init, probes = record["world"], record["readouts_at_init"], record["readouts"]
    rows = "\n".join(f"{text} | {init[key]:.3f} | **{probes[key]:.3f}**" for key, text in READOUT_NAMES.items())
    clip_rows = "\n".join(f"- {name.split('_')[0]}s: {value:.3f}" for name, value in record["clip_readouts"].items())
    template = Path(__file__).parent.parent / "templates" / "backbone_card_recognition.md"
    return template.read_text().format(
        **{"hidden_size": config.hidden_size, "num_layers": config.num_hidden_layers, "patch_size": config.patch_size},
        **{"image_size": config.image_size, "clip_frames": config.num_frames, "tubelet_size": config.tubelet_size},
        presets=" and ".join(world["presets"]), videos_per_world=f"{world['num_videos_per_world']:,}",
        seeds=", ".join(map(str, world["seeds"])), held_out_percent=f"{100 * world['held_out_fraction']:.0f}",
        held_out_seed=world["held_out_seed"], samplings=world["samplings_per_video"], num_frames=world["num_frames"],
        mae_steps=f"{record['mae_steps']:,}", mask_percent=f"{100 * MASK_RATIO:.0f}",
        pixel_target=PIXEL_TARGETS[record["norm_pix_loss"]], mae_first_loss=record["mae_loss"]["first"],
        mae_last_loss=record["mae_loss"]["last"],
        decoder_layers=DECODER["decoder_num_hidden_layers"], decoder_width=DECODER["decoder_hidden_size"],
        classify_steps=f"{record['classification_steps']:,}", num_actions=len(ACTIONS), num_colours=len(COLOURS),
        num_shapes=len(SHAPES), clips_per_step=record["clips_per_step"], learning_rate=f"{record['learning_rate']:g}",
        mae_learning_rate=f"{record['mae_learning_rate']:g}",
        minutes=f"{record['train_seconds'] / 60:.0f}", hardware=record["hardware"], clip_rows=clip_rows, rows=rows,
        commands="\n".join(record["commands"]),
    )  # fmt: skip


def run_recognition(args, training_args, output_dir: Path, datasets: dict, config, resume, command: str) -> dict:
    """`--objective recognition`: phase 1 (`masked_reconstruction`, `args.mae_steps`), phase 2
    (`clip_classification`, up to `--max_steps` in all), the linear probes on the held-out clips for the product
    and for the random init, then `<output_dir>/backbone`. Returns the record written to its `stage1.json`."""
    from .pretraining import hardware, linear_probe_readouts, world_record

    torch.manual_seed(training_args.seed)
    at_init = linear_probe_readouts(VideoMAEModel(config), datasets["held_out"])
    logger.info(f"stage 1 (recognition) probes at random init: {at_init}")
    encoder, mae = masked_reconstruction(config, datasets, training_args, output_dir, args.mae_steps, resume)
    steps = training_args.max_steps - args.mae_steps
    classify_rate = args.classify_learning_rate or training_args.learning_rate
    model, clip_readouts, seconds = clip_classification(
        config, encoder, datasets, training_args, output_dir, steps, resume, classify_rate
    )
    probes = linear_probe_readouts(model.videomae, datasets["held_out"])
    record = {
        "objective": "recognition", "mae_steps": args.mae_steps, "classification_steps": steps,
        "steps": training_args.max_steps, "train_seconds": round(mae["train_seconds"] + seconds, 1),
        "clips_per_step": training_args.per_device_train_batch_size * max(1, training_args.world_size),
        "learning_rate": classify_rate, "mae_learning_rate": mae.get("learning_rate", training_args.learning_rate),
        "hardware": hardware(), "world": world_record(args),
        "clip_labels": list(CLIP_LABELS), "mask_ratio": MASK_RATIO, "decoder": DECODER,
        "norm_pix_loss": NORM_PIX_LOSS, "mae_loss": {"first": mae["first_loss"], "last": mae["last_loss"]},
        "clip_readouts": clip_readouts, "readouts": probes, "readouts_at_init": at_init, "commands": [command],
    }  # fmt: skip
    if training_args.should_save:
        card = recognition_card(record, model.config)
        save_recognition_backbone(model, output_dir / "backbone", record, config.image_size, card)
    logger.info(f"stage 1 (recognition) done: {output_dir / 'backbone'}; probes {probes}; clips {clip_readouts}")
    return record


__all__ = [
    "CLIP_LABELS",
    "clip_labels",
    "tube_mask",
    "RecognitionClips",
    "recognition_metrics",
    "masked_reconstruction",
    "clip_classification",
    "classifier_config",
    "save_recognition_backbone",
    "recognition_card",
    "run_recognition",
]
