"""The paper's claims, checked with our code: sampling, frozen features, tuning modes, SCADA ablations, a peer.

Every arm is one run of `run_grounding.py` (the peer: `benchmarks/tvp_peer.py`) on the built-in world with the
shipped stage-1 backbone. Each finished arm leaves its raw results (the run's `all_results.json`, the exact command,
its wall time, the machine and the commit) in `benchmarks/results/study/<arm>.json`; an arm whose file exists is
skipped, so the study runs in parts, one arm at a time, and resumes where it stopped. A saved arm whose command differs from the
arm's command now (other than its output folder: an older split size, say) is run again and its file replaced.
`--tables` prints the tables that go into `docs/study.md` from those files, without running anything.

    python benchmarks/study.py --part sampling            # 1: video- vs query-centric batches, two query mixes
    python benchmarks/study.py --part features            # 2: frozen features extracted once, head trained on them
    python benchmarks/study.py --part tuning --seeds 0 1 2  # 3: frozen / partial / full / scada at equal budget
    python benchmarks/study.py --part ablations --seeds 0 1 2  # 4: SCADA placement, FiLM, temporal conv, pooling
    python benchmarks/study.py --part peer --seeds 0 1 2  # 5: transformers' TvpForVideoGrounding, 2 epochs each
    python benchmarks/study.py --part peer-full --seeds 0  # 5: the peer at the default job's 6 epochs (slow)
    python benchmarks/study.py --part standard --seeds 0 1 2  # 6: the tuning modes on the harder world
    python benchmarks/study.py --part backbones --seeds 0 1 2  # 7: both shipped backbones, ~1,500-query test splits
    python benchmarks/study.py --part sweep --seeds 0     # 8: partial's and full's learning rates, layer decay, drop path
    python benchmarks/study.py --part standard-large --seeds 0 1 2  # 9: part 7's main modes on the standard world
    python benchmarks/study.py --part recognition-20k --seeds 0 1 2  # 10: part 7 on the recognition-20k backbone
    python benchmarks/study.py --part ablations --seeds 1 2 --only "*mean-pooling*"  # some arms only
    python benchmarks/study.py --tables --doc docs/study.md  # print every table (and write them into the doc)

`--extra` passes more flags to every run (e.g. `--extra "--bf16 --per_device_train_batch_size 32"` on a GPU); give
arms run with other flags another `--results` folder, or they replace the saved ones.
"""

import argparse
import difflib
import fnmatch
import json
import os
import platform
import random
import shlex
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "study"
WORK = REPO / "outputs" / "study"
PARTS = ("sampling", "features", "tuning", "ablations", "peer", "standard", "peer-full", "backbones", "sweep")
PARTS += ("standard-large", "recognition-20k")
# the sampling and features parts compare training cost at equal epochs: no evaluation or checkpoint inside training
COST_ONLY = ["--num_train_epochs", "2", "--eval_strategy", "no", "--save_strategy", "no"]
COST_ONLY += ["--load_best_model_at_end", "False"]
# queries kept per video: Charades-STA has about 2.3 per video, ActivityNet Captions about 3.7 (notes/peers.md)
QUERY_MIXES = {"charades": 2.3, "activitynet": 3.7}
NUM_BLOCKS = 4  # the shipped backbone's blocks (modeling_tsgv/checkpoints/videomae-tiny-synthetic)
# part 7's test splits: at least 1,500 queries each in test and test_novel (binomial s.e. of R1@0.5 near 1.3 points;
# 1,515 and 1,504 on the easy world), around the default job's 700 train / 100 val videos (generate(split_videos=...)).
# Arms saved with 1250 test_novel videos (1,473 queries) train on the same videos and score the same test split: the
# generator makes test_novel last, and part 10's 33 arms re-run at 1280 reproduced every test and validation figure
# (the five re-run arms of parts 7-8 first ran on older code and did not: docs/study.md section 8)
LARGE_SPLITS = ["--synthetic_split_videos", "700", "100", "520", "1280"]
# the standard world has more queries per video: 1250 test_novel videos already give 1,628 queries (test: 1,610), so
# part 9 keeps the splits it ran on
STANDARD_LARGE_SPLITS = ["--synthetic_split_videos", "700", "100", "520", "1250"]
# the studied backbones: the built-in name and how the tables call it; parts 7 and 9 ran on the first two
BACKBONES = {"synthetic-tiny": "token targets", "synthetic-tiny-recognition": "recognition"}
BACKBONES["synthetic-tiny-recognition-20k"] = "recognition, 20k steps"
FIRST_TWO = ("synthetic-tiny", "synthetic-tiny-recognition")


