"""The default job (or any run_grounding.py command) over several seeds: mean ± std of its figures.

    python benchmarks/seed_spread.py --seeds 42 1 2 --out outputs/seeds [-- run_grounding.py arguments...]

Each seed runs `python run_grounding.py --seed S --output_dir OUT/seed-S <arguments>` in its own process (a run
already finished there is read, not repeated), then one table: per figure of `all_results.json`, the mean ± std over
the seeds and the binomial standard error of one seed's percentage (sqrt(p (100 - p) / n), n the split's scored
queries) — a difference between two arms is called one only when it exceeds both. Writes OUT/spread.json.
"""

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FIGURES = (
    "R1@0.5", "R1@0.7", "mIoU", "mAP", "relevance_AUROC", "relevance_accuracy", "relevance_ECE", "R1@0.5_with_absent",
    "span_ECE", "kept_precision", "kept_recall", "multi_mAP", "multi_recall",
)  # fmt: skip
COUNTS = {"relevance": "absent_queries", "multi": "multi_queries"}  # the n of a figure's standard error


def run_seed(seed: int, out: Path, arguments: list[str]) -> dict:
    """all_results.json of `run_grounding.py --seed seed` in out/seed-<seed> (run unless it is there)."""
    folder = out / f"seed-{seed}"
    results = folder / "all_results.json"
    if not results.is_file():
        command = [sys.executable, str(ROOT / "run_grounding.py"), "--seed", str(seed), "--output_dir", str(folder)]
        subprocess.run([*command, "--overwrite_output_dir", *arguments], cwd=ROOT, check=True)
    return json.loads(results.read_text())


def spread(runs: dict[int, dict], splits=("test", "test_novel")) -> list[dict]:
    """Per split and figure present in every run: mean, std (ddof 1), the seeds' values and one seed's binomial
    standard error in points (percentages only; NaN for calibration errors, which are no proportion)."""
    rows = []
    for split in splits:
        for figure in FIGURES:
            key = f"{split}_{figure}"
            values = [r[key] for r in runs.values() if key in r and r[key] == r[key]]
            if len(values) != len(runs):
                continue
            count_key = next((c for prefix, c in COUNTS.items() if figure.startswith(prefix)), "num_queries")
            n = float(np.mean([r.get(f"{split}_{count_key}", 0) for r in runs.values()]))
            if figure.startswith("relevance") or figure == "R1@0.5_with_absent":
                n += float(np.mean([r.get(f"{split}_num_queries", 0) for r in runs.values()]))  # present and absent
            mean = float(np.mean(values))
            proportion = not figure.endswith(("ECE", "mAP", "mIoU", "AUROC"))
            se = math.sqrt(mean * (100 - mean) / n) if proportion and n and 0 <= mean <= 100 else float("nan")
            std = float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
            rows.append({"split": split, "figure": figure, "mean": mean, "std": std, "binomial_se": se,
                         "values": values, "n": n})  # fmt: skip
    return rows


def table(rows: list[dict], seeds) -> str:
    """Markdown: split | figure | mean ± std | binomial SE | per-seed values."""
    lines = [f"split | figure | mean ± std (seeds {', '.join(map(str, seeds))}) | binomial SE | values",
             "---|---|---:|---:|---"]  # fmt: skip
    for row in rows:
        se = "" if math.isnan(row["binomial_se"]) else f"{row['binomial_se']:.2f}"
        values = " / ".join(f"{v:.2f}" for v in row["values"])
        lines.append(f"{row['split']} | {row['figure']} | {row['mean']:.2f} ± {row['std']:.2f} | {se} | {values}")
    return "\n".join(lines)


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2])
    parser.add_argument("--out", default="outputs/seeds", help="one output folder per seed under this")
    args, arguments = parser.parse_known_args(argv)
    arguments = [a for a in arguments if a != "--"]
    out = Path(args.out)
    runs = {seed: run_seed(seed, out, arguments) for seed in args.seeds}
    rows = spread(runs)
    (out / "spread.json").write_text(json.dumps({"arguments": arguments, "rows": rows}, indent=1) + "\n")
    print(table(rows, args.seeds))
    return rows


if __name__ == "__main__":
    main()
