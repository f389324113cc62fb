"""`evaluate` wrapper of `modeling_tsgv.metrics.grounding_metrics` (R1/R5 @ IoU 0.3/0.5/0.7 and mIoU, in %)."""

import datasets
import evaluate

from modeling_tsgv.metrics import DEFAULT_IOU_THRESHOLDS, DEFAULT_RANKS, grounding_metrics

_DESCRIPTION = """Temporal sentence grounding recall: Rk@m is the share of queries (%) where one of the top-k predicted
spans reaches temporal IoU >= m with a ground-truth window (the best-matching one when there are several);
mIoU is the mean IoU (%) of the top-1 span."""

_KWARGS_DESCRIPTION = """
Args:
    predictions: per query, a ranked list of [start_s, end_s] spans (best first).
    references: per query, a list of ground-truth [start_s, end_s] windows.
    iou_thresholds: IoU thresholds, default (0.3, 0.5, 0.7).
    ranks: recall ranks k, default (1, 5).
Returns:
    dict with "R1@0.3", ..., "R5@0.7", "mIoU" (percent).
Example:
    >>> metric = evaluate.load("modeling_tsgv/evaluate_metric/tsgv_grounding.py")
    >>> metric.compute(predictions=[[[0.0, 4.0]]], references=[[[0.0, 5.0]]])["R1@0.7"]
    100.0
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class TsgvGrounding(evaluate.Metric):
    def _info(self):
        spans = datasets.Sequence(datasets.Sequence(datasets.Value("float64")))
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": spans, "references": spans}),
        )

    def _compute(self, predictions, references, iou_thresholds=DEFAULT_IOU_THRESHOLDS, ranks=DEFAULT_RANKS):
        return grounding_metrics(predictions, references, iou_thresholds=iou_thresholds, ranks=ranks)
