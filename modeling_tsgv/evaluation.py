"""Test splits scored the way the model is served: every test video through the grounding pipeline.

A figure in `all_results.json` should predict what `pipeline("temporal-sentence-grounding", model=<the saved
folder>)` answers. So the test splits are not scored from the Trainer's evaluation batches (one uniform sampling of
`num_frames` over each whole video, the duration from the annotations) but by the pipeline itself on each video
file: videos up to the model's `inference_window_s` in one pass, longer ones in overlapping windows merged into one
answer, the duration read from the file, the same decoder, NMS and top-k. Validation during training (checkpoint
selection) keeps the Trainer's one-pass batches: faster, and only their ranking matters there.

With several processes each scores its share of the videos and the records are gathered.
"""

import logging
import os

import numpy as np
import torch

from .calibration import fit_calibration, span_outcomes, with_negative_queries
from .metrics import (
    expected_calibration_error,
    greedy_matches,
    grounding_metrics,
    rejection_aware_recall,
    relevance_metrics,
    sentence_binding,
)
from .modeling_tsgv import TSGVForGrounding
from .pipeline_tsgv import TemporalSentenceGroundingPipeline
from .qvhighlights_metrics import CLIP_LENGTH_S, MAX_PREDICTED_WINDOWS, mean_average_precision, qvhighlights_metrics
from .reporting import write_predictions
from .video import VideoDecodeError

logger = logging.getLogger(__name__)
KEEP_SCORE = 0.5  # the span score a user keeps answers above, in the kept-span figures (`kept_span_figures`)


def serving_pipeline(model, processor, device=None) -> TemporalSentenceGroundingPipeline:
    """The grounding pipeline on `model` (in eval mode) and `processor`, on `device` (default: the model's)."""
    device = device if device is not None else next(model.parameters()).device
    return TemporalSentenceGroundingPipeline(model=model, processor=processor, device=device)


def score_as_served(
    pipe,
    rows: list[dict],
    top_k: int,
    batch_size: int = 1,
    process_index: int = 0,
    num_processes: int = 1,
) -> tuple[list[dict], list[dict]]:
    """Ground every query of this process's share of `rows` (rows `process_index`, `process_index` +
    `num_processes`, ...) with `pipe`, as a user's call would.

    Args:
        pipe: a `TemporalSentenceGroundingPipeline`.
        rows: one per video, with `video_id`, `video_path`, `duration_s` (the annotation's, seconds), `sentences`,
            `query_ids`, `spans_s` (ground-truth moments per query, seconds).
        top_k: spans kept per query. batch_size: one-window videos per forward pass.
    Returns:
        (records, failures): one record per query of the share, the lines of `predictions_<split>.jsonl`
        (`video_id`, `query_id`, `query`, `duration_s`, `gt_windows_s`, `pred_spans_s` [[start_s, end_s, score]],
        `windows`; `decode_error` and no spans for a video that could not be decoded; `relevance` with a relevance
        head, `absent` for a query known not to occur; for a query with clip ratings
        (QVHighlights) `gt_ratings_s` and `pred_saliency_clips`, the saliency curve per 2-s clip) with `order`
        (row, query) for sorting after a gather; and {"video_id", "video_path", "error"} per video that failed.
    """
    share = [(index, row) for index, row in enumerate(rows) if index % num_processes == process_index]
    inputs = [{"video": str(row["video_path"]), "queries": list(row["sentences"])} for _, row in share]
    records, failures = [], []
    window_s = pipe.model.config.inference_window_s
    call = {"top_k": top_k, "batch_size": batch_size, "decode_errors": "return", "return_timeline": True}
    answers = pipe(inputs, **call) if inputs else []
    for (index, row), answer in zip(share, answers):
        error = f"{type(answer).__name__}: {answer}" if isinstance(answer, VideoDecodeError) else None
        if error:
            failures.append({"video_id": str(row["video_id"]), "video_path": row["video_path"], "error": error})
            logger.warning(f"cannot decode {row['video_path']}: {answer}")
        for q, sentence in enumerate(row["sentences"]):
            spans = [] if error else [[s["start"], s["end"], s["score"]] for s in answer[q]["spans"]]
            record = {
                "video_id": row["video_id"],
                "query_id": row["query_ids"][q],
                "query": sentence,
                "duration_s": row["duration_s"],
                "gt_windows_s": [[float(s), float(e)] for s, e in row["spans_s"][q]],
                "pred_spans_s": spans,
                "windows": "several" if row["duration_s"] > window_s else "one",
                "order": (index, q),
            }
            if error:
                record["decode_error"] = error
            if (row.get("absent") or [False] * len(row["sentences"]))[q]:
                record["absent"] = True  # known not to occur: right when rejected
            if not error and "relevance" in answer[q]:
                record["relevance"] = round(answer[q]["relevance"], 4)
            ratings = (row.get("saliency_s") or [[]] * len(row["sentences"]))[q]
            if ratings:
                record["gt_ratings_s"] = [list(map(float, clip)) for clip in ratings]
                record["pred_saliency_clips"] = [] if error else saliency_per_clip(answer[q], row["duration_s"])
            records.append(record)
    return records, failures


