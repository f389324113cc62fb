"""read_frames on real mp4 files made here: sampling by time, variable frame rate, backends agree, clear errors."""

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import frame_number, write_test_video

from modeling_tsgv.video import VideoDecodeError, read_frames, sample_times_s, video_duration_s


def _torchcodec_usable() -> bool:
    """torchcodec imports only where the system FFmpeg libraries are installed (not in a pip-only install)."""
    if importlib.util.find_spec("torchcodec") is None:
        return False
    try:
        import torchcodec.decoders  # noqa: F401
    except (ImportError, OSError, RuntimeError):
        return False
    return True


BACKENDS = [
    "decord",
    "pyav",
    pytest.param(
        "torchcodec", marks=pytest.mark.skipif(not _torchcodec_usable(), reason="torchcodec needs system FFmpeg libs")
    ),
]


@pytest.fixture(scope="module")
def vfr_video(tmp_path_factory):
    """30 frames with irregular gaps: every third gap is 0.2 s, the others 0.04 s (a variable frame rate)."""
    times = np.cumsum([0.0] + [0.04 if k % 3 else 0.2 for k in range(29)])
    return write_test_video(tmp_path_factory.mktemp("v") / "vfr.mp4", times), times


def test_sample_times_cover_the_whole_video():
    np.testing.assert_allclose(sample_times_s(10.0, 4), [1.25, 3.75, 6.25, 8.75])
    jittered = sample_times_s(10.0, 4, "random", np.random.default_rng(0))
    assert all(2.5 * k <= t < 2.5 * (k + 1) for k, t in enumerate(jittered))
    with pytest.raises(ValueError, match="spacing must be"):
        sample_times_s(10.0, 4, "dense")


@pytest.mark.parametrize("backend", BACKENDS)
def test_frames_come_with_the_time_they_were_shown(vfr_video, backend):
    path, times = vfr_video
    video = read_frames(path, 10, backend=backend)
    assert video.frames.shape == (10, 48, 64, 3) and video.frames.dtype == np.uint8
    assert video.backend == backend
    targets = sample_times_s(video.duration_s, 10)
    for frame, shown_s, target_s in zip(video.frames, video.times_s, targets):
        k = frame_number(frame)
        assert shown_s == pytest.approx(times[k], abs=2e-3)  # the returned time is the decoded frame's own time
        # and it is the frame on screen at the target time: it starts before it, the next one after it
        assert times[k] <= target_s + 1e-3 and (k + 1 == len(times) or times[k + 1] > target_s - 1e-3)


def _same_frames_up_to_colour_rounding(a: np.ndarray, b: np.ndarray) -> None:
    """decord converts YUV to RGB with FFmpeg's default (nearest chroma, the CPU's SIMD rounding), PyAV with swscale's
    accurate one (`reformat_exact`): each of `a`'s (T, H, W, 3) frames is `b`'s frame at the same index, RGB a level
    or two apart on average (more on colour edges), and nearer to it than to any other frame of `b`."""
    assert a.shape == b.shape
    distance = np.abs(a[:, None].astype(np.int16) - b[None].astype(np.int16)).mean(axis=(2, 3, 4))  # (T, T) levels
    assert (np.diag(distance) < 2.0).all(), np.diag(distance)
    assert (distance.argmin(axis=1) == np.arange(len(a))).all(), distance


def test_backends_return_the_same_frames_on_a_real_video(shared_data):
    path = shared_data / "videos" / "charades.mp4"
    a = read_frames(path, 8, backend="decord")
    b = read_frames(path, 8, backend="pyav")
    assert a.frames.shape == (8, 270, 480, 3)
    _same_frames_up_to_colour_rounding(a.frames, b.frames)
    np.testing.assert_allclose(a.times_s, b.times_s, atol=1e-3)
    assert video_duration_s(path) == pytest.approx(30.697, abs=0.05)
    # jittered sampling with the same seed gives the same frames on both backends, and seeks across long gaps
    c = read_frames(path, 3, "random", "decord", np.random.default_rng(1))
    d = read_frames(path, 3, "random", "pyav", np.random.default_rng(1))
    _same_frames_up_to_colour_rounding(c.frames, d.frames)
    np.testing.assert_allclose(c.times_s, d.times_s, atol=1e-3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sampling_over_a_longer_annotated_duration_repeats_the_last_frame(vfr_video, backend):
    path, times = vfr_video
    video = read_frames(path, 4, backend=backend, duration_s=10.0)  # targets 1.25, 3.75, 6.25, 8.75 s
    assert [frame_number(f) for f in video.frames][1:] == [29, 29, 29]


def test_unreadable_files_raise_one_clear_error(tmp_path):
    with pytest.raises(VideoDecodeError, match="missing.mp4: video file not found"):
        read_frames(tmp_path / "missing.mp4", 4)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(VideoDecodeError, match=r"garbage.mp4: cannot decode video \(pyav: .*; decord: "):
        read_frames(garbage, 4)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VideoDecodeError, match="empty.mp4"):
        read_frames(empty, 4, backend="pyav")
    with pytest.raises(VideoDecodeError, match="empty.mp4"):
        video_duration_s(empty)
    with pytest.raises(ValueError, match="backend must be one of"):
        read_frames(garbage, 4, backend="opencv")


