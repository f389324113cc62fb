"""Per action of the synthetic world: how well a trained model grounds its sentences (R1@0.5, mIoU).

Joins a run's `predictions_<split>.jsonl` with the world's annotations (each query's action) and prints one row per
action, so an action the model never gets right stands out; with several runs, one R1@0.5 column each (e.g. frozen
beside SCADA on the same world). Absent queries (sentences built not to occur: no ground-truth window) have no
action and are left out, with their count printed.

    python benchmarks/per_action.py outputs/tsgv-synthetic [more run folders] \
        [--synthetic-dir outputs/synthetic/easy] [--splits test test_novel]
"""

import argparse
import json
from pathlib import Path

from modeling_tsgv.metrics import grounding_metrics
from modeling_tsgv.synthetic import ACTIONS


def per_action(output_dir: Path, world: Path, splits) -> dict[str, dict]:
    """{action: {"queries", "R1@0.5", "mIoU"}} (percent) over the given splits' present queries, and under the key
    "absent" {"queries": how many absent queries were left out}."""
    groups, absent = {}, 0
    for split in splits:
        actions = {}
        for line in (world / "annotations" / f"{split}.jsonl").read_text().splitlines():
            row = json.loads(line)
            actions[(row["video_id"], row["sentence"])] = row["action"]
        for line in (output_dir / f"predictions_{split}.jsonl").read_text().splitlines():
            record = json.loads(line)
            if not record["gt_windows_s"]:
                absent += 1
                continue
            groups.setdefault(actions[(record["video_id"], record["query"])], []).append(record)
    table = {}
    for action in ACTIONS:
        records = groups.get(action, [])
        if records:
            metrics = grounding_metrics([r["pred_spans_s"] for r in records], [r["gt_windows_s"] for r in records])
            table[action] = {"queries": len(records), "R1@0.5": metrics["R1@0.5"], "mIoU": metrics["mIoU"]}
    table["absent"] = {"queries": absent}
    return table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "output_dirs", nargs="+", help="run_grounding.py output folders with predictions_<split>.jsonl"
    )
    parser.add_argument("--synthetic-dir", default="outputs/synthetic/easy", help="the world it was evaluated on")
    parser.add_argument("--splits", nargs="+", default=["test", "test_novel"])
    args = parser.parse_args(argv)
    for folder in args.output_dirs:
        for split in args.splits:
            for path in (
                Path(folder) / f"predictions_{split}.jsonl",
                Path(args.synthetic_dir) / "annotations" / f"{split}.jsonl",
            ):
                if not path.is_file():
                    parser.error(
                        f"{path}: missing (a run folder of run_grounding.py, evaluated on --splits, and its world)"
                    )
    tables = [per_action(Path(folder), Path(args.synthetic_dir), args.splits) for folder in args.output_dirs]
    names = [Path(folder).name for folder in args.output_dirs]
    print(f"action | queries ({' + '.join(args.splits)}) | " + " | ".join(f"R1@0.5 {name}" for name in names))
    print("---|---:|" + "|".join("---:" for _ in names))
    for action, row in tables[0].items():
        if action != "absent":
            cells = [f"{table[action]['R1@0.5']:.1f}" if action in table else "—" for table in tables]
            print(f"{action} | {row['queries']} | " + " | ".join(cells))
    print(f"\n{tables[0]['absent']['queries']} absent queries left out (no action, no window)")


if __name__ == "__main__":
    main()