def calibrate_on_split(
    pipe, rows: list[dict], top_k: int, batch_size: int = 1, process_index: int = 0, world_size: int = 1, seed: int = 0
) -> dict:
    """Fit the model's score calibrations (`calibration.fit_calibration`) on one split scored as served, and set them
    in `pipe.model.config` (`span_calibration`, `relevance_calibration`; None where there was too little to fit).

    Args: pipe: a `TemporalSentenceGroundingPipeline`; rows: the split's videos (as for `score_as_served`), each
        given one negative query (`calibration.with_negative_queries`, drawn with `seed`) unless it has absent ones;
        top_k: spans per query; batch_size; process_index / world_size: this process's share, gathered.
    Returns: the fit's figures (`fit_calibration`), for the run's report.
    """
    config = pipe.model.config
    config.span_calibration = config.relevance_calibration = None  # scored raw: the fit maps raw logits
    rows = with_negative_queries(rows, seed) if config.relevance_head else rows
    records, _ = score_as_served(pipe, rows, top_k, batch_size, process_index, world_size)
    fit = fit_calibration(gather_records(records, world_size))
    config.span_calibration, config.relevance_calibration = fit["span_calibration"], fit["relevance_calibration"]
    return fit


def saliency_per_clip(timeline: dict, duration_s: float, clip_s: float = CLIP_LENGTH_S) -> list[float]:
    """The pipeline's saliency curve (`return_timeline=True`) read at the centre of each `clip_s` clip of the video
    (int(duration / clip_s) clips, as QVHighlights counts them), linearly interpolated between time steps."""
    centres_s = (np.arange(int(duration_s / clip_s)) + 0.5) * clip_s
    return np.interp(centres_s, timeline["times_s"], timeline["saliency"]).round(4).tolist()


def official_format(records: list[dict]) -> tuple[list[dict], list[dict]]:
    """Served records -> (predictions, ground truth) in QVHighlights' evaluator format (`qvhighlights_metrics`):
    windows and, for rated queries, saliency per clip and the annotators' ratings."""
    predictions, ground_truth = [], []
    for qid, record in enumerate(records):
        windows = record["pred_spans_s"] or [[0.0, 0.0, 0.0]]  # an undecodable video answers nothing: a miss
        prediction = {"qid": qid, "pred_relevant_windows": windows[:MAX_PREDICTED_WINDOWS]}
        truth = {"qid": qid, "relevant_windows": record["gt_windows_s"], "duration": record["duration_s"]}
        if "gt_ratings_s" in record:
            clips = int(record["duration_s"] / CLIP_LENGTH_S)
            prediction["pred_saliency_scores"] = record["pred_saliency_clips"] or [0.0] * clips
            truth["relevant_clip_ids"] = [int(round(clip[0] / CLIP_LENGTH_S)) for clip in record["gt_ratings_s"]]
            truth["saliency_scores"] = [clip[2:] for clip in record["gt_ratings_s"]]
        predictions.append(prediction)
        ground_truth.append(truth)
    return predictions, ground_truth


def moment_and_highlight_metrics(records: list[dict], split: str) -> dict:
    """`<split>_mAP` (moment-retrieval mAP over IoU 0.5:0.05:0.95 of the top 10 windows, QVHighlights' definition)
    for every split with moments; where every query is rated (QVHighlights), the official evaluator's headline
    figures too (`<split>_MR-full-mAP`, `<split>_MR-short-mAP`, ..., `<split>_HL-min-VeryGood-mAP`,
    `<split>_HL-min-VeryGood-Hit1`, ...)."""
    scored = [r for r in records if r["gt_windows_s"]]
    if not scored:
        return {}
    predictions, ground_truth = official_format(scored)
    out = {f"{split}_mAP": mean_average_precision(predictions, ground_truth)["average"]}
    if all("gt_ratings_s" in r for r in scored):
        brief = qvhighlights_metrics(predictions, ground_truth)["brief"]
        out.update({f"{split}_{name}": value for name, value in brief.items()})
    return out


def gather_records(records: list, world_size: int) -> list:
    """`records` of every process (a collective when `world_size` > 1), sorted by their `order`."""
    if world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
        everyone = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(everyone, records)
        records = [record for rank in everyone for record in rank]
    return sorted(records, key=lambda record: record["order"])