def test_cut_clip_rejects_bad_requests(tmp_path):
    from modeling_tsgv.video import cut_clip

    video = write_test_video(tmp_path / "v.mp4", np.arange(0, 4, 0.5))
    with pytest.raises(ValueError, match="must come after its start"):
        cut_clip(video, 2.0, 2.0, tmp_path / "c.mp4")
    with pytest.raises(VideoDecodeError, match="missing.mp4: video file not found"):
        cut_clip(tmp_path / "missing.mp4", 0.0, 1.0, tmp_path / "c.mp4")
    assert cut_clip(video, 1.2, 2.6, tmp_path / "c.mp4") == 4  # frames shown at 1.0 (on screen at 1.2), 1.5, 2.0, 2.5


def test_a_cut_that_fails_midway_leaves_no_partial_file(tmp_path, monkeypatch):
    import modeling_tsgv.video as video_module

    video = write_test_video(tmp_path / "v.mp4", np.arange(0, 4, 0.5))
    clip = tmp_path / "c.mp4"
    assert video_module.cut_clip(video, 0.0, 1.0, clip) == 2
    before = clip.read_bytes()
    frames_in = video_module._frames_in

    def fail_after_one(*args):
        for index, item in enumerate(frames_in(*args)):
            if index == 1:
                raise OSError("disk full")
            yield item

    monkeypatch.setattr(video_module, "_frames_in", fail_after_one)
    with pytest.raises(OSError, match="disk full"):
        video_module.cut_clip(video, 0.0, 3.0, clip)
    assert clip.read_bytes() == before  # the earlier clip, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.mp4", "v.mp4"]  # no partial file beside it


def test_mpeg_ts_and_a_stream_that_does_not_start_at_zero(tmp_path):
    """Seeks that land after the target (MPEG-TS) are retried further back; times count from the first frame."""
    ts = write_test_video(tmp_path / "cam.ts", np.arange(0, 20, 0.25))  # frame k at k / 4 s
    for backend in ("pyav", "decord"):
        frames = read_frames(ts, 8, backend=backend, duration_s=8.0)
        assert [frame_number(f) for f in frames.frames] == [2, 6, 10, 14, 18, 22, 26, 30], backend

    late = write_test_video(tmp_path / "late.mp4", np.arange(2.0, 12.0, 0.25))  # first frame at 2.0 s
    read = {backend: read_frames(late, 8, backend=backend, duration_s=8.0) for backend in ("pyav", "decord")}
    for backend, frames in read.items():
        assert [frame_number(f) for f in frames.frames] == [2, 6, 10, 14, 18, 22, 26, 30], backend
        np.testing.assert_allclose(frames.times_s, np.arange(8) + 0.5, err_msg=backend)

    from modeling_tsgv.video import cut_clip

    assert cut_clip(late, 0.5, 1.5, tmp_path / "c.mp4") == 4  # frames 2..5, shown from 0.5, 0.75, 1.0, 1.25 s
    import av

    with av.open(str(tmp_path / "c.mp4")) as container:
        assert [frame_number(f.to_ndarray(format="rgb24")) for f in container.decode(video=0)] == [2, 3, 4, 5]
    with pytest.raises(ValueError, match="no frame lies in"):
        cut_clip(late, 50.0, 60.0, tmp_path / "none.mp4")
    assert not (tmp_path / "none.mp4").exists()


