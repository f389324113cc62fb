"""Annotation readers on the real files in ../shared (documented counts), on small crafted files (each rule), the lazy
frame transform and both collators."""

import json

import numpy as np
import pytest
import torch
from conftest import write_test_video
from transformers import AutoTokenizer, VideoMAEVideoProcessor

from modeling_tsgv.annotations import explode_queries, load_annotations, read_annotations
from modeling_tsgv.data import FrameTransform, QueryCentricCollator, VideoCentricCollator


def charades_durations(root):
    return [root / "charades_sta" / "Charades_v1_train.csv", root / "charades_sta" / "Charades_v1_test.csv"]


def test_charades_sta_real_files(shared_data):
    rows, stats = read_annotations(
        shared_data / "charades_sta" / "charades_sta_train.txt",
        "charades-sta",
        durations=charades_durations(shared_data),
    )
    assert (stats.queries_kept, stats.videos_kept) == (12_404, 5_336)
    assert stats.dropped_moments["start >= end"] == 4 and stats.dropped["no valid moment"] == 4
    assert stats.ends_past_video == 1_805 and stats.clipped_ends == 1_802
    assert all(0 <= s < e <= row["duration_s"] for row in rows for spans in row["spans_s"] for s, e in spans)
    test = load_annotations(
        shared_data / "charades_sta" / "charades_sta_test.txt",
        "charades-sta",
        durations=charades_durations(shared_data),
    )
    assert len(test) == 1_334 and sum(len(s) for s in test["sentences"]) == 3_720
    # VSLNet's charades.json also serves as a duration table
    _, fixed = read_annotations(
        shared_data / "charades_sta" / "charades_sta_train.vslnet_fixed.txt",
        "charades-sta",
        durations=shared_data / "charades_sta" / "charades.vslnet.json",
    )
    assert fixed.queries_kept == 12_408 and fixed.clipped_ends == 1_802
    with pytest.raises(ValueError, match="need `durations`"):
        read_annotations(shared_data / "charades_sta" / "charades_sta_test.txt", "charades-sta")


def test_activitynet_real_files(shared_data):
    _, train = read_annotations(shared_data / "activitynet_captions" / "train.json", "activitynet")
    assert (train.queries_kept, train.videos_kept) == (37_417, 10_009)
    assert train.dropped_moments["start >= end"] == 4  # 2 start > end, 2 zero-length
    assert train.stripped_sentences == 25_731 and train.clipped_ends == 29  # float-noise ends are not "past"
    val = load_annotations(shared_data / "activitynet_captions" / "val_1.json", "activitynet")
    assert len(val) == 4_917 and sum(len(s) for s in val["sentences"]) == 17_505
    assert all(s == s.strip() for sentences in val["sentences"] for s in sentences)


def test_qvhighlights_real_files_keep_every_window_and_label_less_rows(shared_data):
    val = load_annotations(shared_data / "qvhighlights" / "highlight_val_release.jsonl", "qvhighlights")
    queries = [spans for video in val["spans_s"] for spans in video]
    assert len(val) == 1_519 and len(queries) == 1_550 and sum(len(q) for q in queries) == 2_803
    assert max(len(q) for q in queries) > 1
    _, test = read_annotations(shared_data / "qvhighlights" / "highlight_test_release.jsonl", "qvhighlights")
    assert test.queries_kept == test.label_less == 1_542 and test.moments_kept == 0


def test_tacos_real_files_in_frames_and_seconds(shared_data):
    rows, stats = read_annotations(shared_data / "tacos" / "train.json", "tacos")
    assert (stats.queries_kept, stats.videos_kept, stats.duplicates) == (9_790, 75, 1_201)
    assert stats.clipped_ends == 43
    _, deduped = read_annotations(shared_data / "tacos" / "train.json", "tacos", drop_duplicates=True)
    assert deduped.queries_kept == 9_790 - 1_201
    # frames -> seconds agrees with lighthouse's seconds-based copy of the same split
    frames_rows, _ = read_annotations(shared_data / "tacos" / "test.json", "tacos")
    seconds_rows, _ = read_annotations(shared_data / "tacos" / "tacos_test_release.lighthouse.jsonl", "tacos")
    first = {r["video_id"]: r for r in frames_rows}["s30-d52"]
    second = {r["video_id"]: r for r in seconds_rows}["s30-d52"]
    np.testing.assert_allclose(first["spans_s"][0], second["spans_s"][0], atol=1e-6)


