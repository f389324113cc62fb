"""The "prior" baseline: the best single fixed span (normalised time) learned from training annotations, scored on test.

    python benchmarks/prior_baseline.py [--synthetic-num-videos 1000] [--real-data ../shared/data/real]

Every query gets the same answer whatever the video or sentence: the floor every trained model must clear by a wide
margin. Rows: the built-in synthetic world, both presets (generated if missing, seed 0) and, when the real annotation
files are present, Charades-STA, ActivityNet Captions (val_1 as test) and TACoS.
"""

import argparse
import logging
from pathlib import Path

from modeling_tsgv.annotations import read_annotations
from modeling_tsgv.baselines import prior_baseline
from modeling_tsgv.synthetic import PRESETS, generate

KEYS = ["R1@0.3", "R1@0.5", "R1@0.7", "mIoU"]


def datasets_to_score(args):
    """(name, train rows, test rows) for each available dataset."""
    for preset in PRESETS:  # the worlds run_grounding.py makes: outputs/synthetic/<preset>, seed 0
        synthetic = Path(args.synthetic_root) / preset
        generate(synthetic, num_videos=args.synthetic_num_videos, seed=0, preset=preset)
        for split in ("test", "test_novel"):
            yield (
                f"synthetic {preset} ({args.synthetic_num_videos} videos, seed 0) {split}",
                read_annotations(synthetic / "annotations" / "train.jsonl", "jsonl")[0],
                read_annotations(synthetic / "annotations" / f"{split}.jsonl", "jsonl")[0],
            )
    real = Path(args.real_data)
    if not real.is_dir():
        return
    csvs = [real / "charades_sta" / f"Charades_v1_{s}.csv" for s in ("train", "test")]
    sta = real / "charades_sta"
    yield (
        "Charades-STA test",
        read_annotations(sta / "charades_sta_train.txt", "charades-sta", durations=csvs)[0],
        read_annotations(sta / "charades_sta_test.txt", "charades-sta", durations=csvs)[0],
    )
    anet = real / "activitynet_captions"
    yield (
        "ActivityNet Captions val_1",
        read_annotations(anet / "train.json", "activitynet")[0],
        read_annotations(anet / "val_1.json", "activitynet")[0],
    )
    tacos = real / "tacos"
    yield (
        "TACoS test",
        read_annotations(tacos / "train.json", "tacos")[0],
        read_annotations(tacos / "test.json", "tacos")[0],
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--synthetic-root", default="outputs/synthetic", help="worlds go to <root>/<preset>")
    parser.add_argument("--synthetic-num-videos", type=int, default=1000, help="as run_grounding.py's default")
    parser.add_argument("--real-data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "real"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print("| dataset | prior span (normalised) | " + " | ".join(KEYS) + " |")
    print("|---|---|" + "---:|" * len(KEYS))
    for name, train_rows, test_rows in datasets_to_score(args):
        (start, end), metrics = prior_baseline(train_rows, test_rows)
        print(f"| {name} | [{start:.2f}, {end:.2f}] | " + " | ".join(f"{metrics[k]:.2f}" for k in KEYS) + " |")


if __name__ == "__main__":
    main()