def served_metrics(records: list[dict], split: str, threshold: float = 0.5) -> dict:
    """`<split>_` metrics of served records: R1/R5 @ 0.3/0.5/0.7 and mIoU (%) over the queries with moments (a
    video that failed to decode answers nothing: its queries are misses), `num_queries`, binding, and how they
    were scored (`scored_by`, videos longer than the serving window); MR mAP (and QVHighlights' figures on rated
    splits); with relevance scores and absent queries, the relevance figures at `threshold`."""
    scored = [r for r in records if r["gt_windows_s"]]
    metrics = grounding_metrics([np.asarray(r["pred_spans_s"]) for r in scored], [r["gt_windows_s"] for r in scored])
    out = {f"{split}_{key}": value for key, value in metrics.items()}
    out[f"{split}_num_queries"] = float(len(scored))
    out[f"{split}_binding"], out[f"{split}_binding_queries"] = sentence_binding(records)
    out[f"{split}_windowed_videos"] = float(len({r["video_id"] for r in records if r["windows"] == "several"}))
    out[f"{split}_scored_by"] = "the grounding pipeline on each video file (as served)"
    out.update(moment_and_highlight_metrics(records, split))
    out.update(kept_span_figures(records, split))
    out.update(relevance_figures(records, split, threshold))
    return out


def matched_windows(record: dict, min_score: float, iou: float = 0.5) -> tuple[int, int]:
    """(spans scoring >= `min_score`, moments of the query they find, one span per moment: `greedy_matches`)."""
    kept = [span for span in record["pred_spans_s"] if span[2] >= min_score]
    return len(kept), int(greedy_matches(kept, record["gt_windows_s"], iou).sum())


def kept_span_figures(records: list[dict], split: str, min_score: float = KEEP_SCORE) -> dict:
    """What a user who keeps every span scoring >= `min_score` gets, over the queries with moments, in percent:
    `<split>_kept_precision` (kept spans that find a moment of their query, one span per moment) and
    `_kept_recall` (moments found); `<split>_span_ECE`, the calibration error of all ranked spans' scores (a span is
    right as `calibration.span_outcomes` judges it). For the queries with several moments (`<split>_multi_queries`
    of them): `<split>_multi_mAP` (QVHighlights' MR mAP), `_multi_recall` (their moments found by kept spans) and
    `_multi_spans_kept` (kept spans per query, on average)."""
    scored = [r for r in records if r["gt_windows_s"]]
    if not scored:
        return {}
    counts = np.array([matched_windows(r, min_score) for r in scored])  # (N, 2): kept, found
    moments = np.array([len(r["gt_windows_s"]) for r in scored])
    scores, right = span_outcomes(scored)
    out = {
        f"{split}_kept_precision": float(100 * counts[:, 1].sum() / max(counts[:, 0].sum(), 1)),
        f"{split}_kept_recall": float(100 * counts[:, 1].sum() / moments.sum()),
        f"{split}_span_ECE": expected_calibration_error(scores, right),
    }
    several = moments >= 2
    out[f"{split}_multi_queries"] = float(several.sum())
    if several.any():
        predictions, ground_truth = official_format([r for r, many in zip(scored, several) if many])
        out[f"{split}_multi_mAP"] = mean_average_precision(predictions, ground_truth)["average"]
        out[f"{split}_multi_recall"] = float(100 * counts[several, 1].sum() / moments[several].sum())
        out[f"{split}_multi_spans_kept"] = float(counts[several, 0].mean())
    return out


def relevance_figures(records: list[dict], split: str, threshold: float) -> dict:
    """With relevance scores and absent queries in the split: `<split>_relevance_AUROC` / `_accuracy` / `_ECE`
    (present vs absent, `metrics.relevance_metrics`), `<split>_absent_queries`, and `<split>_R1@0.5_with_absent`
    (RaTSG's rule: an absent query is right when rejected)."""
    judged = [r for r in records if "relevance" in r and (r.get("absent") or r["gt_windows_s"])]
    if not any(r.get("absent") for r in judged):
        return {}
    figures = relevance_metrics([r["relevance"] for r in judged], [not r.get("absent") for r in judged], threshold)
    out = {f"{split}_{name}": value for name, value in figures.items()}
    out[f"{split}_absent_queries"] = float(sum(1 for r in judged if r.get("absent")))
    out[f"{split}_R1@0.5_with_absent"] = rejection_aware_recall(judged, threshold)
    return out


