"""The study's tables (markdown) from its saved per-arm JSON files: `python benchmarks/study.py --tables`.

Each table is printed with the command of one of its arms and the arms' wall times, as `docs/study.md` shows them.
Means are over the seeds an arm has; ± is the sample standard deviation (— with one seed).
"""

import json
import math
import re
import statistics
from collections import defaultdict
from pathlib import Path

REPO = str(Path(__file__).resolve().parents[1])
NUM_BLOCKS = 4
# fraction of the backbone's blocks that run once per video (the rest run once per query), per placement
SHARED_FRACTION = {"frozen": 1.0, "scada-top-half": 3 / NUM_BLOCKS, "scada-all": 1 / NUM_BLOCKS}
QUALITY = ("R1@0.5", "R1@0.7", "mIoU", "binding")


def load(results: Path) -> dict[str, list[dict]]:
    """part -> its arms' records."""
    parts = defaultdict(list)
    for path in sorted(results.glob("*.json")):
        record = json.loads(path.read_text())
        parts[record["part"]].append(record)
    return parts


def mean_std(values: list[float], digits: int = 1) -> str:
    """'m ± s' of `values` ('m' alone for one value, '—' for none)."""
    values = [v for v in values if v is not None and v == v]
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def table(header: list[str], rows: list[list]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def footer(records: list[dict]) -> str:
    """The command of the first arm and the wall time / machine load of all."""
    walls = [r["wall_s"] for r in records]
    loads = [r.get("load_1min_mean") for r in records if r.get("load_1min_mean") is not None]
    load = f"; machine load while running {min(loads):.1f}-{max(loads):.1f}" if loads else ""
    command = re.sub(r"\S*/outputs/", "outputs/", records[0]["command"])  # run in any checkout: paths from it
    return (
        f"\n{len(records)} runs, {min(walls):.0f}-{max(walls):.0f} s each ({sum(walls) / 60:.0f} min in all){load}. "
        f"One of them:\n\n    {command}\n"
    )


def sampling_table(records: list[dict]) -> str:
    """Part 1: per query mix and placement, video- vs query-centric at equal epochs."""
    by = {
        (r["labels"]["mix"], r["labels"]["placement"], r["labels"]["sampling"], r["labels"]["cache"]): r
        for r in records
    }
    rows = []
    for (mix, placement, sampling, cache), record in sorted(by.items()):
        result, q = record["results"], record["labels"].get("queries_per_video")
        epochs = result.get("epoch") or 2
        query = by.get((mix, placement, "query_centric", "no"))
        passes = result["train_backbone_block_clip_passes"] / epochs
        ratio_passes = ratio_time = bound = "—"
        if query and sampling == "video_centric":
            ratio_passes = f"{passes / (query['results']['train_backbone_block_clip_passes'] / epochs):.2f}"
            ratio_time = f"{result['train_runtime'] / query['results']['train_runtime']:.2f}"
            f = SHARED_FRACTION[placement]
            bound = f"{f / q + (1 - f):.2f}" if q else "—"
        rows.append(
            [mix, f"{q:.2f}" if q else "—", placement, sampling + (" + cached states" if cache != "no" else "")]
            + [f"{result['train_runtime'] / epochs:.0f}", f"{passes:,.0f}", ratio_passes, bound, ratio_time]
            + [f"{result['test_R1@0.5']:.1f}", f"{result['test_mIoU']:.1f}", record.get("load_1min_mean") or "—"]
        )
    header = ["mix", "q", "backbone", "batches", "s / epoch", "block x clip passes / epoch"]
    header += ["passes vs query-centric", "bound f/q + (1-f)", "time vs query-centric", "test R1@0.5", "test mIoU"]
    header += ["load"]
    return table(header, rows) + footer(records)


def features_table(records: list[dict]) -> str:
    """Part 2: frozen features, from frames every epoch, in memory, and saved to disk."""
    rows = []
    for record in records:
        result = record["results"]
        epochs = result.get("epoch") or 2
        stored = f"{result.get('features_read_videos', 0):,d} / {result.get('features_extracted_videos', 0):,d}"
        rows.append(
            [record["labels"]["how"], f"{result['train_runtime'] / epochs:.1f}", f"{record['wall_s']:.0f}"]
            + [stored if "features_read_videos" in result else "—", f"{result['peak_host_memory_mb']:,.0f}"]
            + [f"{result['test_R1@0.5']:.1f}"]
        )
    header = ["frozen backbone, features", "s / epoch", "whole run (s)", "read / extracted videos", "peak RSS (MB)"]
    return table(header + ["test R1@0.5"], rows) + footer(records)


def quality_rows(records: list[dict], key: str) -> list[list]:
    """Per value of `labels[key]`: mean ± std over seeds of the quality metrics, with cost."""
    groups = defaultdict(list)
    for record in records:
        groups[record["labels"][key]].append(record["results"])
    rows = []
    for name, results in groups.items():
        row = [name, len(results)]
        for split in ("test", "test_novel"):
            row += [mean_std([r.get(f"{split}_{metric}") for r in results]) for metric in QUALITY]
        row += [f"{statistics.mean(r.get('trainable_params', float('nan')) for r in results) / 1e6:.2f} M"]
        row += [mean_std([r.get("peak_host_memory_mb") for r in results], 0)]
        row += [mean_std([r.get("train_seconds_per_step") for r in results], 3)]
        rows.append(row)
    return rows


def quality_table(records: list[dict], key: str, first: str) -> str:
    """Parts 3-6: quality and cost per `labels[key]` (`first`: the column's title)."""
    header = [first, "seeds"] + [f"{split} {m}" for split in ("test", "test_novel") for m in QUALITY]
    header += ["trainable", "peak RSS (MB)", "s / step"]
    return table(header, quality_rows(records, key)) + footer(records)


def binomial_se(percent: float, num_queries: float) -> float:
    """The binomial standard error (points) of a recall `percent` measured on `num_queries` queries."""
    p = percent / 100
    return 100 * math.sqrt(p * (1 - p) / num_queries)


def split_stats(results: list[dict], split: str) -> tuple[float, float, float]:
    """(mean, sample std over seeds (0 with one seed), mean binomial s.e.) of `split`'s R1@0.5 over `results`."""
    values = [r[f"{split}_R1@0.5"] for r in results]
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    se = statistics.mean(binomial_se(r[f"{split}_R1@0.5"], r[f"{split}_num_queries"]) for r in results)
    return statistics.mean(values), std, se


def queries(counts: list[int]) -> str:
    """The query count of a row's runs: "1,504", or "1,473-1,504" when its seeds ran on splits of other sizes."""
    low, high = min(counts), max(counts)
    return f"{low:,}" if low == high else f"{low:,}-{high:,}"


def backbones_table(records: list[dict], own: list[dict] | None = None) -> str:
    """Part 7: per backbone and mode, R1@0.5 (mean ± std over seeds, binomial s.e. of one run) and mIoU on both
    test splits; then, per backbone, each mode against frozen and SCADA against SCADA without FiLM, with the
    difference called one only when it exceeds both the larger seed std of the two arms and the binomial s.e. of a
    difference of two runs (sqrt(se_a^2 + se_b^2)). The pooling, placement, partial and full arms are also set against
    SCADA. The differences and the footer (runs, wall time, one command) cover `own` when given: the part's own arms,
    not those shown beside them."""
    groups = defaultdict(list)
    for record in records:
        groups[(record["labels"]["backbone"], record["labels"]["mode"])].append(record["results"])
    rows = []
    for (backbone, mode), results in groups.items():
        row = [backbone, mode, len(results)]
        for split in ("test", "test_novel"):
            mean, std, se = split_stats(results, split)
            spread = f"{mean:.1f} ± {std:.1f}" if len(results) > 1 else f"{mean:.1f}"
            row += [spread, f"{se:.1f}", mean_std([r[f"{split}_mIoU"] for r in results])]
        row += [queries([r[f"{split}_num_queries"] for r in results]) for split in ("test", "test_novel")]
        rows.append(row)
    header = ["backbone", "mode", "seeds", "test R1@0.5", "s.e.", "test mIoU", "novel R1@0.5", "s.e.", "novel mIoU"]
    text = table(header + ["test queries", "novel queries"], rows)
    comparisons, compared = [], {r["labels"]["backbone"] for r in own or records}  # not those shown beside
    for (backbone, mode), results in groups.items():
        if backbone not in compared:
            continue
        budget = mode.partition(", 12 epochs")[1]  # a longer run is set against frozen at its own budget
        against = [f"frozen{budget}"] if mode != f"frozen{budget}" else []
        against += ["scada, no FiLM"] if mode == "scada" else []
        against += [mode.replace(budget, "")] if budget else []  # and against itself at the default budget
        against += (
            [f"scada{budget}"]
            if mode in ("scada, mean pooling", "scada, all blocks") or mode[:4] in ("part", "full")
            else []
        )
        for base in against:
            if (backbone, base) not in groups:
                continue
            row = [backbone, f"{mode} − {base}"]
            for split in ("test", "test_novel"):
                a, b = split_stats(results, split), split_stats(groups[(backbone, base)], split)
                delta, bar = a[0] - b[0], max(max(a[1], b[1]), math.hypot(a[2], b[2]))
                row += [
                    f"{delta:+.1f}",
                    f"{100 * delta / b[0]:+.0f} %",
                    f"{bar:.1f}",
                    "yes" if abs(delta) > bar else "no",
                ]
            comparisons.append(row)
    if comparisons:
        header = ["backbone", "difference", "test Δ", "relative", "bar", "a difference?"]
        header += ["novel Δ", "relative", "bar", "a difference?"]
        text += "\n\n" + table(header, comparisons)
    return text + footer(own or records)


def sweep_table(records: list[dict]) -> str:
    """Part 8: per setting (one seed), the validation R1@0.5 it is chosen by (best epoch, and per epoch), test and
    test_novel R1@0.5 with test_novel's query count (settings run on splits of other sizes show it), the final
    training loss and the cost of a step."""
    rows = []
    for record in sorted(records, key=lambda r: r["labels"]["mode"]):
        results, validation = record["results"], record.get("validation") or {}
        per_epoch = " / ".join(f"{value:.0f}" for value in validation.get("R1@0.5_per_epoch", []))
        rows.append([
            record["labels"]["mode"], f"{validation.get('best_R1@0.5', float('nan')):.1f}", per_epoch,
            f"{results['test_R1@0.5']:.1f}", f"{results['test_novel_R1@0.5']:.1f}",
            f"{results['test_novel_num_queries']:,}", f"{results['train_loss']:.3f}",
            f"{results['train_seconds_per_step']:.3f}",
        ])  # fmt: skip
    header = ["setting", "val R1@0.5 (best)", "val R1@0.5 per epoch", "test R1@0.5", "novel R1@0.5"]
    return table(header + ["novel queries", "train loss", "s / step"], rows) + footer(records)


def reruns_table(records: list[dict]) -> str:
    """Runs of one arm's command in other sessions (`benchmarks/results/reruns/`, one file per run): per run, when it
    finished, the CPU kernels torch used ("—" for records made before runs named them), how it ran (torch's threads,
    and a record's "conditions" where a run was changed on purpose: FFmpeg held to its C paths, say), the commit,
    validation R1@0.5 (best and per epoch), test and test_novel R1@0.5 (test_novel's query count), training loss."""
    rows = []
    for record in sorted(records, key=lambda r: (r["labels"]["mode"], r["seed"], r["finished"])):
        results, validation = record["results"], record.get("validation") or {}
        per_epoch = " / ".join(f"{value:.1f}" for value in validation.get("R1@0.5_per_epoch", [])) or "—"
        best = f"{validation['best_R1@0.5']:.1f}" if validation.get("best_R1@0.5") is not None else "—"
        commit = (record.get("code") or {}).get("commit")
        threads = record["machine"].get("torch_threads")
        ran = ", ".join(
            filter(None, [f"{threads} thread{'s' * (threads != 1)}" if threads else "", record.get("conditions")])
        )
        rows.append([
            f"{record['labels']['mode']}, seed {record['seed']}", record["finished"][:16],
            record["machine"].get("cpu_capability", "—"), ran or "—", commit[:7] if commit else "—", best, per_epoch,
            f"{results['test_R1@0.5']:.1f}", f"{results['test_novel_R1@0.5']:.1f}",
            f"{results['test_novel_num_queries']:,}", f"{results['train_loss']:.4f}",
        ])  # fmt: skip
    header = ["arm", "finished", "CPU kernels", "ran with", "commit", "val R1@0.5 (best)", "val R1@0.5 per epoch"]
    header += ["test R1@0.5"]
    return table(header + ["novel R1@0.5", "novel queries", "train loss"], rows) + "\n"


def relabel(record: dict, key: str, value: str) -> dict:
    """`record` with `labels[key]` set to `value` (to show one part's arm in another part's table)."""
    return {**record, "labels": {**record["labels"], key: value}}


def print_tables(results: Path, doc: Path | None = None) -> None:
    """Print every part's table that has results; with `doc`, also write each between the doc's
    `<!-- study:<part> -->` and `<!-- /study:<part> -->` markers (the rest of the doc is left as it is)."""
    parts = load(results)
    titles = {
        "sampling": ("1. Video-centric against query-centric batches", sampling_table),
        "features": ("2. Frozen features", features_table),
        "tuning": ("3. Tuning modes (easy world, shipped backbone)", lambda r: quality_table(r, "mode", "tuning")),
        "ablations": ("4. SCADA ablations", lambda r: quality_table(r, "change", "change")),
        "peer": ("5. Peer: TvpForVideoGrounding", lambda r: quality_table(r, "model", "model")),
        "standard": ("6. Tuning modes on the standard world", lambda r: quality_table(r, "mode", "tuning")),
        "backbones": ("7. Two stage-1 backbones, ~1,500-query test splits", backbones_table),
        "sweep": ("8. partial's and full's settings (recognition backbone, seed 0)", sweep_table),
        "standard-large": ("9. The standard world, ~1,500-query test splits", backbones_table),
        "recognition-20k": (
            "10. The recognition backbone that recognises actions",
            lambda r: backbones_table(r, [x for x in r if x["part"] == "recognition-20k"]),
        ),
    }
    baselines = [  # part 7's seed-0 partial and full on the recognition backbone are the sweep's first settings
        r for r in parts.get("backbones", [])
        if r["seed"] == 0 and r["labels"]["backbone"] == "recognition" and r["labels"]["mode"][:4] in ("part", "full")
    ]  # fmt: skip
    # the setting the sweep chose, once run at more seeds, also stands in part 7's table with its seeds
    sweep = parts.get("sweep", [])
    chosen = {r["labels"]["mode"] for r in sweep if r["seed"] != 0}
    if chosen:
        parts["backbones"] = parts.get("backbones", []) + [r for r in sweep if r["labels"]["mode"] in chosen]
    parts["sweep"] = sweep and baselines + [r for r in sweep if r["seed"] == 0]
    # part 10 beside part 7's arms of the same modes on the 5,000-step recognition backbone
    modes_20k = {r["labels"]["mode"] for r in parts.get("recognition-20k", [])}
    own = parts.get("recognition-20k", [])
    shorter = [r for r in parts.get("backbones", []) if r["labels"]["backbone"] == "recognition"]
    parts["recognition-20k"] = own and own + [r for r in shorter if r["labels"]["mode"] in modes_20k]
    scada = [r for r in parts.get("tuning", []) if r["labels"]["mode"] == "scada"]
    parts["ablations"] = (
        parts.get("ablations", [])
        and [relabel(r, "change", "none (default SCADA)") for r in scada] + parts["ablations"]
    )
    parts["peer"] = (
        parts.get("peer", []) and [relabel(r, "model", "tsgv SCADA, 6 epochs") for r in scada] + parts["peer"]
    )
    reruns = results.parent / "reruns"  # every run of a re-run arm, one file each (`reruns_table`)
    if reruns.is_dir() and any(reruns.glob("*.json")):
        parts["reruns"] = [record for records in load(reruns).values() for record in records]
        titles["reruns"] = ("8b. One command in several sessions", reruns_table)
    text = doc.read_text() if doc else None
    for part, (title, make) in titles.items():
        if parts.get(part):
            print(f"### {title}\n\n{make(parts[part])}")
            start, end = f"<!-- study:{part} -->", f"<!-- /study:{part} -->"
            if text and start in text and end in text:
                before, rest = text.split(start, 1)
                text = f"{before}{start}\n{make(parts[part])}{end}{rest.split(end, 1)[1]}"
    if doc:
        doc.write_text(text)


def write_best_card(results: Path, cards: Path) -> Path | None:
    """Copy the model card of the best tuning arm (the mode with the best mean test R1@0.5 over its seeds; of its
    seeds, the run with the best test R1@0.5) into `cards/tsgv-synthetic-easy-<mode>.md`, named for what it is, with
    the study's 3-seed table of that part appended. Returns the path (None without tuning results or run folder)."""
    records = load(results).get("tuning", [])
    by_mode = defaultdict(list)
    for record in records:
        by_mode[record["labels"]["mode"]].append(record)
    if not by_mode:
        return None
    mode = max(by_mode, key=lambda m: statistics.mean(r["results"]["test_R1@0.5"] for r in by_mode[m]))
    best = max(by_mode[mode], key=lambda r: r["results"]["test_R1@0.5"])
    run_card = Path(REPO) / best["command"].split("--output_dir ")[1].split()[0] / "README.md"
    if not run_card.exists():
        return None
    name = f"tsgv-synthetic-easy-{mode}"
    text = run_card.read_text().replace(REPO + "/", "")  # paths as the command in the card makes them
    text = text.replace(f"name: {best['arm']}", f"name: {name}").replace(f"# {best['arm']}", f"# {name}").rstrip()
    text += (
        f"\n\n## In the study (docs/study.md)\n\nThis is the seed-{best['seed']} run of `{mode}`, the tuning mode with the "
        "best mean test R1@0.5 at equal budget; every mode over its seeds (mean ± std):\n\n"
        + quality_table(records, "mode", "tuning")
    )
    path = cards / f"{name}.md"
    path.write_text(text)
    return path
