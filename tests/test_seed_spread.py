"""benchmarks/seed_spread.py: the mean ± std over seeds and the binomial standard error its table states, and that a
seed already run is read back, not run again."""

import json
import math
import sys

import pytest
from conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
import seed_spread  # noqa: E402


def test_spread_states_mean_std_and_one_seeds_standard_error():
    runs = {
        42: {"test_R1@0.5": 80.0, "test_num_queries": 400, "test_relevance_ECE": 5.0, "test_absent_queries": 100},
        1: {"test_R1@0.5": 84.0, "test_num_queries": 400, "test_relevance_ECE": 7.0, "test_absent_queries": 100},
    }
    rows = {(r["split"], r["figure"]): r for r in seed_spread.spread(runs)}
    recall = rows["test", "R1@0.5"]
    assert recall["mean"] == 82.0 and recall["std"] == pytest.approx(math.sqrt(8.0))
    assert recall["binomial_se"] == pytest.approx(math.sqrt(82 * 18 / 400)) and recall["values"] == [80.0, 84.0]
    ece = rows["test", "relevance_ECE"]
    assert ece["n"] == 500 and math.isnan(ece["binomial_se"])  # a calibration error is no proportion
    assert ("test_novel", "R1@0.5") not in rows  # a figure only where every run has it
    assert "\ntest | R1@0.5 | 82.00 ± 2.83 | 1.92 | 80.00 / 84.00\n" in seed_spread.table(rows.values(), [42, 1])


def test_a_finished_seed_is_read_not_run(tmp_path, monkeypatch):
    (tmp_path / "seed-7").mkdir()
    (tmp_path / "seed-7" / "all_results.json").write_text(json.dumps({"test_R1@0.5": 50.0, "test_num_queries": 10}))
    monkeypatch.setattr(seed_spread.subprocess, "run", lambda *a, **k: pytest.fail("ran a finished seed"))
    rows = seed_spread.main(["--seeds", "7", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "spread.json").read_text())["rows"]
    assert rows[0]["mean"] == saved[0]["mean"] == 50.0 and saved[0]["n"] == 10