@dataclass
class Arm:
    """One run of the study: its file name, part, the flags that make it what it is, and how the tables label it."""

    name: str
    part: str
    flags: list[str]
    seed: int = 0
    labels: dict = field(default_factory=dict)
    script: str = "run_grounding.py"

    def command(self, extra: list[str]) -> list[str]:
        """The exact command line (the output folder under outputs/study); `extra` flags go to run_grounding.py only
        (the peer script has its own)."""
        out = WORK / "runs" / self.name
        extra = extra if self.script == "run_grounding.py" else []
        return [sys.executable, self.script, *self.flags, "--seed", str(self.seed), "--output_dir", str(out)] + [
            "--overwrite_output_dir",
            *extra,
        ]


def query_mix(mix: str) -> list[str]:
    """Flags that train on the built-in easy world with its training queries thinned to mean `QUERY_MIXES[mix]` per
    video (written once to outputs/study/mixes/<mix>/train.jsonl; validation and test unchanged)."""
    world = WORK.parent / "synthetic" / "easy"
    if not (world / "annotations" / "train.jsonl").exists():
        from modeling_tsgv.synthetic import generate

        generate(str(world), num_videos=1000, seed=0, preset="easy")
    folder = WORK / "mixes" / mix
    train = folder / "train.jsonl"
    if not train.exists():
        by_video = defaultdict(list)
        for line in (world / "annotations" / "train.jsonl").read_text().splitlines():
            by_video[json.loads(line)["video_id"]].append(line)
        rows = thin_queries(by_video, QUERY_MIXES[mix], random.Random(0))
        folder.mkdir(parents=True, exist_ok=True)
        train.write_text("\n".join(rows) + "\n")
    annotations = world / "annotations"
    return ["--dataset", "jsonl", "--video_dir", str(world), "--train_file", str(train)] + [
        "--validation_file",
        str(annotations / "val.jsonl"),
        "--test_file",
        str(annotations / "test.jsonl"),
    ]


def thin_queries(by_video: dict[str, list], mean: float, rng: random.Random) -> list:
    """Rows (one query each) of a subset of `by_video` (video id -> its query rows) whose queries per video average
    `mean`: below the world's own mean, every video keeps one query and randomly chosen ones keep more; above it, the
    videos with more than `mean` queries are kept, then videos with fewer (in id order) until the mean is down to
    `mean`."""
    videos = sorted(by_video)
    world_mean = sum(len(by_video[v]) for v in videos) / len(videos)
    if mean <= world_mean:  # one query per video, then one more to random videos that have more, up to the mean
        keep = dict.fromkeys(videos, 1)
        spare = [video for video in videos for _ in range(len(by_video[video]) - 1)]
        rng.shuffle(spare)
        for video in spare[: round(mean * len(videos)) - len(videos)]:
            keep[video] += 1
        return [row for video in videos for row in rng.sample(by_video[video], keep[video])]
    rich = [v for v in videos if len(by_video[v]) > mean]
    kept_queries, kept = sum(len(by_video[v]) for v in rich), list(rich)
    for video in (v for v in videos if len(by_video[v]) <= mean):
        if kept_queries / len(kept) <= mean:
            break
        kept.append(video)
        kept_queries += len(by_video[video])
    return [row for video in kept for row in by_video[video]]


