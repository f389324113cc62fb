"""Clip action probe: is "which actions occur in this clip" readable from a backbone's pooled tokens?

The recognition-style stage 1 (`--objective recognition`) trains VideoMAE's mean-pooled tokens to say which actions
occur in a clip, and stays near chance on actions (held-out mAP 0.17, prevalence 0.11). This asks whether the clip
labels are learnable from such features at all: for each backbone it pools the last hidden states of every clip (mean
over tokens, max over tokens, or both), fits one logistic regression per action label on the training clips and
scores mean average precision on the held-out clips — the same clips, labels (`stage1_recognition.clip_labels`) and
metric as the recognition phase. A backbone whose features give a high probe mAP makes the task learnable from them;
if the token-target backbone (told per token what acts) scores high and the recognition one low, the recognition
phase failed to find the signal, not the labels.

    python research/clip_action_probe.py --stage1_dir outputs/stage1-recognition-long [--train_clips 6000]

`--stage1_dir` is a stage-1 output folder whose frame caches are built (`cache/train`, `cache/held_out`, as any
`python -m modeling_tsgv.synthetic.pretraining` run leaves them). Prints a markdown table; `--json` writes it too.
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.preprocessing import StandardScaler
from transformers import VideoMAEConfig, VideoMAEModel, VideoMAEVideoProcessor

from modeling_tsgv.configuration_tsgv import builtin_backbone_path
from modeling_tsgv.processing_tsgv import video_processor_settings
from modeling_tsgv.synthetic.pretraining import ClipDataset, FrameCache
from modeling_tsgv.synthetic.stage1_recognition import clip_labels
from modeling_tsgv.synthetic.world import ACTIONS


def pooled_features(backbone: VideoMAEModel, clips: ClipDataset, indices, batch_size: int = 64):
    """(len(indices), 2 D) float64: the mean and the max over each clip's last hidden states; and the clips'
    (len(indices), len(ACTIONS)) action labels."""
    feats, labels = [], []
    backbone.eval()
    with torch.no_grad():
        for start in range(0, len(indices), batch_size):
            items = [clips[int(i)] for i in indices[start : start + batch_size]]
            hidden = backbone(torch.stack([item["pixel_values"] for item in items])).last_hidden_state  # (B, N, D)
            feats.append(torch.cat([hidden.mean(1), hidden.amax(1)], -1).double())
            labels += [clip_labels(item["colour"], item["shape"], item["action"])[: len(ACTIONS)] for item in items]
    return torch.cat(feats).numpy(), torch.stack(labels).numpy()


def action_map(train_x, train_y, test_x, test_y) -> float:
    """Mean average precision over the action labels present in both sets, one logistic regression each."""
    scaler = StandardScaler().fit(train_x)
    train_x, test_x = scaler.transform(train_x), scaler.transform(test_x)
    scores = []
    for c in range(train_y.shape[1]):
        if 0 < train_y[:, c].sum() < len(train_y) and 0 < test_y[:, c].sum() < len(test_y):
            fit = LogisticRegression(C=0.1, max_iter=2000).fit(train_x, train_y[:, c])
            scores.append(average_precision_score(test_y[:, c], fit.decision_function(test_x)))
    return float(np.mean(scores))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage1_dir", required=True, help="A stage-1 output folder with built frame caches.")
    parser.add_argument("--train_clips", type=int, default=6000, help="Training clips the probes are fitted on.")
    parser.add_argument("--backbones", nargs="+", default=["synthetic-tiny", "synthetic-tiny-recognition", "random"])
    parser.add_argument("--json", help="Also write the rows here.")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    caches = {split: FrameCache(Path(args.stage1_dir) / "cache" / split) for split in ("train", "held_out")}
    rows = []
    for name in args.backbones:
        # a saved folder, a built-in name, or "random" (a random-init backbone of the token-target config)
        path = name if Path(name).is_dir() else builtin_backbone_path("synthetic-tiny" if name == "random" else name)
        config = VideoMAEConfig.from_pretrained(path)
        backbone = VideoMAEModel(config) if name == "random" else VideoMAEModel.from_pretrained(path)
        processor = VideoMAEVideoProcessor(**video_processor_settings(config.image_size))
        clips = {
            split: ClipDataset(
                cache, config.num_frames, config.tubelet_size, processor.image_mean, processor.image_std
            )
            for split, cache in caches.items()
        }
        pick = np.random.default_rng(0).choice(len(clips["train"]), args.train_clips, replace=False)
        train_x, train_y = pooled_features(backbone, clips["train"], pick)
        test_x, test_y = pooled_features(backbone, clips["held_out"], np.arange(len(clips["held_out"])))
        width = train_x.shape[1] // 2
        row = {"backbone": name, "prevalence": round(float(test_y.mean()), 3)}
        for pool, cols in (("mean", slice(0, width)), ("max", slice(width, None)), ("mean+max", slice(None))):
            row[f"{pool} pooling"] = round(action_map(train_x[:, cols], train_y, test_x[:, cols], test_y), 3)
        rows.append(row)
        print(row, flush=True)
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(str(row[k]) for k in keys) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps({"command": vars(args), "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