@pytest.mark.parametrize("backend", ["pyav", "decord"])
def test_frames_can_be_decoded_straight_to_the_models_short_side(tmp_path, backend):
    """short_side: frames come scaled (aspect kept, even sides), the same frames at the same times as a full-size
    decode resized afterwards, within resampling noise."""
    from PIL import Image

    pytest.importorskip(backend if backend != "pyav" else "av")
    path = write_test_video(tmp_path / "v.mp4", [i / 10 for i in range(30)], size=(90, 160))
    full = read_frames(path, 6, backend=backend)
    small = read_frames(path, 6, backend=backend, short_side=32)
    assert small.frames.shape == (6, 32, 56, 3)
    np.testing.assert_array_equal(small.times_s, full.times_s)
    resized = np.stack([np.asarray(Image.fromarray(f).resize((56, 32), Image.BILINEAR)) for f in full.frames])
    assert np.abs(small.frames.astype(int) - resized.astype(int)).mean() < 2.0


def _decode_in_child(path, queue):
    """Runs in a forked process: decode `path` and report the frame numbers seen."""
    queue.put([frame_number(frame) for frame in read_frames(path, 4, backend="pyav").frames])


def test_a_forked_process_decodes_after_its_parent_has(tmp_path):
    """DataLoader workers are forked after the parent decoded (a probe, a cache, an earlier run): PyAV's per-thread
    swscale context must not cross the fork, or the child's first frame waits for threads it does not have."""
    import multiprocessing

    path = write_test_video(tmp_path / "big.mp4", np.arange(4) * 0.04, size=(480, 640))  # big enough to slice-thread
    parent = [frame_number(frame) for frame in read_frames(path, 4, backend="pyav", short_side=240).frames]
    queue = multiprocessing.get_context("fork").Queue()
    child = multiprocessing.get_context("fork").Process(target=_decode_in_child, args=(path, queue))
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
        pytest.fail("a forked process hung decoding a frame after its parent had decoded one")
    assert child.exitcode == 0 and queue.get(timeout=5) == parent and len(parent) == 4


_UNDER_FFMPEG_CPU_FLAGS = r"""
import glob, hashlib, re, sys, ctypes
import av
maps = open("/proc/self/maps").read()
libavutil = re.search(r"(/\S*libavutil[^/\s]*\.so[^/\s]*)", maps).group(1)  # the copy PyAV loaded
flags = int(sys.argv[1])
if flags >= 0:
    ctypes.CDLL(libavutil).av_force_cpu_flags(flags)  # 0: FFmpeg's plain C paths, as on a CPU without its SIMD
assert ctypes.CDLL(libavutil).av_get_cpu_flags() == flags or flags < 0
from modeling_tsgv.synthetic.world import generate
from modeling_tsgv.video import read_frames
generate(sys.argv[2], num_videos=8, seed=3, image_size=64, progress=False, num_workers=1)
world, frames = hashlib.sha1(), hashlib.sha1()
for path in sorted(glob.glob(sys.argv[2] + "/videos/*.mp4")):
    world.update(open(path, "rb").read())
for path in sorted(glob.glob(sys.argv[3] + "/videos/*.mp4")):
    for short_side in (None, 48):
        frames.update(read_frames(path, 8, backend="pyav", short_side=short_side).frames.tobytes())
print(world.hexdigest(), frames.hexdigest())
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="finds PyAV's libavutil through /proc/self/maps")
def test_the_world_and_its_frames_are_the_same_whatever_simd_ffmpeg_runs(tmp_path):
    """Other machines run other FFmpeg SIMD paths, whose default colour conversion rounds differently (74 % of RGB
    values moved by up to 3 levels between the AVX2 and C paths): a world generated, and frames decoded, with FFmpeg
    limited to its C code must match those made with every SIMD path the machine has."""

    def run(flags: int, out: str, decode: str) -> list[str]:
        command = [sys.executable, "-c", _UNDER_FFMPEG_CPU_FLAGS, str(flags), out, decode]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout.split()

    first = str(tmp_path / "simd")
    simd = run(-1, first, first)
    plain = run(0, str(tmp_path / "plain"), first)  # the same world's files, decoded without SIMD
    assert plain[0] == simd[0], "the world's video files differ when FFmpeg runs without SIMD"
    assert plain[1] == simd[1], "decoded frames differ when FFmpeg runs without SIMD"