def sampling_arms() -> list[Arm]:
    """Part 1: each query mix x backbone placement x sampling, 2 epochs, nothing cached (like for like), plus
    video-centric with the video-states cache for the default SCADA."""
    placements = {"frozen": ["--backbone_tuning", "frozen"], "scada-top-half": [], "scada-all": []}
    placements["scada-all"] = ["--scada_layers", *map(str, range(NUM_BLOCKS))]
    arms = []
    for mix in QUERY_MIXES:
        data = query_mix(mix)
        train = data[data.index("--train_file") + 1]
        queries = [json.loads(line)["video_id"] for line in Path(train).read_text().splitlines()]
        q = len(queries) / len(set(queries))
        for placement, flags in placements.items():
            for sampling in ("video_centric", "query_centric"):
                labels = {
                    "mix": mix,
                    "placement": placement,
                    "sampling": sampling,
                    "cache": "no",
                    "queries_per_video": q,
                }
                run_flags = data + COST_ONLY + flags + ["--sampling", sampling]
                name = f"sampling-{mix}-{placement}-{sampling}"
                arms.append(Arm(name, "sampling", run_flags + ["--cache_video_states", "no"], labels=labels))
        labels = {"mix": mix, "placement": "scada-top-half", "sampling": "video_centric", "cache": "states"}
        labels["queries_per_video"] = q
        arms.append(
            Arm(
                f"sampling-{mix}-scada-top-half-video_centric-cached",
                "sampling",
                data + COST_ONLY,
                labels=labels,
            )
        )
    return arms


def features_arms() -> list[Arm]:
    """Part 2: `frozen` trained from frames every epoch, from the in-memory cache, and from features saved to disk
    (the first run extracts them, the second only reads them)."""
    frozen = ["--backbone_tuning", "frozen"] + COST_ONLY
    store = str(WORK / "features")
    return [
        Arm(
            "features-decode-every-epoch",
            "features",
            frozen + ["--cache_video_states", "no"],
            labels={"how": "decode + backbone every epoch"},
        ),
        Arm(
            "features-in-memory",
            "features",
            frozen + ["--cache_video_states", "yes"],
            labels={"how": "in-memory cache (built per run)"},
        ),
        Arm(
            "features-extract",
            "features",
            frozen + ["--features_dir", store],
            labels={"how": "--features_dir, first run (extracts)"},
        ),
        Arm(
            "features-reuse",
            "features",
            frozen + ["--features_dir", store],
            labels={"how": "--features_dir, later run (reads)"},
        ),
    ]


def tuning_arms(seeds: list[int], part: str = "tuning", preset: str = "easy") -> list[Arm]:
    """Part 3 (and 6 on `preset` "standard"): the default recipe in each tuning mode, per seed; and `full` at a
    tenth of the learning rate (the default 1e-3 is a rate for adapters and a head, high for a pretrained backbone)."""
    flags = [] if preset == "easy" else ["--synthetic_preset", preset]
    arms = [
        Arm(f"{part}-{mode}-seed{seed}", part, flags + ["--backbone_tuning", mode], seed, {"mode": mode})
        for mode in ("scada", "frozen", "partial", "full")
        for seed in seeds
    ]
    low = flags + ["--backbone_tuning", "full", "--learning_rate", "1e-4"]
    return arms + [Arm(f"{part}-full-lr1e-4-seed{seed}", part, low, seed, {"mode": "full, lr 1e-4"}) for seed in seeds]


def ablation_arms(seeds: list[int]) -> list[Arm]:
    """Part 4: one change each from the default SCADA (adapters in the top half, FiLM, temporal conv 3, sentence
    pooling); the default itself is the tuning part's `scada` arm."""
    changes = {
        "top-quarter": ["--scada_layers", str(NUM_BLOCKS - 1)],
        "all-blocks": ["--scada_layers", *map(str, range(NUM_BLOCKS))],
        "no-film": ["--config_overrides", "scada_film=False"],
        "no-temporal-conv": ["--scada_temporal_kernel", "1"],
        "mean-pooling": ["--spatial_pooling", "mean"],
    }
    return [
        Arm(f"ablation-{change}-seed{seed}", "ablations", flags, seed, {"change": change})
        for change, flags in changes.items()
        for seed in seeds
    ]