def test_every_bad_row_rule_on_a_crafted_file(tmp_path, caplog):
    text = (
        "AAA 1.0 3.0##a person opens a door.\n"
        "AAA 4.0 2.0##start after end.\n"
        "AAA 2.0 2.0##zero length.\n"
        "AAA -1.0 2.0##negative.\n"
        "AAA 5.0 12.0##  runs past the end  \n"
        "AAA 10.0 12.0##starts at the end.\n"
        "AAA 1.0 2.0##   \n"
        "this line is broken\n"
        "AAA 1.0 3.0##a person opens a door.\n"
        "BBB 0.0 1.0##another video.\n"
    )
    path = tmp_path / "sta.txt"
    path.write_text(text)
    with caplog.at_level("INFO", logger="modeling_tsgv.annotations"):
        rows, stats = read_annotations(path, "charades-sta", durations={"AAA": 10.0, "BBB": 5.0})
    assert stats.queries_read == 10 and stats.queries_kept == 4 and stats.videos_kept == 2
    assert stats.dropped == {"unparseable line": 1, "empty sentence": 1, "no valid moment": 4}
    assert stats.dropped_moments == {
        "start >= end": 2,
        "negative or non-finite time": 1,
        "start at/after the video's end": 1,
    }
    assert stats.clipped_ends == 1 and stats.stripped_sentences == 2 and stats.duplicates == 1
    assert rows[0]["sentences"][1] == "runs past the end" and rows[0]["spans_s"][1] == [[5.0, 10.0]]
    assert "sta.txt: 4 queries over 2 videos" in caplog.text  # one summary line per file


def test_missing_videos_are_reported_and_durations_read_from_files(tmp_path, caplog):
    videos = tmp_path / "videos"
    videos.mkdir()
    write_test_video(videos / "AAA.mp4", np.arange(20) / 10)  # 2 s
    path = tmp_path / "sta.txt"
    path.write_text("AAA 0.5 1.5##here.\nZZZ 0.0 1.0##gone.\n")
    with caplog.at_level("INFO", logger="modeling_tsgv.annotations"):
        rows, stats = read_annotations(path, "charades-sta", video_dir=videos)
    assert [r["video_id"] for r in rows] == ["AAA"] and rows[0]["duration_s"] == pytest.approx(2.0, abs=0.11)
    assert rows[0]["video_path"] == str(videos / "AAA.mp4")
    assert stats.dropped == {"missing video": 1} and stats.missing_videos == [str(videos / "ZZZ.mp4")]
    assert str(videos / "ZZZ.mp4") in caplog.text


def test_generic_jsonl_format(tmp_path):
    records = [
        {"video_id": "v1", "sentence": "one", "start_s": 1, "end_s": 2, "duration_s": 10, "query_id": "q1"},
        {"video_id": "v1", "sentence": "two", "windows_s": [[0, 1], [5, 6]], "duration_s": 10},
        {"video_id": "v2", "sentence": "three", "duration_s": 4},
        {"sentence": "no video id"},
    ]
    path = tmp_path / "a.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    rows, stats = read_annotations(path, "jsonl")
    assert rows[0]["spans_s"] == [[[1.0, 2.0]], [[0.0, 1.0], [5.0, 6.0]]] and rows[0]["query_ids"][0] == "q1"
    assert rows[1]["spans_s"] == [[]] and stats.label_less == 1 and stats.dropped == {"unparseable line": 1}
    with pytest.raises(ValueError, match="format must be one of"):
        read_annotations(path, "csv")


