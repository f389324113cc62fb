"""benchmarks/tvp_peer.py: TVP batches as it needs them, its loss in normalised time is its loss in seconds, spans
are scored in seconds, bad arguments stop in one line, and a tiny run writes every key the study reads."""

import json
import sys

import pytest
import torch
from conftest import REPO_ROOT

from modeling_tsgv.synthetic import generate

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
import tvp_peer  # noqa: E402


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return tvp_peer.build_model(vocab_size=100, pad_token_id=0, image_size=32, num_frames=2).eval()


def _inputs(batch: int):
    torch.manual_seed(1)
    ids = torch.randint(1, 100, (batch, 5))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "pixel_values": torch.randn(batch, 2, 3, 32, 32)}


def test_batches_of_several_videos_give_each_video_its_own_answer(model):
    inputs = _inputs(3)
    with torch.no_grad():
        batched = model(**inputs).logits
        alone = [model(**{k: v[i : i + 1] for k, v in inputs.items()}).logits for i in range(3)]
        original = type(model.model.visual_embeddings).__mro__[1]  # transformers' class: right for one video
        model.model.visual_embeddings.__class__ = original
        try:
            reference = model(**{k: v[:1] for k, v in inputs.items()}).logits
        finally:
            model.model.visual_embeddings.__class__ = tvp_peer.BatchedVisualEmbedding
    assert batched.shape == (3, 2)
    torch.testing.assert_close(batched, torch.cat(alone))
    torch.testing.assert_close(alone[0], reference)


def test_the_loss_in_normalised_time_is_the_loss_in_seconds(model):
    inputs, duration_s = _inputs(1), 12.5
    seconds = (torch.tensor([duration_s]), torch.tensor([2.0]), torch.tensor([7.5]))
    normalised = (torch.tensor(1.0), seconds[1] / duration_s, seconds[2] / duration_s)
    with torch.no_grad():
        loss_s = model(**inputs, labels=seconds).loss
        loss_n = model(**inputs, labels=normalised).loss
        batch = model(**_inputs(2), labels=(torch.tensor(1.0), torch.tensor([0.1, 0.5]), torch.tensor([0.3, 0.9])))
    torch.testing.assert_close(loss_n, loss_s)
    assert batch.loss.shape == (2,)  # TVP leaves it per query; TvpPeerTrainer averages it


def test_collator_builds_training_and_evaluation_batches():
    processor = tvp_peer.build_processor(32)
    rows = [
        {"video_id": "a", "sentences": ["the red disc spins"], "duration_s": 10.0, "spans_s": [[[2.0, 4.0]]],
         "pixel_values": torch.zeros(2, 3, 32, 32), "decode_error": "", "row_index": 0},
        {"video_id": "b", "sentences": ["a blue star"], "duration_s": 20.0, "spans_s": [[[5.0, 15.0]]],
         "pixel_values": torch.ones(2, 3, 32, 32), "decode_error": "VideoDecodeError: x", "row_index": 1},
    ]  # fmt: skip
    train = tvp_peer.QueryCollator(processor, train=True)(rows)
    assert train["pixel_values"].shape == (1, 2, 3, 32, 32)  # the undecodable video is dropped
    duration, start, end = train["labels"]
    assert float(duration) == 1.0 and start.tolist() == pytest.approx([0.2]) and end.tolist() == pytest.approx([0.4])
    evaluation = tvp_peer.QueryCollator(processor, train=False)(rows)
    assert evaluation["input_ids"].shape[0] == 2 and evaluation["labels"].tolist() == [[0, 0], [1, 1]]


def test_score_turns_normalised_spans_into_ordered_clipped_seconds():
    rows = [
        {"video_id": "v", "query_ids": ["v:1"], "sentences": ["a"], "duration_s": 10.0, "spans_s": [[[2.0, 6.0]]]},
        {"video_id": "v", "query_ids": ["v:2"], "sentences": ["b"], "duration_s": 10.0, "spans_s": [[[7.0, 9.0]]]},
        {"video_id": "w", "query_ids": ["w:1"], "sentences": ["c"], "duration_s": 20.0, "spans_s": [[[0.0, 5.0]]]},
    ]
    logits = torch.tensor([[0.6, 0.2], [0.65, 1.2], [0.0, 0.25]])
    metrics, records = tvp_peer.score(rows, logits, torch.tensor([[0, 0], [1, 0], [2, 1]]))
    assert [r["pred_spans_s"] for r in records] == [[[2.0, 6.0]], [[6.5, 10.0]], []]  # ordered, clipped, a miss
    assert metrics["R1@0.5"] == pytest.approx(200 / 3) and metrics["R1@0.7"] == pytest.approx(100 / 3)
    assert metrics["binding"] == 100.0 and metrics["binding_queries"] == 2 and metrics["num_queries"] == 3
    assert "R5@0.5" not in metrics


@pytest.mark.parametrize(
    "flags, message",
    [(["--learning_rate", "0"], "must be > 0"), (["--max_train_videos", "x"], "invalid int value"),
     (["--synthetic_preset", "hard"], "invalid choice")],
)  # fmt: skip
def test_bad_arguments_stop_in_one_line(tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as stop:
        tvp_peer.parse_arguments(["--output_dir", str(tmp_path)] + flags)
    error = capsys.readouterr().err
    assert stop.value.code == 2 and message in error and error.count("\n") == 1


def test_a_tiny_run_writes_the_study_keys(tmp_path, monkeypatch):
    world = tmp_path / "world"
    monkeypatch.setattr(tvp_peer, "generate", lambda folder, **kw: generate(folder, **{**kw, "num_videos": 8}))
    out = tmp_path / "run"
    flags = ["--output_dir", str(out), "--synthetic_dir", str(world), "--num_train_epochs", "1", "--num_frames", "2"]
    tvp_peer.main(flags + ["--image_size", "32", "--dataloader_num_workers", "0", "--max_eval_videos", "1"])
    results = json.loads((out / "all_results.json").read_text())
    for split in ("test", "test_novel"):
        for key in ("R1@0.3", "R1@0.5", "R1@0.7", "mIoU", "binding"):
            assert f"{split}_{key}" in results
    for key in ("train_runtime", "train_seconds_per_step", "trainable_params", "peak_host_memory_mb", "wall_time_s"):
        assert results[key] > 0
    assert results["epoch"] == 1.0 and results["best_epoch"] == 1.0
    assert (out / "predictions_test.jsonl").exists() and not list(out.glob("checkpoint-*"))