def peer_arms(seeds: list[int], full: bool = False) -> list[Arm]:
    """Part 5: transformers' TvpForVideoGrounding at random init, same world and splits, at 2 epochs beside our model
    at 2 epochs (the peer's query-centric ResNet takes about 3 s a step on 2 cores); `full`: the peer at the default
    job's 6 epochs (part "peer-full", about 30 min per seed on 2 cores)."""
    peer, short = "benchmarks/tvp_peer.py", ["--num_train_epochs", "2"]
    if full:
        return [Arm(f"peer-tvp-seed{seed}", "peer", [], seed, {"model": "TVP, 6 epochs"}, peer) for seed in seeds]
    arms = []
    for seed in seeds:
        arms.append(Arm(f"peer-ours-2ep-seed{seed}", "peer", short, seed, {"model": "tsgv SCADA, 2 epochs"}))
        arms.append(Arm(f"peer-tvp-2ep-seed{seed}", "peer", short, seed, {"model": "TVP, 2 epochs"}, peer))
    return arms


# the modes of parts 7, 9 and 10 (each part runs some of them, in its own order): table label -> run_grounding flags
MODE_FLAGS = {
    "frozen": ["--backbone_tuning", "frozen"],
    "scada": ["--backbone_tuning", "scada"],
    "scada, no FiLM": ["--backbone_tuning", "scada", "--config_overrides", "scada_film=False"],
    # x1: partial's rate before part 8 picked x0.3 (the sweep's setting joins part 7's table at 3 seeds)
    "partial, backbone lr x1": ["--backbone_tuning", "partial", "--backbone_lr_multiplier", "1"],
    "partial, backbone lr x0.3": ["--backbone_tuning", "partial", "--backbone_lr_multiplier", "0.3"],
    # the whole backbone at a tenth of the head's rate (VideoMAE fine-tuning's scale; full at 1e-3 forgets)
    "full, backbone lr x0.1": ["--backbone_tuning", "full", "--backbone_lr_multiplier", "0.1"],
    # the SCADA ablations whose answer sets a default: pooling and adapter placement (every block, not the top half)
    "scada, mean pooling": ["--backbone_tuning", "scada", "--spatial_pooling", "mean"],
    "scada, all blocks": ["--backbone_tuning", "scada", "--scada_layers", *map(str, range(NUM_BLOCKS))],
}
# the four tuning modes at twice the default job's 6 epochs: is it the grounding budget that keeps end-to-end training
# from repairing the backbone?
for _mode in ("frozen", "scada", "full, backbone lr x0.1", "partial, backbone lr x0.3"):
    MODE_FLAGS[f"{_mode}, 12 epochs"] = MODE_FLAGS[_mode] + ["--num_train_epochs", "12"]


def backbone_arms(seeds: list[int]) -> list[Arm]:
    """Part 7: frozen / SCADA / SCADA without the sentence FiLM / partial / full on each shipped backbone
    (`BACKBONES`: the token-target stage 1 and the recognition-style one), with test splits of about 1,500 queries
    (`LARGE_SPLITS`).
    Ordered seed by seed, so a part stopped halfway has every arm at the same number of seeds."""
    modes = ["frozen", "scada", "scada, no FiLM", "partial, backbone lr x1", "partial, backbone lr x0.3"]
    modes += ["full, backbone lr x0.1", "scada, mean pooling", "scada, all blocks"]
    return [
        backbone_arm("backbones", backbone, mode, MODE_FLAGS[mode], seed)
        for seed in seeds
        for backbone in FIRST_TWO
        for mode in modes
        # part 8 runs partial at x0.3 on the recognition backbone (its table shows those seeds here)
        if (backbone, mode) != ("synthetic-tiny-recognition", "partial, backbone lr x0.3")
    ]


