"""Stage-1 compute against what it buys: read-outs and the default grounding job's figures, per stage-1 backbone.

For each backbone folder (a stage-1 `backbone/` or `snapshots/step-N/`, or the shipped one) this runs the default
job on it — `python run_grounding.py --video_model FOLDER` with the given preset, nothing else changed — and
collects the stage-1 steps, training time and read-outs (its `stage1.json`) with test / test_novel R1@0.5, binding
and the prior. Rows go to a JSON file (one per folder and preset) and a run whose row exists is skipped, so the curve
grows one point at a time. A random-init row (`--video_model tiny`) is the zero point.

    python benchmarks/stage1_scaling.py outputs/stage1/snapshots/step-* outputs/stage1/backbone --with-random-init \
        [--preset easy] [--json benchmarks/results/stage1_scaling.json] [-- more run_grounding.py flags]
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COLUMNS = ("test_R1@0.5", "test_prior_R1@0.5", "test_novel_R1@0.5", "test_novel_prior_R1@0.5")
BINDING = ("test_binding", "test_novel_binding")


def run_default_job(video_model: str, preset: str, extra: list[str]) -> tuple[dict, float]:
    """all_results.json of the default job on `video_model` and its wall time in seconds."""
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, str(REPO / "run_grounding.py"), "--video_model", video_model, "--output_dir", out]
        command += ["--synthetic_preset", preset, "--synthetic_dir", str(REPO / "outputs" / "synthetic" / preset)]
        start_s = time.perf_counter()
        subprocess.run(command + extra, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
        wall_s = time.perf_counter() - start_s
        return json.loads((Path(out) / "all_results.json").read_text()), wall_s


def row_for(folder: str, preset: str, extra: list[str], finished: tuple[dict, float] | None = None) -> dict:
    """One curve point: stage-1 record (none for a random-init size) and the job's figures (`finished`: the
    all_results.json and wall seconds of a job already run on `folder`, instead of running it)."""
    record_path = Path(folder) / "stage1.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    results, wall_s = finished or run_default_job(folder, preset, extra)
    return {
        "backbone": folder,
        "preset": preset,
        "extra_flags": " ".join(extra),
        "stage1_steps": record.get("steps", 0),
        "stage1_clips_per_step": record.get("clips_per_step", 0),
        "stage1_train_minutes": round(record.get("train_seconds", 0.0) / 60, 1),
        "stage1_hardware": record.get("hardware", ""),
        "readouts": record.get("readouts", {}),
        "job_wall_s": round(wall_s, 1),
        **{key: results.get(key) for key in COLUMNS + BINDING},
    }


def print_table(rows: list[dict]) -> None:
    print("preset | flags | stage-1 steps x clips | stage-1 minutes | action / motion read-out | test R1@0.5 (prior) | "
          "test_novel R1@0.5 (prior) | binding test / test_novel | job wall")  # fmt: skip
    print("---|---|---:|---:|---:|---:|---:|---:|---:")
    for row in sorted(rows, key=lambda r: (r["preset"], r.get("extra_flags", ""), r["stage1_steps"])):
        readouts = row["readouts"]
        readout = (
            f"{readouts['action_balanced_accuracy']:.2f} / {readouts['motion_balanced_accuracy']:.2f}"
            if readouts
            else "-"
        )
        print(
            f"{row['preset']} | {row.get('extra_flags') or '-'} | {row['stage1_steps']:,} x {row['stage1_clips_per_step']} | "
            f"{row['stage1_train_minutes']:g} | {readout} | {row['test_R1@0.5']:.2f} ({row['test_prior_R1@0.5']:.2f}) | "
            f"{row['test_novel_R1@0.5']:.2f} ({row['test_novel_prior_R1@0.5']:.2f}) | "
            f"{row['test_binding']:.1f} / {row['test_novel_binding']:.1f} | {row['job_wall_s'] / 60:.1f} min"
        )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backbones", nargs="*", help="stage-1 backbone folders")
    parser.add_argument("--with-random-init", action="store_true", help="add the random-init row (--video_model tiny)")
    parser.add_argument("--preset", default="easy", help="synthetic world preset of the default job")
    parser.add_argument("--json", default=str(REPO / "benchmarks" / "results" / "stage1_scaling.json"))
    argv = sys.argv[1:] if argv is None else list(argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []  # after --: more run_grounding.py flags
    parser.add_argument(
        "--from-output",
        nargs=2,
        metavar=("RUN_DIR", "WALL_S"),
        help="take the row of the one backbone given from a default job already run into RUN_DIR (its "
        "all_results.json; WALL_S its wall time in seconds) instead of running it again",
    )
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    path = Path(args.json)
    rows = json.loads(path.read_text()) if path.is_file() else []
    folders = (["tiny"] if args.with_random_init else []) + args.backbones
    for folder in folders:
        done = ((r["backbone"], r["preset"], r.get("extra_flags", "")) for r in rows)
        if (folder, args.preset, " ".join(extra)) in done:
            continue
        print(f"default job ({args.preset}) on {folder} ...", flush=True)
        finished = None
        if args.from_output:
            run_dir, wall_s = args.from_output
            finished = (json.loads((Path(run_dir) / "all_results.json").read_text()), float(wall_s))
        rows.append(row_for(folder, args.preset, extra, finished))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rows, indent=1) + "\n")
    print_table(rows)


if __name__ == "__main__":
    main()