def calibrate_scores(run) -> dict:
    """After training (`--calibrate_scores`, a validation split with moments): fit the span-score and relevance
    calibrations on the validation split scored as served (`evaluation.calibrate_on_split`), save them in the output
    folder's config.json, and return their figures (`calibration_*`: the fitted [slope, intercept] and the
    in-sample ECE before / after, percent). Nothing when there is no training or no validation split."""
    data_args, training_args = run.data_args, run.training_args
    trained = "train" in run.splits and not data_args.evaluate_only
    if not (data_args.calibrate_scores and trained and run.eval_split in run.splits):
        return {}
    model = serving_model(run)
    rows = list(run.splits[run.eval_split].with_format(None))
    fit = calibrate_on_split(
        serving_pipeline(model, run.processor, training_args.device), rows, max(model.config.max_spans, 10),
        training_args.per_device_eval_batch_size, training_args.process_index, training_args.world_size,
        training_args.seed,
    )  # fmt: skip
    run.model.config.span_calibration = model.config.span_calibration  # the trained model and a loaded copy alike
    run.model.config.relevance_calibration = model.config.relevance_calibration
    if run.trainer.is_world_process_zero():
        model.config.save_pretrained(training_args.output_dir)
    run.trainer.accelerator.wait_for_everyone()  # a DeepSpeed run's evaluation loads the folder again
    logger.info(
        f"calibrated on {run.eval_split}: span scores ECE {fit['span_ECE_before']:.1f} -> {fit['span_ECE_after']:.1f}, "
        f"relevance ECE {fit['relevance_ECE_before']:.1f} -> {fit['relevance_ECE_after']:.1f} (in-sample, %)"
    )
    return {f"calibration_{key}": value for key, value in fit.items()} | {"calibration_split": run.eval_split}


def evaluate_splits(run) -> dict:
    """Test metrics per evaluated split, scored as the model is served (`evaluation.score_as_served`: the grounding
    pipeline on each test video file, longer videos in windows), each process its share of the videos; failed
    videos / queries (counted as misses), binding; writes predictions_<split>.jsonl. Returns the metrics."""
    trainer, training_args = run.trainer, run.training_args
    if not run.eval_splits:
        return {}
    model = serving_model(run)
    pipe = serving_pipeline(model, run.processor, training_args.device)
    metrics = {}
    for split in run.eval_splits:
        rows = list(run.splits[split].with_format(None))
        records, failures = score_as_served(  # the top 10 at least: QVHighlights' mAP reads 10 windows per query
            pipe, rows, max(model.config.max_spans, 10), training_args.per_device_eval_batch_size,
            training_args.process_index, training_args.world_size,
        )  # fmt: skip
        trainer.failures.record(split, failures)
        records = gather_records(records, training_args.world_size)
        metrics.update(served_metrics(records, split, model.config.relevance_threshold))
        if not metrics[f"{split}_num_queries"]:
            logger.warning(f"[{split}] no query has a labelled moment: its metrics are NaN (predictions are written)")
        failed = {f["video_id"] for f in trainer.gathered_failures() if f["split"] == split}
        if failed:
            lost = sum(1 for record in records if str(record["video_id"]) in failed)
            metrics[f"{split}_failed_videos"], metrics[f"{split}_failed_queries"] = len(failed), lost
            logger.warning(
                f"[{split}] {len(failed)} video(s) failed to decode; their {lost} queries are counted as misses "
                f"(in every metric's denominator)"
            )
        if trainer.is_world_process_zero():
            write_predictions(os.path.join(training_args.output_dir, f"predictions_{split}.jsonl"), records)
    return metrics


def serving_model(run) -> TSGVForGrounding:
    """The model the test splits are scored with: the trained one in memory (it is what was saved), in eval mode;
    under DeepSpeed the saved folder loaded on this process's device without the engine (ZeRO-3 holds only a
    shard of each weight in memory)."""
    model = run.trainer.model
    if not run.trainer.is_deepspeed_enabled:
        return model.eval()
    from transformers.integrations import set_hf_deepspeed_config, unset_hf_deepspeed_config

    folder = run.training_args.output_dir if not run.data_args.evaluate_only else run.model_args.model_name_or_path
    run.trainer.accelerator.wait_for_everyone()  # the main process has written the folder
    unset_hf_deepspeed_config()  # else from_pretrained would partition the copy again (zero.Init)
    try:
        model = TSGVForGrounding.from_pretrained(folder)
    finally:
        set_hf_deepspeed_config(run.training_args.hf_deepspeed_config)
    return model.to(run.training_args.device).eval()


__all__ = [
    "calibrate_scores",
    "evaluate_splits",
    "serving_model",
    "serving_pipeline",
    "score_as_served",
    "gather_records",
    "served_metrics",
    "saliency_per_clip",
    "moment_and_highlight_metrics",
    "kept_span_figures",
    "calibrate_on_split",
    "matched_windows",
]