def backbone_arm(part: str, backbone: str, mode: str, flags: list[str], seed: int, world: str = "easy") -> Arm:
    """One arm of parts 7-10: `flags` on the built-in `backbone` with the large test splits of `world`
    (`LARGE_SPLITS` on the easy world, `STANDARD_LARGE_SPLITS` on the standard one)."""
    slug = mode.replace(", ", "-").replace(" ", "-").replace(".", "").replace("=", "").lower()
    preset, splits = ([], LARGE_SPLITS) if world == "easy" else (["--synthetic_preset", world], STANDARD_LARGE_SPLITS)
    labels = {"backbone": BACKBONES[backbone], "mode": mode, "world": world}
    name = f"{part}-{backbone}-{slug}-seed{seed}"
    return Arm(name, part, ["--video_model", backbone, *preset, *splits, *flags], seed, labels)


# part 8: the small sweep that picks partial's and full's setting (seed 0, chosen on validation R1@0.5)
SWEEP = {
    "partial, backbone lr x0.3": ["--backbone_tuning", "partial", "--backbone_lr_multiplier", "0.3"],
    "full, backbone lr x0.3, layer decay 0.75": [
        "--backbone_tuning", "full", "--backbone_lr_multiplier", "0.3", "--layer_decay", "0.75",
    ],
    "full, backbone lr x1, layer decay 0.75": [
        "--backbone_tuning", "full", "--backbone_lr_multiplier", "1", "--layer_decay", "0.75",
    ],
    "full, backbone lr x0.1, drop path 0.1": [
        "--backbone_tuning", "full", "--backbone_lr_multiplier", "0.1", "--config_overrides", "drop_path_rate=0.1",
    ],
}  # fmt: skip


def sweep_arms(seeds: list[int]) -> list[Arm]:
    """Part 8: `SWEEP` on the recognition backbone (beside part 7's partial at x1 and full at x0.1); a setting
    run at more seeds than 0 (the chosen one) also joins part 7's table."""
    return [
        backbone_arm("sweep", "synthetic-tiny-recognition", mode, flags, seed)
        for seed in seeds
        for mode, flags in SWEEP.items()
    ]


def standard_backbone_arms(seeds: list[int]) -> list[Arm]:
    """Part 9: the harder standard world with the large splits, on both backbones: the four tuning modes (frozen /
    SCADA / full x0.1 / partial x0.3) and SCADA's three ablations (no FiLM, mean pooling, adapters in all blocks)."""
    modes = ["frozen", "scada", "scada, no FiLM", "full, backbone lr x0.1", "partial, backbone lr x0.3"]
    modes += ["scada, mean pooling", "scada, all blocks"]
    arms = []
    for seed in seeds:
        for backbone in reversed(FIRST_TWO):  # the recognition backbone's arms first
            for mode in modes:
                arms.append(backbone_arm("standard-large", backbone, mode, MODE_FLAGS[mode], seed, "standard"))
    return arms


# part 10: the modes whose answer the paper is about, on the recognition backbone that recognises actions, in the
# order they run within a seed (the question first: does end-to-end training beat frozen?)
RECOGNITION_20K_MODES = ["frozen", "scada", "full, backbone lr x0.1", "scada, no FiLM", "partial, backbone lr x0.3"]
RECOGNITION_20K_MODES += ["scada, mean pooling", "scada, all blocks", "frozen, 12 epochs", "scada, 12 epochs"]
RECOGNITION_20K_MODES += ["full, backbone lr x0.1, 12 epochs", "partial, backbone lr x0.3, 12 epochs"]


def recognition_20k_arms(seeds: list[int]) -> list[Arm]:
    """Part 10: `RECOGNITION_20K_MODES` on `synthetic-tiny-recognition-20k` (the easy world, part 7's large splits),
    seed by seed, so a part stopped halfway has its first modes at the most seeds."""
    backbone = "synthetic-tiny-recognition-20k"
    return [
        backbone_arm("recognition-20k", backbone, mode, MODE_FLAGS[mode], seed)
        for seed in seeds
        for mode in RECOGNITION_20K_MODES
    ]


