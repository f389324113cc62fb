"""What users feed the pipeline and the CLI: each case is answered or refused with a clear message, never a traceback
from deep inside a library, never a hang (README, "What users feed it")."""

import logging

import av
import numpy as np
import pytest
from conftest import write_test_video

from modeling_tsgv.cli import main as cli_main
from modeling_tsgv.video import VideoDecodeError, read_frames

WINDOW_S = 20.0


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("media")
    files = {
        "short": write_test_video(folder / "short.mp4", np.arange(0, 12, 0.5)),
        "0.3 s": write_test_video(folder / "blink.mp4", [0.0, 0.1, 0.2]),
        "1 frame": write_test_video(folder / "one.mp4", [0.0]),
        "3 hours": write_test_video(folder / "long.mp4", np.arange(0, 3 * 3600, 300.0)),
        "4K": write_test_video(folder / "4k.mp4", [0.0, 0.5, 1.0], size=(2160, 3840)),
        "32 px": write_test_video(folder / "tiny.mp4", np.arange(0, 5, 0.5), size=(32, 32)),
        "portrait": write_test_video(folder / "portrait.mp4", np.arange(0, 5, 0.5), size=(96, 48)),
        "variable frame rate": write_test_video(
            folder / "vfr.mp4", np.cumsum(np.r_[0, np.random.default_rng(0).uniform(0.02, 1.5, 40)])
        ),
    }
    # a phone's portrait video: landscape frames plus a display matrix turning them a quarter
    files["rotated"] = folder / "rotated.mp4"
    with av.open(str(files["rotated"]), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.set_display_rotation(90)
        for _ in range(20):
            frame = np.zeros((48, 64, 3), np.uint8)
            frame[:8, :16] = 255  # a white block in the top-left corner of the stored frame
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    files["audio only"] = folder / "speech.m4a"
    with av.open(str(files["audio only"]), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        for i in range(10):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    # the header says 12 s (moov first), the packets stop half-way: a download cut short
    full = folder / "full.mp4"
    with av.open(str(full), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        rng = np.random.default_rng(0)
        for _ in range(120):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    files["cut short"] = folder / "cut.mp4"
    data = full.read_bytes()
    files["cut short"].write_bytes(data[: len(data) // 2])
    return {name: str(path) for name, path in files.items()}


def _valid(spans, duration_s):
    assert spans, "no span"
    for span in spans:
        assert 0 <= span["start"] <= span["end"] <= duration_s + 1e-6
        assert np.isfinite(span["score"])


@pytest.mark.parametrize(
    "queries",
    [["ball"], ["la balle rouge roule à gauche 🏀", "红球向左滚", "мяч катится"], ["the red ball rolls"] * 20],
    ids=["one token", "non-ascii and emoji", "20 identical"],
)
def test_queries_of_any_kind_are_answered(pipe, media, queries):
    answers = pipe(media["short"], queries=queries, top_k=3)
    assert len(answers) == len(queries)
    for spans in answers:
        _valid(spans, 12.0)
    if len(set(queries)) == 1:
        assert all(spans == answers[0] for spans in answers)  # identical queries, identical answers


def test_a_1000_token_query_is_answered_and_its_truncation_said(pipe, media, caplog):
    with caplog.at_level(logging.WARNING):
        (spans,) = pipe(media["short"], queries=[" ".join(["ball"] * 1000)], top_k=2)
    _valid(spans, 12.0)
    assert "query 1 has 1,002 tokens; only its first 64 are read" in caplog.text  # numbered from 1, as everywhere


@pytest.mark.parametrize(
    "name,duration_s",
    [
        ("0.3 s", 0.3),
        ("1 frame", 0.001),
        ("3 hours", 3 * 3600),
        ("4K", 1.5),
        ("32 px", 5.0),
        ("portrait", 5.0),
        ("rotated", 2.0),
        ("variable frame rate", 60.0),
    ],
)
def test_videos_of_any_shape_are_answered(pipe, media, name, duration_s):
    (spans,) = pipe(media[name], queries=["a"], top_k=3)
    _valid(spans, duration_s)


def test_rotated_videos_are_read_upright(media):
    for backend in ("auto", "pyav"):
        frames = read_frames(media["rotated"], 2, "uniform", backend).frames
        assert frames.shape == (2, 64, 48, 3)  # turned as players show it
        assert frames[0, -8:, :8].mean() > 200 and frames[0, :8, :8].mean() < 50  # the block is now bottom-left


def test_a_file_whose_packets_end_before_its_header_says_is_answered_with_a_warning(pipe, media, caplog):
    with caplog.at_level(logging.WARNING):
        (spans,) = pipe(media["cut short"], queries=["a"])
    _valid(spans, 12.0)
    assert "the container says 12.00 s but the frames stop at" in caplog.text


@pytest.mark.parametrize(
    "video,message",
    [
        ("audio only", "speech.m4a: no video stream"),
        ("https://example.com/video.mp4", "a URL; tsgv reads local video files only"),
        ("FOLDER", "a folder, not a video file"),
        ("missing.mp4", "missing.mp4: video file not found"),
    ],
)
def test_what_is_not_a_video_is_refused_by_name(pipe, media, tmp_path, video, message):
    path = media.get(video) or (str(tmp_path) if video == "FOLDER" else video)
    with pytest.raises(VideoDecodeError, match=message):
        pipe(path, queries=["a"])


@pytest.mark.parametrize("top_k", [0, -1])
def test_top_k_below_one_is_refused(pipe, media, top_k):
    with pytest.raises(ValueError, match=f"top_k must be >= 1, got {top_k}"):
        pipe(media["short"], queries=["a"], top_k=top_k)


def test_top_k_beyond_the_candidates_returns_what_there_is(pipe, media):
    (spans,) = pipe(media["short"], queries=["a"], top_k=1000)
    _valid(spans, 12.0)
    assert len(spans) <= 1000


@pytest.mark.parametrize(
    "video,extra,code,message",
    [
        ("https://example.com/v.mp4", [], 1, "a URL; tsgv reads local video files only"),
        ("FOLDER", [], 1, "a folder, not a video file"),
        ("audio only", [], 1, "no video stream"),
        ("short", ["--top-k", "0"], 2, "--top-k must be >= 1"),
    ],
)
def test_the_cli_answers_bad_input_in_one_line(model_dir, media, tmp_path, capsys, video, extra, code, message):
    path = media.get(video) or (str(tmp_path) if video == "FOLDER" else video)
    status = cli_main([path, "a ball", "--model", str(model_dir), *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == code and len(err) == 1 and err[0].startswith("tsgv-ground: error: ") and message in err[0]
