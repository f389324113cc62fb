"""Property tests (hypothesis): the annotation readers on random well-formed and malformed rows, and the metrics."""

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modeling_tsgv.annotations import read_annotations
from modeling_tsgv.metrics import grounding_metrics, temporal_iou

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

times = st.one_of(
    st.floats(min_value=-5, max_value=60, allow_nan=False),  # mostly plausible, some negative or past the end
    st.just(float("nan")),
    st.just(float("inf")),
    st.text(max_size=3),  # not a number at all
)
sentences = st.one_of(st.text(max_size=30), st.just(""), st.just("   "), st.just("the red ball  rolls "))
near = st.tuples(st.floats(-1, 50, allow_nan=False), st.floats(-2, 8, allow_nan=False)).map(
    lambda pair: [pair[0], pair[0] + pair[1]]  # often almost empty, reversed or past the end: where bugs hide
)
window = st.one_of(near, st.lists(times, min_size=0, max_size=3))
windows = st.lists(window, min_size=0, max_size=3)


@st.composite
def jsonl_records(draw):
    """One line of tsgv jsonl: a well-formed query, or one with bad times / windows / sentence / fields / JSON."""
    kind = draw(st.sampled_from(["start_end", "windows", "label_less", "missing_field", "not_json"]))
    record = {"video_id": draw(st.sampled_from(["v1", "v2", "v3"])), "sentence": draw(sentences)}
    record["duration_s"] = draw(st.sampled_from([30.0, 12.5, 45.0]))
    if kind == "start_end":
        record["start_s"], record["end_s"] = draw(st.one_of(near, st.tuples(times, times)))
    elif kind == "windows":
        record["windows_s"] = draw(windows)
    elif kind == "missing_field":
        del record[draw(st.sampled_from(["video_id", "sentence"]))]
    line = json.dumps(record)
    return line[: len(line) // 2] if kind == "not_json" else line


def _check_rows(rows, stats):
    for row in rows:
        assert len(row["sentences"]) == len(row["spans_s"]) == len(row["query_ids"])
        for sentence, spans in zip(row["sentences"], row["spans_s"]):
            assert sentence == sentence.strip() and sentence
            for start_s, end_s in spans:
                assert math.isfinite(start_s) and math.isfinite(end_s)
                assert 0 <= start_s < end_s <= row["duration_s"]
    # every query read is kept or dropped for a counted reason
    assert stats.queries_read == stats.queries_kept + sum(stats.dropped.values())
    assert stats.moments_kept == sum(len(spans) for row in rows for spans in row["spans_s"])


@SETTINGS
@given(lines=st.lists(jsonl_records(), max_size=25))
def test_jsonl_reader_accepts_only_valid_windows_and_counts_every_rejection(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("jsonl") / "a.jsonl"
    path.write_text("\n".join(lines) + "\n")
    rows, stats = read_annotations(path, "jsonl")
    _check_rows(rows, stats)


@st.composite
def charades_lines(draw):
    """`VID start end##sentence`, or a line with bad numbers, a missing separator or missing fields."""
    kind = draw(st.sampled_from(["good", "good", "bad_numbers", "no_separator", "short"]))
    video = draw(st.sampled_from(["AO8RW", "Y6R7T"]))
    start, end = draw(near)
    sentence = draw(sentences)
    if kind == "bad_numbers":
        return f"{video} {draw(st.text(max_size=4))} {end}##{sentence}"
    if kind == "no_separator":
        return f"{video} {start} {end} {sentence}"
    if kind == "short":
        return f"{video} {start}##{sentence}"
    return f"{video} {start} {end}##{sentence}"


@SETTINGS
@given(lines=st.lists(charades_lines(), max_size=25))
def test_charades_reader_accepts_only_valid_windows_and_counts_every_rejection(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("sta") / "charades_sta_test.txt"
    path.write_text("\n".join(line.replace("\n", " ") for line in lines) + "\n")
    rows, stats = read_annotations(path, "charades-sta", durations={"AO8RW": 30.0, "Y6R7T": 21.5})
    _check_rows(rows, stats)


spans = st.tuples(st.floats(0, 100, allow_nan=False), st.floats(0, 100, allow_nan=False)).map(sorted)


@SETTINGS
@given(a=st.lists(spans, min_size=1, max_size=6), b=st.lists(spans, min_size=1, max_size=6))
def test_temporal_iou_is_symmetric_and_bounded(a, b):
    ab, ba = temporal_iou(a, b), temporal_iou(b, a)
    assert np.allclose(ab, ba.T)
    assert ((ab >= 0) & (ab <= 1)).all()
    for start, end in a:
        if end > start:
            assert temporal_iou([[start, end]], [[start, end]])[0, 0] == pytest.approx(1.0)


@st.composite
def grounding_cases(draw):
    """Queries with 1-3 reference windows of positive length and 1-8 ranked predictions (with scores)."""
    n = draw(st.integers(1, 8))
    positive = spans.filter(lambda s: s[1] - s[0] > 1e-3)
    references = [draw(st.lists(positive, min_size=1, max_size=3)) for _ in range(n)]
    predictions = [
        [[s, e, draw(st.floats(0, 1))] for s, e in draw(st.lists(spans, min_size=1, max_size=8))] for _ in range(n)
    ]
    return predictions, references


@SETTINGS
@given(case=grounding_cases(), scale=st.floats(0.01, 100))
def test_grounding_metrics_properties(case, scale):
    predictions, references = case
    metrics = grounding_metrics(predictions, references)
    for value in metrics.values():
        assert 0 <= value <= 100
    for threshold in ("0.3", "0.5", "0.7"):
        assert metrics[f"R5@{threshold}"] >= metrics[f"R1@{threshold}"]
    assert metrics["R1@0.3"] >= metrics["R1@0.5"] >= metrics["R1@0.7"]
    # time in other units (minutes, frames...) changes nothing
    scaled = grounding_metrics(
        [[[s * scale, e * scale, c] for s, e, c in p] for p in predictions],
        [[[s * scale, e * scale] for s, e in r] for r in references],
    )
    for key, value in metrics.items():
        assert scaled[key] == pytest.approx(value, abs=1e-6), key
    # answering every query with one of its own windows first is perfect
    perfect = grounding_metrics([[[*r[0], 1.0], *p] for p, r in zip(predictions, references)], references)
    assert all(value == pytest.approx(100.0) for value in perfect.values())