def arms_of(part: str, seeds: list[int]) -> list[Arm]:
    """The arms of one part (seeds apply to the parts that learn)."""
    if part == "sampling":
        return sampling_arms()
    if part == "features":
        return features_arms()
    if part == "tuning":
        return tuning_arms(seeds)
    if part == "ablations":
        return ablation_arms(seeds)
    if part in ("peer", "peer-full"):
        return peer_arms(seeds, full=part == "peer-full")
    if part == "backbones":
        return backbone_arms(seeds)
    if part == "sweep":
        return sweep_arms(seeds)
    if part == "standard-large":
        return standard_backbone_arms(seeds)
    if part == "recognition-20k":
        return recognition_20k_arms(seeds)
    # and the easy world's clearest ablation (mean spatial pooling), to see whether it carries over
    mean = ["--synthetic_preset", "standard", "--backbone_tuning", "scada", "--spatial_pooling", "mean"]
    pooled = [
        Arm(f"standard-scada-mean-pooling-seed{s}", "standard", mean, s, {"mode": "scada, mean pooling"})
        for s in seeds
    ]
    return tuning_arms(seeds, "standard", "standard") + pooled


def comparable(command: list[str]) -> list[str]:
    """A command line's arguments (after the interpreter) without its `--output_dir` and with every path under an
    `outputs/` folder cut to start there, so that runs made from another checkout compare equal."""
    kept = []
    for index, token in enumerate(command):
        if token == "--output_dir" or index and command[index - 1] == "--output_dir":
            continue
        kept.append("outputs/" + token.split("/outputs/", 1)[1] if "/outputs/" in token else token)
    return kept


def changes(before: list[str], after: list[str]) -> str:
    """What differs between two argument lists, in words: "1250 -> 1280; (none) -> --bf16"."""
    opcodes = difflib.SequenceMatcher(a=before, b=after, autojunk=False).get_opcodes()
    return "; ".join(
        f"{' '.join(before[i1:i2]) or '(none)'} -> {' '.join(after[j1:j2]) or '(none)'}"
        for tag, i1, i2, j1, j2 in opcodes
        if tag != "equal"
    )


def run_arm(arm: Arm, extra: list[str], results: Path) -> dict | None:
    """Run `arm` unless `results/<name>.json` holds a run of the same command (`comparable`); a record made with
    other flags is replaced. Returns the record, or None when the run failed (its log, in outputs/study/logs, is
    named)."""
    path = results / f"{arm.name}.json"
    command = arm.command(extra)
    if path.exists():
        record = json.loads(path.read_text())
        if "command" not in record:  # nothing to compare it with: kept as it is
            return record
        saved, now = comparable(shlex.split(record["command"])[1:]), comparable(command[1:])
        if saved == now:
            return record
        print(f"[study] {arm.name}: saved with other flags ({changes(saved, now)}); running it again", flush=True)
    log = WORK / "logs" / f"{arm.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"[study] {arm.name}: {shlex.join(command[1:])}", flush=True)
    start_s, loads = time.perf_counter(), []
    with open(log, "w") as out:
        process = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        while process.poll() is None:  # the machine's load while the arm ran: timings are only fair on quiet cores
            loads.append(os.getloadavg()[0])
            time.sleep(5)
    wall_s = time.perf_counter() - start_s
    if process.returncode:
        print(f"[study] {arm.name} failed (exit {process.returncode}); see {log}", flush=True)
        return None
    record = {
        "arm": arm.name,
        "part": arm.part,
        "seed": arm.seed,
        "labels": arm.labels,
        "command": "python " + shlex.join(command[1:]),
        "wall_s": round(wall_s, 1),
        "load_1min_mean": round(statistics.mean(loads), 2) if loads else None,
        "machine": machine(),
        "code": code_state(),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        "results": json.loads((Path(command[command.index("--output_dir") + 1]) / "all_results.json").read_text()),
        "validation": best_validation(Path(command[command.index("--output_dir") + 1])),
    }
    results.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")
    print(f"[study] {arm.name}: {wall_s:.0f} s", flush=True)
    return record