@pytest.fixture
def video_dataset(tmp_path):
    """Two 3-s videos on disk and a dataset of them: v1 with 3 queries, v2 with 1 (two windows)."""
    for name in ("v1", "v2"):
        write_test_video(tmp_path / f"{name}.mp4", np.arange(30) / 10)
    records = [
        {"video_id": "v1", "sentence": "first", "start_s": 0.3, "end_s": 1.5},
        {"video_id": "v1", "sentence": "second", "start_s": 1.5, "end_s": 3.0},
        {"video_id": "v1", "sentence": "third", "start_s": 0.0, "end_s": 0.6},
        {"video_id": "v2", "sentence": "fourth", "windows_s": [[0.0, 0.3], [1.5, 2.4]]},
    ]
    path = tmp_path / "a.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records))
    return load_annotations(path, "jsonl", video_dir=tmp_path)


@pytest.fixture(scope="module")
def tokenizer(minilm_path):
    return AutoTokenizer.from_pretrained(minilm_path)


def frame_transform(spacing="uniform"):
    processor = VideoMAEVideoProcessor(size={"height": 32, "width": 32}, do_center_crop=False)
    return FrameTransform(processor, num_frames=8, spacing=spacing)


def test_video_centric_batches_decode_lazily(video_dataset, tokenizer):
    assert len(video_dataset) == 2 and video_dataset[0]["duration_s"] == pytest.approx(3.0, abs=0.11)
    video_dataset.set_transform(frame_transform())
    loader = torch.utils.data.DataLoader(video_dataset, batch_size=2, collate_fn=VideoCentricCollator(tokenizer))
    batch = next(iter(loader))
    assert batch["pixel_values"].shape == (2, 8, 3, 32, 32)
    assert batch["query_video_index"].tolist() == [0, 0, 0, 1] and batch["input_ids"].shape[0] == 4
    duration = batch["durations_s"][0].item()
    assert batch["labels"].shape == (4, 2, 2)  # one query has two windows: the others are padded with -100
    torch.testing.assert_close(batch["labels"][0, 0], torch.tensor([0.3, 1.5]) / duration)
    assert (batch["labels"][0, 1] == -100).all()
    torch.testing.assert_close(batch["labels"][3, 1], torch.tensor([1.5, 2.4]) / batch["durations_s"][1].item())
    # the transform decodes on access: the dataset itself holds no frames
    assert "pixel_values" not in video_dataset.with_format(None).column_names


def test_max_queries_per_video_samples_without_replacement(video_dataset, tokenizer):
    video_dataset.set_transform(frame_transform("random"))
    collator = VideoCentricCollator(tokenizer, max_queries_per_video=2)
    torch.manual_seed(0)
    seen = set()
    for _ in range(10):
        batch = collator([video_dataset[0]])
        assert batch["query_video_index"].tolist() == [0, 0]
        ids = tuple(tokenizer.batch_decode(batch["input_ids"], skip_special_tokens=True))
        assert len(set(ids)) == 2
        seen.add(ids)
    assert len(seen) > 1  # different subsets across steps


def test_query_centric_batches_repeat_the_video(video_dataset, tokenizer):
    per_query = explode_queries(video_dataset)
    assert len(per_query) == 4 and per_query["sentences"] == [["first"], ["second"], ["third"], ["fourth"]]
    per_query.set_transform(frame_transform())
    batch = QueryCentricCollator(tokenizer)([per_query[i] for i in range(3)])
    assert batch["pixel_values"].shape == (3, 8, 3, 32, 32) and batch["query_video_index"].tolist() == [0, 1, 2]
    torch.testing.assert_close(batch["pixel_values"][0], batch["pixel_values"][1])  # the same video, decoded 3 times
    video_dataset.set_transform(frame_transform())
    with pytest.raises(ValueError, match="explode_queries"):
        QueryCentricCollator(tokenizer)([video_dataset[0]])
