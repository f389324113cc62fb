"""benchmarks/per_action.py: per-action R1@0.5 from a run's predictions, absent queries counted and left out."""

import json
import sys

import pytest
from conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
import per_action  # noqa: E402


def test_per_action_scores_present_queries_and_counts_absent_ones(tmp_path, capsys):
    world, run = tmp_path / "world", tmp_path / "run"
    (world / "annotations").mkdir(parents=True)
    run.mkdir()
    rows = [
        {"video_id": "v0", "sentence": "the red circle spins", "action": "spin"},
        {"video_id": "v0", "sentence": "the red circle blinks", "action": "blink"},
    ]
    (world / "annotations" / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    predictions = [
        {
            "video_id": "v0",
            "query": "the red circle spins",
            "gt_windows_s": [[1.0, 3.0]],
            "pred_spans_s": [[1.0, 3.0, 0.9]],
        },
        {
            "video_id": "v0",
            "query": "the red circle blinks",
            "gt_windows_s": [[4.0, 6.0]],
            "pred_spans_s": [[0.0, 1.0, 0.8]],
        },
        {"video_id": "v0", "query": "a blue star grows", "gt_windows_s": [], "pred_spans_s": [[0.0, 2.0, 0.1]]},
    ]
    (run / "predictions_test.jsonl").write_text("".join(json.dumps(p) + "\n" for p in predictions))
    table = per_action.per_action(run, world, ["test"])
    assert table["spin"] == {"queries": 1, "R1@0.5": 100.0, "mIoU": 100.0}
    assert table["blink"]["R1@0.5"] == 0.0 and table["absent"] == {"queries": 1}
    per_action.main([str(run), str(run), "--synthetic-dir", str(world), "--splits", "test"])
    out = capsys.readouterr().out
    assert "spin | 1 | 100.0 | 100.0" in out and "1 absent queries left out" in out


def test_a_folder_without_predictions_stops_with_one_line_naming_the_file(tmp_path, capsys):
    with pytest.raises(SystemExit):
        per_action.main([str(tmp_path / "not-a-run")])
    assert f"{tmp_path / 'not-a-run' / 'predictions_test.jsonl'}: missing" in capsys.readouterr().err