def best_validation(run_dir: Path) -> dict | None:
    """The validation metric the run picked its checkpoint by (`metric_for_best_model`, e.g. R1@0.5 in percent) and
    its value per evaluated epoch, from the last checkpoint's trainer_state.json; None when no checkpoint was kept."""
    states = sorted(run_dir.glob("checkpoint-*/trainer_state.json"), key=lambda path: int(path.parent.name[11:]))
    if not states:
        return None
    state = json.loads(states[-1].read_text())
    metric = "eval_R1@0.5"
    per_epoch = [round(entry[metric], 2) for entry in state["log_history"] if metric in entry]
    return {"best_R1@0.5": state.get("best_metric"), "R1@0.5_per_epoch": per_epoch}


def fill_validation(results: Path) -> None:
    """Give each saved record without a "validation" entry (saved before `run_arm` kept it) the one its run folder
    under outputs/study/runs still holds (`best_validation`); records whose folder is gone stay as they are."""
    for path in sorted(results.glob("*.json")):
        record = json.loads(path.read_text())
        run_dir = WORK / "runs" / record["arm"]
        if "validation" not in record and run_dir.is_dir():
            record["validation"] = best_validation(run_dir)
            path.write_text(json.dumps(record, indent=1) + "\n")


LIBRARIES = ("torch", "transformers", "accelerate", "datasets", "numpy", "av", "tokenizers", "safetensors")


def machine() -> dict:
    """Where an arm ran: CPU count, torch threads, accelerator, Python and the versions of the libraries a run's
    numbers rest on (`LIBRARIES`; None for one not installed) -- each session installs afresh, so two runs of one
    commit may not share them."""
    from importlib import metadata

    import torch

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # the SIMD kernels torch picked (AVX2, AVX512)
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "host": platform.node(),
        "python": platform.python_version(),
        "libraries": {name: version(name) for name in LIBRARIES},
    }


def cpu_model() -> str | None:
    """The CPU's model name from /proc/cpuinfo (Linux), else `platform.processor()`; None when neither says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def code_state() -> dict:
    """The code an arm ran on: the checkout's commit (40 hex digits) and whether tracked files differed from it;
    both None outside a git checkout. Two records of one command on different commits need not agree (study.md
    section 8: the 2026-12-03 arms did not), so a record names its code."""

    def git(*args: str) -> str | None:
        done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "modified": bool(status) if commit else None}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--part", choices=PARTS + ("all",), help="which arms to run (skips those saved with the same command)"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds of the parts that learn")
    parser.add_argument("--only", nargs="+", help="run only the arms whose name matches one of these globs")
    parser.add_argument("--extra", default="", help="more run_grounding.py flags for every run (quoted)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of the per-arm JSON files")
    parser.add_argument("--tables", action="store_true", help="print the tables from the saved results")
    parser.add_argument("--doc", type=Path, help="with --tables: also write them into this markdown file's markers")
    parser.add_argument("--card", action="store_true", help="copy the best tuning run's model card to model_cards/")
    args = parser.parse_args(argv)
    if not (args.part or args.tables or args.card):
        parser.error("give --part, --tables and/or --card")
    failed = []
    for part in PARTS if args.part == "all" else [args.part] if args.part else []:
        for arm in arms_of(part, args.seeds):
            if args.only and not any(fnmatch.fnmatch(arm.name, pattern) for pattern in args.only):
                continue
            if run_arm(arm, shlex.split(args.extra), args.results) is None:
                failed.append(arm.name)
    if args.tables:
        from study_tables import print_tables  # beside this file

        fill_validation(args.results)

        print_tables(args.results, args.doc)
    if args.card:
        from study_tables import write_best_card

        print(f"model card: {write_best_card(args.results, REPO / 'model_cards')}")
    if failed:
        sys.exit(f"{len(failed)} arm(s) failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
