"""benchmarks/study.py's pieces that decide what a table says: the query mixes, the bound, skipping saved arms."""

import json
import random
import re
import sys

from conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
import study  # noqa: E402
import study_tables  # noqa: E402


def world(counts: list[int]) -> dict[str, list[str]]:
    """video id -> query rows, `counts[i]` queries for video i."""
    return {f"v{i}": [json.dumps({"video_id": f"v{i}", "q": j}) for j in range(n)] for i, n in enumerate(counts)}


def mean_of(rows: list[str]) -> float:
    videos = [json.loads(row)["video_id"] for row in rows]
    return len(videos) / len(set(videos))


def test_thinned_mixes_hit_their_mean_from_below_and_above():
    by_video = world([2] * 40 + [3] * 40 + [4] * 15 + [5] * 5)  # mean 2.85
    below = study.thin_queries(by_video, 2.3, random.Random(0))
    assert abs(mean_of(below) - 2.3) < 0.01 and len({json.loads(r)["video_id"] for r in below}) == 100
    above = study.thin_queries(by_video, 3.7, random.Random(0))
    assert abs(mean_of(above) - 3.7) < 0.1
    assert all(row in sum(by_video.values(), []) for row in below + above)  # only real queries, none invented


def record(placement, sampling, passes, runtime, cache="no", q=2.5):
    labels = {"mix": "m", "placement": placement, "sampling": sampling, "cache": cache, "queries_per_video": q}
    results = {"epoch": 2.0, "train_backbone_block_clip_passes": passes, "train_runtime": runtime}
    results |= {"test_R1@0.5": 50.0, "test_mIoU": 40.0}
    return {"labels": labels, "results": results, "wall_s": runtime, "command": "python run_grounding.py ..."}


def test_the_sampling_table_compares_each_video_centric_row_with_its_query_centric_one():
    rows = [
        record("scada-top-half", "query_centric", 1000, 100.0),
        record("scada-top-half", "video_centric", 550, 60.0),
    ]
    line = next(row for row in study_tables.sampling_table(rows).splitlines() if "| video_centric |" in row)
    cells = [cell.strip() for cell in line.split("|")]
    assert cells[7:10] == ["0.55", "0.55", "0.60"]  # passes ratio, bound 0.75/2.5 + 0.25, time ratio


