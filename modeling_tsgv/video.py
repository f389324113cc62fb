"""read_frames: frames sampled by time over a whole video, with the timestamps (seconds) they were shown at.

Backends: decord (default, fast random access), PyAV (fallback when decord is missing or fails on a file), torchcodec
(when asked for and importable: what `datasets.Video` uses; it needs the system FFmpeg libraries, so it cannot be the
default of a pip-only install). Every backend picks, for each target time t, the frame *shown* at t (the last frame
whose presentation time is <= t), so variable-frame-rate files map correctly; frame index / fps is never assumed.
"""

import logging
import os
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "decord", "pyav", "torchcodec")


class VideoDecodeError(RuntimeError):
    """A video file is missing, unreadable or has no video stream; the message names the path."""


@dataclass
class VideoFrames:
    """Frames read from one video.

    Attributes:
        frames: (T, H, W, 3) uint8 RGB.
        times_s: (T,) float64, presentation time (seconds) of each returned frame.
        duration_s: the video's duration in seconds (stream duration, else last frame end).
        backend: the decoder that produced the frames.
    """

    frames: np.ndarray
    times_s: np.ndarray
    duration_s: float
    backend: str


def sample_times_s(
    duration_s: float, num_frames: int, sampling: str = "uniform", rng=None, start_s: float = 0.0
) -> np.ndarray:
    """Target times for `num_frames` frames over [start_s, start_s + duration_s).

    "uniform": centres of `num_frames` equal segments, (k + 0.5) / T * duration. "random": one uniformly random time
    inside each segment (temporal jitter for training; order is kept). Returns (T,) float64 seconds.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if not duration_s > 0:
        raise ValueError(f"duration_s must be > 0, got {duration_s}")
    if sampling == "uniform":
        offsets = np.full(num_frames, 0.5)
    elif sampling == "random":
        offsets = (rng if rng is not None else np.random.default_rng()).random(num_frames)
    else:
        raise ValueError(f"sampling must be 'uniform' or 'random', got {sampling!r}")
    return start_s + (np.arange(num_frames) + offsets) / num_frames * duration_s


def _shown_at(frame_starts_s: np.ndarray, targets_s: np.ndarray) -> np.ndarray:
    """Index of the frame shown at each target time: the last frame starting at or before it (first frame if none)."""
    return np.clip(np.searchsorted(frame_starts_s, targets_s, side="right") - 1, 0, len(frame_starts_s) - 1)


def _read_decord(
    path: str, num_frames: int, sampling: str, rng, duration_s: float | None, start_s: float
) -> VideoFrames:
    import decord

    reader = decord.VideoReader(path, num_threads=1)
    if len(reader) == 0:
        raise VideoDecodeError(f"{path}: the video stream holds no frames")
    stamps = reader.get_frame_timestamp(np.arange(len(reader)))  # (N, 2) start/end seconds per frame
    duration = float(duration_s or stamps[-1, 1])
    index = _shown_at(stamps[:, 0], sample_times_s(duration, num_frames, sampling, rng, start_s))
    frames = reader.get_batch(index).asnumpy()
    return VideoFrames(frames, stamps[index, 0].astype(np.float64), duration, "decord")


def _pyav_duration_s(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return None


def _read_pyav(
    path: str, num_frames: int, sampling: str, rng, duration_s: float | None, start_s: float
) -> VideoFrames:
    """Decode forward, and seek only when the next target lies more than one keyframe interval ahead, so frames of one
    GOP are never decoded twice (a naive seek per frame re-decodes whole GOPs on long-GOP files) while short-GOP files
    still skip what lies between targets. The keyframe interval is learnt from the keyframes seen while decoding."""
    import av

    with av.open(path) as container:
        if not container.streams.video:
            raise VideoDecodeError(f"{path}: no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        duration = float(duration_s or _pyav_duration_s(container, stream) or 0.0)
        if duration <= 0:
            raise VideoDecodeError(f"{path}: cannot tell the video's duration")
        targets = sample_times_s(duration, num_frames, sampling, rng, start_s)
        keyframes_s = set()  # keyframe times seen so far
        frames, times = [], []
        decoder, current, pending = None, None, None  # current: last frame shown at or before the previous target
        for target in targets:
            if decoder is None or target - (current.time if current is not None else -np.inf) > _gop_s(keyframes_s):
                container.seek(int(target / stream.time_base), stream=stream, backward=True, any_frame=False)
                decoder, current, pending = container.decode(stream), None, None
            while True:
                frame = pending if pending is not None else next(decoder, None)
                pending = None
                if frame is None:  # end of stream: the last frame stays on screen
                    break
                if frame.key_frame and frame.time is not None:
                    keyframes_s.add(round(frame.time, 4))
                if frame.time is not None and frame.time > target:
                    pending = frame  # keep it for the next target
                    break
                current = frame
            chosen = current if current is not None else pending  # the first frame may start after the target
            if chosen is None:
                raise VideoDecodeError(f"{path}: no frame could be decoded near {target:.2f} s")
            frames.append(chosen.to_ndarray(format="rgb24"))
            times.append(chosen.time)
    return VideoFrames(np.stack(frames), np.asarray(times, dtype=np.float64), duration, "pyav")


def _gop_s(keyframes_s: set, default_s: float = 2.0) -> float:
    """Keyframe interval (seconds) estimated from the keyframe times seen: the smallest gap between two of them."""
    if len(keyframes_s) < 2:
        return default_s
    return float(np.diff(sorted(keyframes_s)).min())


def _read_torchcodec(
    path: str, num_frames: int, sampling: str, rng, duration_s: float | None, start_s: float
) -> VideoFrames:
    from torchcodec.decoders import VideoDecoder

    decoder = VideoDecoder(path, seek_mode="exact", dimension_order="NHWC")
    metadata = decoder.metadata
    duration = float(duration_s or metadata.duration_seconds or 0.0)
    if duration <= 0:
        raise VideoDecodeError(f"{path}: cannot tell the video's duration")
    end_s = metadata.end_stream_seconds or duration
    targets = np.minimum(sample_times_s(duration, num_frames, sampling, rng, start_s), np.nextafter(end_s, 0))
    batch = decoder.get_frames_played_at(seconds=targets.tolist())
    return VideoFrames(batch.data.numpy(), batch.pts_seconds.numpy().astype(np.float64), duration, "torchcodec")


_READERS = {"decord": _read_decord, "pyav": _read_pyav, "torchcodec": _read_torchcodec}


def read_frames(
    path: str | os.PathLike,
    num_frames: int,
    sampling: str = "uniform",
    backend: str = "auto",
    rng: np.random.Generator | None = None,
    duration_s: float | None = None,
    start_s: float = 0.0,
) -> VideoFrames:
    """Read `num_frames` frames sampled by time over the whole video (or over [start_s, start_s + duration_s)).

    Args:
        path: video file.
        num_frames: T, frames to return.
        sampling: "uniform" (segment centres, for evaluation) or "random" (one random time per segment, for training).
        backend: "auto" (decord, then PyAV if decord is missing or fails), "decord", "pyav" or "torchcodec".
        rng: numpy Generator for "random" sampling.
        duration_s: the time axis to sample over (e.g. the annotation's duration); default: the file's own duration.
            Targets past the last frame get the last frame.
        start_s: start of the sampled window (with `duration_s` as its length), for clips out of a longer video.
    Returns:
        `VideoFrames` with frames (T, H, W, 3) uint8 and their presentation times (T,) in seconds.
    Raises:
        VideoDecodeError naming the path when the file is missing, unreadable or holds no video.
    """
    path = os.fspath(path)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if not os.path.isfile(path):
        raise VideoDecodeError(f"{path}: video file not found")
    order = ["decord", "pyav"] if backend == "auto" else [backend]
    errors = []
    for name in order:
        try:
            return _READERS[name](path, num_frames, sampling, rng, duration_s, start_s)
        except ImportError as err:
            if backend != "auto":
                raise ImportError(f"backend {name!r} is not installed: {err}") from err
            errors.append(f"{name}: not installed")
        except VideoDecodeError:
            raise
        except Exception as err:  # decoder libraries raise many types for a bad file; we report them as one
            errors.append(f"{name}: {type(err).__name__}: {err}")
            logger.debug("%s failed on %s: %s", name, path, err)
    raise VideoDecodeError(f"{path}: cannot decode video ({'; '.join(errors)})")


def video_duration_s(path: str | os.PathLike) -> float:
    """Duration of a video file in seconds, read from its container metadata (PyAV); raises VideoDecodeError."""
    import av

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise VideoDecodeError(f"{path}: video file not found")
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise VideoDecodeError(f"{path}: no video stream")
            duration = _pyav_duration_s(container, container.streams.video[0])
    except av.error.FFmpegError as err:
        raise VideoDecodeError(f"{path}: cannot open video ({err})") from err
    if not duration or duration <= 0:
        raise VideoDecodeError(f"{path}: cannot tell the video's duration")
    return duration


__all__ = ["VideoDecodeError", "VideoFrames", "read_frames", "sample_times_s", "video_duration_s", "BACKENDS"]
