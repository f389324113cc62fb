"""Per action of the synthetic world: how well a trained model grounds its sentences (R1@0.5, mIoU).

Joins a run's `predictions_<split>.jsonl` with the world's annotations (each query's action) and prints one row per
action, so an action the model never gets right stands out.

    python benchmarks/per_action.py outputs/tsgv-synthetic [--synthetic-dir outputs/synthetic/easy] \
        [--splits test test_novel]
"""

import argparse
import json
from pathlib import Path

from modeling_tsgv.metrics import grounding_metrics
from modeling_tsgv.synthetic import ACTIONS


def per_action(output_dir: Path, world: Path, splits) -> dict[str, dict]:
    """{action: {"queries", "R1@0.5", "mIoU"}} over the given splits."""
    groups = {}
    for split in splits:
        actions = {}
        for line in (world / "annotations" / f"{split}.jsonl").read_text().splitlines():
            row = json.loads(line)
            actions[(row["video_id"], row["sentence"])] = row["action"]
        for line in (output_dir / f"predictions_{split}.jsonl").read_text().splitlines():
            record = json.loads(line)
            groups.setdefault(actions[(record["video_id"], record["query"])], []).append(record)
    table = {}
    for action in ACTIONS:
        records = groups.get(action, [])
        if records:
            metrics = grounding_metrics([r["pred_spans_s"] for r in records], [r["gt_windows_s"] for r in records])
            table[action] = {"queries": len(records), "R1@0.5": metrics["R1@0.5"], "mIoU": metrics["mIoU"]}
    return table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", help="a run_grounding.py output folder with predictions_<split>.jsonl")
    parser.add_argument("--synthetic-dir", default="outputs/synthetic/easy", help="the world it was evaluated on")
    parser.add_argument("--splits", nargs="+", default=["test", "test_novel"])
    args = parser.parse_args(argv)
    table = per_action(Path(args.output_dir), Path(args.synthetic_dir), args.splits)
    print(f"action | queries ({' + '.join(args.splits)}) | R1@0.5 | mIoU")
    print("---|---:|---:|---:")
    for action, row in table.items():
        print(f"{action} | {row['queries']} | {row['R1@0.5']:.1f} | {row['mIoU']:.1f}")


if __name__ == "__main__":
    main()