def test_a_saved_arm_is_not_run_again_unless_it_was_run_with_other_flags(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(study, "WORK", tmp_path / "work")
    script = tmp_path / "fake_run.py"  # stands in for run_grounding.py: writes the results file a run leaves
    script.write_text(
        "import json, pathlib, sys\n"
        "out = pathlib.Path(sys.argv[sys.argv.index('--output_dir') + 1]); out.mkdir(parents=True)\n"
        "(out / 'all_results.json').write_text(json.dumps({'flags': sys.argv[1:3]}))\n"
    )
    arm = study.Arm("some-arm", "tuning", ["--splits", "1280"], script=str(script))
    saved = {"arm": "some-arm", "results": {"flags": "old"}}
    # the same command, run from another checkout (its output folder elsewhere): kept, nothing runs
    saved["command"] = (
        f"python {script} --splits 1280 --seed 0 --output_dir /elsewhere/outputs/x --overwrite_output_dir"
    )
    (tmp_path / "some-arm.json").write_text(json.dumps(saved))
    assert study.run_arm(arm, [], tmp_path) == saved
    # saved with an older split size: run again, the record replaced, and the change named
    saved["command"] = saved["command"].replace("1280", "1250")
    (tmp_path / "some-arm.json").write_text(json.dumps(saved))
    record = study.run_arm(arm, [], tmp_path)
    assert record["results"] == {"flags": ["--splits", "1280"]} and "--splits 1280" in record["command"]
    assert json.loads((tmp_path / "some-arm.json").read_text()) == record
    assert record["code"] == study.code_state()  # the commit it ran on, to tell runs of one command on other code
    assert record["code"]["commit"] is None or re.fullmatch("[0-9a-f]{40}", record["code"]["commit"])
    from importlib import metadata  # the library versions it ran with: each session installs afresh

    assert record["machine"]["libraries"]["torch"] == metadata.version("torch")
    assert record["machine"]["libraries"]["numpy"] == metadata.version("numpy")
    assert record["machine"]["cpu_capability"] in {"DEFAULT", "VSX", "Z VECTOR", "NO AVX", "AVX2", "AVX512", "SVE256"}
    assert set(record["machine"]["libraries"]) == set(study.LIBRARIES)
    assert "saved with other flags (1250 -> 1280); running it again" in capsys.readouterr().out
    # a record that names no command cannot be compared: it is kept
    (tmp_path / "some-arm.json").write_text(json.dumps({"arm": "some-arm", "results": {}}))
    assert study.run_arm(arm, [], tmp_path) == {"arm": "some-arm", "results": {}}


def test_commands_compare_without_their_output_folder_and_checkout():
    here = ["run_grounding.py", "--train_file", "/tmp/wt/outputs/study/mixes/m/train.jsonl", "--output_dir", "/a"]
    there = ["run_grounding.py", "--train_file", "/work/main/outputs/study/mixes/m/train.jsonl", "--output_dir", "b"]
    assert study.comparable(here) == study.comparable(there) == [
        "run_grounding.py", "--train_file", "outputs/study/mixes/m/train.jsonl",
    ]  # fmt: skip
    assert study.changes(["a", "1250", "b"], ["a", "1280", "b", "--bf16"]) == "1250 -> 1280; (none) -> --bf16"


def test_arm_names_are_unique_and_the_standard_part_runs_on_the_standard_world():
    """A saved arm is found by its name, so two arms of one name would silently share a result."""
    arms = [arm for part in study.PARTS if part != "sampling" for arm in study.arms_of(part, [0, 1])]
    names = [arm.name for arm in arms]
    assert len(names) == len(set(names))
    standard = [arm for arm in arms if arm.part == "standard"]
    assert len(standard) == 12 and all("--synthetic_preset standard" in " ".join(arm.flags) for arm in standard)


def backbone_record(backbone, mode, test_r1, novel_r1, queries=1500):
    results = {f"{split}_R1@0.5": value for split, value in (("test", test_r1), ("test_novel", novel_r1))}
    results |= {"test_num_queries": queries, "test_novel_num_queries": queries, "test_mIoU": 40.0}
    results |= {"test_novel_mIoU": 30.0}
    labels = {"backbone": backbone, "mode": mode}
    return {"labels": labels, "results": results, "wall_s": 100.0, "command": "python run_grounding.py ..."}


def test_binomial_standard_error_of_a_recall():
    assert abs(study_tables.binomial_se(50.0, 1500) - 1.291) < 1e-3
    assert study_tables.binomial_se(100.0, 10) == 0.0


def test_the_backbones_table_calls_a_difference_only_past_seed_spread_and_binomial_error():
    records = [backbone_record("recognition", "frozen", r, 40.0 + i) for i, r in enumerate((60.0, 61.0, 62.0))]
    records += [backbone_record("recognition", "scada", r, 41.0 + i) for i, r in enumerate((70.0, 71.0, 72.0))]
    records += [backbone_record("recognition", "scada, no FiLM", r, 41.0) for r in (69.0, 70.5, 71.0)]
    text = study_tables.backbones_table(records)
    comparisons = {line.split(" | ")[1]: line for line in text.splitlines() if " − " in line}
    # test: +10 points against a bar of max(std 1.0, hypot of two s.e. ~1.2-1.25) -> a difference; novel: +1 -> not
    frozen = comparisons["scada − frozen"].split(" | ")
    assert frozen[2:6] == ["+10.0", "+16 %", frozen[4], "yes"] and float(frozen[4]) < 2
    assert frozen[6] == "+1.0" and frozen[9].startswith("no")
    assert comparisons["scada − scada, no FiLM"].split(" | ")[5] == "no"  # +0.8 is within the noise


def test_the_backbones_part_runs_every_mode_on_both_backbones_with_large_splits():
    arms = study.backbone_arms([0, 1])
    assert len({arm.name for arm in arms}) == len(arms) == 2 * (2 * 8 - 1)
    assert [arm.seed for arm in arms[:15]] == [0] * 15  # seed by seed: a part stopped halfway stays balanced
    for arm in arms:
        assert arm.flags[arm.flags.index("--video_model") + 1] in study.BACKBONES
        assert " ".join(study.LARGE_SPLITS) in " ".join(arm.flags)
    # the arms saved before the pooling / placement modes were added keep their file names
    assert "backbones-synthetic-tiny-recognition-full-backbone-lr-x01-seed1" in {arm.name for arm in arms}


def test_the_sweep_and_standard_world_parts():
    sweep = study.arms_of("sweep", [0])
    assert len(sweep) == len(study.SWEEP) and all("--backbone_tuning" in arm.flags for arm in sweep)
    assert all(arm.flags[arm.flags.index("--video_model") + 1] == "synthetic-tiny-recognition" for arm in sweep)
    standard = study.arms_of("standard-large", [0, 1])
    assert len(standard) == 2 * (7 + 7) and all(arm.labels["world"] == "standard" for arm in standard)
    for arm in standard:
        assert arm.flags[arm.flags.index("--synthetic_preset") + 1] == "standard"
        # the standard world's 1250 test_novel videos already hold 1,628 queries: its arms keep the splits they ran on
        assert " ".join(study.STANDARD_LARGE_SPLITS) in " ".join(arm.flags)
    assert standard[0].labels["backbone"] == "recognition"  # the recognition backbone's arms run first


def test_the_validation_figure_comes_from_the_last_checkpoint_and_fills_old_records(tmp_path, monkeypatch):
    run_dir = tmp_path / "runs" / "arm-a"
    for step, history in ((88, [30.0]), (176, [30.0, 41.5])):
        log = [{"epoch": i + 1, "eval_R1@0.5": value} for i, value in enumerate(history)] + [{"loss": 0.9}]
        (run_dir / f"checkpoint-{step}").mkdir(parents=True)
        state = {"best_metric": max(history), "log_history": log}
        (run_dir / f"checkpoint-{step}" / "trainer_state.json").write_text(json.dumps(state))
    assert study.best_validation(run_dir) == {"best_R1@0.5": 41.5, "R1@0.5_per_epoch": [30.0, 41.5]}
    assert study.best_validation(tmp_path / "runs" / "missing") is None
    results = tmp_path / "results"
    results.mkdir()
    (results / "arm-a.json").write_text(json.dumps({"arm": "arm-a"}))
    (results / "arm-b.json").write_text(json.dumps({"arm": "arm-b"}))  # its run folder is gone: left as it is
    monkeypatch.setattr(study, "WORK", tmp_path)
    study.fill_validation(results)
    assert json.loads((results / "arm-a.json").read_text())["validation"]["best_R1@0.5"] == 41.5
    assert "validation" not in json.loads((results / "arm-b.json").read_text())


def test_the_sweep_table_shows_what_the_setting_is_chosen_by():
    results = {"test_R1@0.5": 31.0, "test_novel_R1@0.5": 33.0, "train_loss": 0.87, "train_seconds_per_step": 0.4}
    results |= {"test_novel_num_queries": 1504}
    records = [
        {"labels": {"mode": "full, backbone lr x0.3"}, "results": results, "wall_s": 300, "command": "python x",
         "validation": {"best_R1@0.5": 35.74, "R1@0.5_per_epoch": [18.9, 35.74]}},
        {"labels": {"mode": "partial"}, "results": results, "wall_s": 300, "command": "python x"},
    ]  # fmt: skip
    text = study_tables.sweep_table(records)
    assert "| full, backbone lr x0.3 | 35.7 | 19 / 36 | 31.0 | 33.0 | 1,504 | 0.870 | 0.400 |" in text
    assert "| partial | nan |  | 31.0 |" in text  # no validation record: shown as missing, not invented


def test_the_sweeps_chosen_setting_joins_part_7_at_its_seeds_and_the_sweep_table_keeps_seed_0(tmp_path, capsys):
    def save(name, part, seed, record):
        record |= {"arm": name, "part": part, "seed": seed, "results": record["results"] | {"train_loss": 0.9}}
        record["results"]["train_seconds_per_step"] = 0.3
        (tmp_path / f"{name}.json").write_text(json.dumps(record))

    for seed in range(3):
        save(f"b-frozen-{seed}", "backbones", seed, backbone_record("recognition", "frozen", 30.0, 31.0))
        save(f"s-partial-{seed}", "sweep", seed, backbone_record("recognition", "partial, x0.3", 33.0 + seed, 34.0))
    save("s-full-0", "sweep", 0, backbone_record("recognition", "full, x1", 29.0, 30.0))
    study_tables.print_tables(tmp_path)
    text = capsys.readouterr().out
    part7, sweep = text.split("### 8.")
    assert "| recognition | partial, x0.3 | 3 | 34.0 ± 1.0 |" in part7 and "full, x1" not in part7
    assert "partial, x0.3 − frozen" in part7
    assert sweep.count("| partial, x0.3 |") == 1 and "| full, x1 |" in sweep  # seed 0 only


def test_part_10_runs_on_the_20k_backbone_first_modes_first_and_its_table_shows_the_shorter_run_beside_it(
    tmp_path, capsys
):
    arms = study.arms_of("recognition-20k", [0, 1])
    assert len(arms) == 2 * len(study.RECOGNITION_20K_MODES)
    assert all(arm.flags[arm.flags.index("--video_model") + 1] == "synthetic-tiny-recognition-20k" for arm in arms)
    assert [arm.labels["mode"] for arm in arms[:2]] == ["frozen", "scada"] and arms[0].seed == arms[6].seed == 0
    assert all(" ".join(study.LARGE_SPLITS) in " ".join(arm.flags) for arm in arms)
    assert not any("20k" in arm.name for arm in study.arms_of("backbones", [0]) + study.arms_of("standard-large", [0]))
    for part, backbone, mode in [
        ("backbones", "recognition", "frozen"),
        ("backbones", "recognition", "scada"),
        ("backbones", "recognition", "scada, mean pooling"),  # not run on the 20k backbone: not in its table
        ("backbones", "token targets", "frozen"),
        ("recognition-20k", "recognition, 20k steps", "frozen"),
        ("recognition-20k", "recognition, 20k steps", "scada"),
    ]:
        saved = backbone_record(backbone, mode, 40.0, 40.0) | {"part": part, "seed": 0, "wall_s": 1.0}
        saved |= {"command": "python run_grounding.py ...", "load_1min_mean": 1.0}
        name = f"{part}-{backbone}-{mode}".replace(" ", "-").replace(",", "")
        (tmp_path / f"{name}.json").write_text(json.dumps(saved | {"arm": name}))
    study_tables.print_tables(tmp_path)
    part_10 = capsys.readouterr().out.split("### 10.")[1]
    rows = [line for line in part_10.splitlines() if line.startswith("| recognition")]
    assert [row.split(" | ")[:3] for row in rows] == [
        ["| recognition, 20k steps", "frozen", "1"],
        ["| recognition, 20k steps", "scada", "1"],
        ["| recognition", "frozen", "1"],
        ["| recognition", "scada", "1"],
        ["| recognition, 20k steps", "scada − frozen", "+0.0"],  # part 7's own difference stays in part 7
    ]
    assert "\n2 runs, " in part_10  # the footer counts part 10's own arms, not part 7's shown beside them


def test_the_footer_shows_output_paths_relative_to_the_checkout_the_arm_ran_in():
    record = {"wall_s": 10.0, "command": "python run_grounding.py --output_dir /tmp/wt/outputs/study/runs/a --seed 0"}
    assert "    python run_grounding.py --output_dir outputs/study/runs/a --seed 0\n" in study_tables.footer([record])


def test_a_longer_run_is_set_against_frozen_and_scada_at_its_own_budget_and_against_itself_at_the_default():
    records = [backbone_record("r", mode, value, value) for mode, value in [("frozen", 40.0), ("scada", 40.0)]]
    records += [
        backbone_record("r", "frozen, 12 epochs", 42.0, 42.0),
        backbone_record("r", "scada, 12 epochs", 50.0, 50.0),
        backbone_record("r", "full, backbone lr x0.1", 41.0, 41.0),
        backbone_record("r", "full, backbone lr x0.1, 12 epochs", 46.0, 46.0),
    ]
    differences = [
        line.split(" | ")[1] for line in study_tables.backbones_table(records).splitlines() if " − " in line
    ]
    assert differences == [
        "scada − frozen",
        "frozen, 12 epochs − frozen",
        "scada, 12 epochs − frozen, 12 epochs",
        "scada, 12 epochs − scada",
        "full, backbone lr x0.1 − frozen",
        "full, backbone lr x0.1 − scada",
        # a longer full run: against frozen and SCADA at 12 epochs, not SCADA at 6
        "full, backbone lr x0.1, 12 epochs − frozen, 12 epochs",
        "full, backbone lr x0.1, 12 epochs − full, backbone lr x0.1",
        "full, backbone lr x0.1, 12 epochs − scada, 12 epochs",
    ]


def test_a_row_whose_seeds_ran_on_splits_of_other_sizes_says_so():
    assert study_tables.queries([1504, 1504, 1504]) == "1,504"
    assert study_tables.queries([1473, 1504, 1504]) == "1,473-1,504"


def test_runs_of_one_command_in_other_sessions_are_tabled_side_by_side(tmp_path, capsys):
    results, reruns = tmp_path / "study", tmp_path / "reruns"
    results.mkdir(), reruns.mkdir()
    base = backbone_record("recognition", "partial, x0.3", 33.5, 35.0) | {"part": "sweep", "seed": 0, "arm": "s-0"}
    base["results"] |= {"train_loss": 0.87591, "train_seconds_per_step": 0.2}
    old = base | {"finished": "2026-12-03 08:36:50", "machine": {"cpus": 2}}  # before records named CPU and commit
    old["validation"] = {"best_R1@0.5": 36.08, "R1@0.5_per_epoch": [21.65, 36.08]}
    new = base | {
        "finished": "2026-12-07 23:40:00",
        "machine": {"cpus": 2, "cpu_capability": "AVX2", "torch_threads": 2},
    }
    new |= {"code": {"commit": "3677287" + "0" * 33, "modified": False}}
    new["validation"] = {"best_R1@0.5": 32.3, "R1@0.5_per_epoch": [21.65, 32.3]}
    changed = new | {"finished": "2026-12-08 01:54:26", "conditions": "FFmpeg's C paths"}
    changed["machine"] = new["machine"] | {"torch_threads": 1}
    (results / "s-0.json").write_text(json.dumps(new))
    for record in (new, old, changed):
        (reruns / f"s-0--{record['finished'][:10]}.json").write_text(json.dumps(record))
    study_tables.print_tables(results)
    text = capsys.readouterr().out.split("### 8b.")[1]
    rows = [line for line in text.splitlines() if line.startswith("| partial")]
    assert rows == [  # oldest first; what an older record does not say is shown as missing
        "| partial, x0.3, seed 0 | 2026-12-03 08:36 | — | — | — | 36.1 | 21.6 / 36.1 | 33.5 | 35.0 | 1,500 | 0.8759 |",
        "| partial, x0.3, seed 0 | 2026-12-07 23:40 | AVX2 | 2 threads | 3677287 | 32.3 | 21.6 / 32.3 | 33.5 | 35.0 | 1,500 "
        "| 0.8759 |",
        "| partial, x0.3, seed 0 | 2026-12-08 01:54 | AVX2 | 1 thread, FFmpeg's C paths | 3677287 | 32.3 | 21.6 / 32.3 "
        "| 33.5 | 35.0 | 1,500 | 0.8759 |",
    ]
