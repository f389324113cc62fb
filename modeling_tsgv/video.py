"""read_frames: frames sampled by time over a whole video, with the timestamps (seconds) they were shown at.

Backends: "auto" (the default: PyAV, then decord when PyAV cannot read a file), PyAV (streams in constant memory),
decord (fast random access), torchcodec (when asked for and importable: what `datasets.Video` uses; it needs the system
FFmpeg libraries, so it cannot be the default of a pip-only install). Every backend picks, for each target time t, the frame *shown* at t (the last frame
whose presentation time is <= t), so variable-frame-rate files map correctly; frame index / fps is never assumed.
"""

import itertools
import logging
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .files import atomic_path

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "decord", "pyav", "torchcodec")
_DECODER_THREADS = {"pyav": 0}  # 0: FFmpeg's automatic threading (one process decoding); see set_decoder_threads


def set_decoder_threads(threads: int) -> None:
    """Threads each PyAV decoder of this process uses: 0 (the default) lets FFmpeg choose (good for one process on a
    machine), 1 suits one process per core (DataLoader workers, `modeling_tsgv.prepare`'s processes), where FFmpeg's
    automatic threading would put a thread per core in every process. decord always decodes with one thread."""
    _DECODER_THREADS["pyav"] = int(threads)


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
    duration_s: float, num_frames: int, spacing: str = "uniform", rng=None, start_s: float = 0.0
) -> np.ndarray:
    """Target times for `num_frames` frames over [start_s, start_s + duration_s).

    "uniform": centres of `num_frames` equal segments, (k + 0.5) / T * duration. "random": one uniformly random time
    inside each segment (temporal jitter for training; order is kept). Returns (T,) float64 seconds.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if not duration_s > 0:
        raise ValueError(f"duration_s must be > 0, got {duration_s}")
    if spacing == "uniform":
        offsets = np.full(num_frames, 0.5)
    elif spacing == "random":
        offsets = (rng if rng is not None else np.random.default_rng()).random(num_frames)
    else:
        raise ValueError(f"spacing must be 'uniform' or 'random', got {spacing!r}")
    return start_s + (np.arange(num_frames) + offsets) / num_frames * duration_s


def _shown_at(frame_starts_s: np.ndarray, targets_s: np.ndarray) -> np.ndarray:
    """Index of the frame shown at each target time: the last frame starting at or before it (first frame if none)."""
    return np.clip(np.searchsorted(frame_starts_s, targets_s, side="right") - 1, 0, len(frame_starts_s) - 1)


def _pyav_duration_s(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return None


def _gop_s(keyframes_s: set, default_s: float = 2.0) -> float:
    """Keyframe interval (seconds) estimated from the keyframe times seen: the smallest gap between two of them."""
    if len(keyframes_s) < 2:
        return default_s
    return float(np.diff(sorted(keyframes_s)).min())


class VideoSource:
    """An open video from which frames are read at increasing target times, streaming (one decoder, kept open).

    Attributes:
        path: the file. backend: "decord", "pyav" or "torchcodec".
        short_side: with a value, frames are scaled (aspect kept, even sides) so their short side is that many px;
            PyAV scales while converting to RGB (no full-size RGB frame is made), the others after decoding.
        duration_s: the file's duration in seconds as its backend reports it (None when unknown).

    Use as a context manager, or call `close()`. Subclasses implement `_open` and `frames_at`.
    """

    backend = ""

    def __init__(self, path: str, short_side: int | None = None):
        self.path = path
        self.short_side = short_side  # frames come scaled so that their short side is this many px (None: as stored)
        self.duration_s: float | None = None
        self._open()

    def _open(self):
        raise NotImplementedError

    def frames_at(self, times_s) -> Iterator[tuple[np.ndarray, float]]:
        """Yield, for each target time (seconds, non-decreasing), the frame shown then: ((H, W, 3) uint8 RGB, its
        presentation time in seconds). Targets before the first frame get the first frame, targets past the last frame
        get the last one. Frames are decoded lazily, as the caller iterates."""
        raise NotImplementedError

    def close(self):
        """Release the decoder."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _DecordSource(VideoSource):
    backend = "decord"
    chunk = 16  # frames per get_batch call: decord is fastest in batches, and memory stays bounded

    def _open(self):
        try:  # optional decoder (a try keeps transformers' remote-code import check from requiring it)
            import decord
        except ImportError:
            raise

        try:  # decord prints its own multi-line error for a file FFmpeg cannot open: let PyAV say so, quietly
            import av

            av.open(self.path).close()
        except ImportError:
            pass
        self._reader = decord.VideoReader(self.path, num_threads=1)
        if len(self._reader) == 0:
            raise VideoDecodeError(f"{self.path}: the video stream holds no frames")
        self._stamps = self._reader.get_frame_timestamp(np.arange(len(self._reader)))  # (N, 2) start/end seconds
        self.duration_s = float(self._stamps[-1, 1])

    def frames_at(self, times_s):
        index = _shown_at(self._stamps[:, 0], np.asarray(times_s, dtype=np.float64))
        for first in range(0, len(index), self.chunk):
            part = index[first : first + self.chunk]
            frames = self._reader.get_batch(part).asnumpy()  # (n, H, W, 3)
            frames = [scale_short_side(frame, self.short_side) for frame in frames]
            yield from zip(frames, self._stamps[part, 0].astype(np.float64).tolist())

    def close(self):
        self._reader = None


class _PyAVSource(VideoSource):
    """Decodes forward, and seeks only when the next target lies more than one keyframe interval ahead, so frames of
    one GOP are never decoded twice (a naive seek per frame re-decodes whole GOPs on long-GOP files) while short-GOP
    files still skip what lies between targets. The keyframe interval is learnt from the keyframes seen while
    decoding. Times are relative to the stream's first timestamp (as decord and players count them)."""

    backend = "pyav"

    def _open(self):
        import av

        self._container = av.open(self.path)
        try:
            self._stream = _pyav_video_stream(self._container, self.path)
        except VideoDecodeError:
            self._container.close()
            raise
        if _DECODER_THREADS["pyav"] == 1:
            self._stream.thread_type, self._stream.thread_count = "NONE", 1
        else:
            self._stream.thread_type, self._stream.thread_count = "AUTO", _DECODER_THREADS["pyav"]
        self._start_s = _pyav_start_s(self._stream)
        self.duration_s = _pyav_duration_s(self._container, self._stream) or _pyav_scan_duration_s(
            self._container, self._stream, self._start_s
        )

    def frames_at(self, times_s):
        stream, start_s = self._stream, self._start_s
        keyframes_s = set()  # keyframe times seen so far

        def time_of(frame):
            return None if frame.time is None else frame.time - start_s

        decoder, current, pending = None, None, None  # current: last frame shown at or before the previous target
        frame, warned = None, False
        for target in np.asarray(times_s, dtype=np.float64).tolist():
            if decoder is None or target - (time_of(current) if current is not None else -np.inf) > _gop_s(
                keyframes_s
            ):
                decoder, pending = _pyav_seek(self._container, stream, target, start_s, _gop_s(keyframes_s))
                current = None
            while True:
                frame = pending if pending is not None else next(decoder, None)
                pending = None
                if frame is None:  # end of stream: the last frame stays on screen
                    break
                if frame.key_frame and frame.time is not None:
                    keyframes_s.add(round(time_of(frame), 4))
                if frame.time is not None and time_of(frame) > target:
                    pending = frame  # keep it for the next target
                    break
                current = frame
            chosen = current if current is not None else pending  # the first frame may start after the target
            if chosen is None:
                raise VideoDecodeError(f"{self.path}: no frame could be decoded near {target:.2f} s")
            shown_s = float(time_of(chosen))
            if frame is None and not warned and target - shown_s > max(1.0, 0.05 * (self.duration_s or 0)):
                warned = True  # the header promised more than the packets hold (a truncated or mis-muxed file)
                logger.warning(
                    f"{self.path}: the container says {self.duration_s:.2f} s but the frames stop at {shown_s:.2f} s; "
                    "later times show the last frame"
                )
            yield _displayed(chosen, self.short_side), shown_s

    def close(self):
        self._container.close()


def scaled_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    """(width, height) scaled so the short side is `short_side` px, aspect kept, both even (what H.264 and
    swscale like); unchanged when `short_side` is None."""
    if short_side is None:
        return width, height
    scale = short_side / min(width, height)
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def scale_short_side(array: np.ndarray, short_side: int | None) -> np.ndarray:
    """(H, W, 3) uint8 scaled (bilinear, PIL) so its short side is `short_side` px; unchanged when None or already."""
    if short_side is None or min(array.shape[:2]) == short_side:
        return array
    from PIL import Image

    width, height = scaled_size(array.shape[1], array.shape[0], short_side)
    return np.asarray(Image.fromarray(array).resize((width, height), Image.BILINEAR))


_REFORMATTERS = threading.local()


def _reformatter():
    """This process's and thread's PyAV `VideoReformatter` (it holds a swscale context and its slice threads).

    PyAV (18.1 here) keeps one reformatter per thread behind `frame.to_ndarray(...)` and `frame.reformat(...)`. A
    forked process (a DataLoader worker) inherits its parent's, but not the slice threads that swscale started in
    the parent, so the worker's first conversion waits for them forever: a training run hangs at its first batch
    once the parent has decoded a frame. Ours is made anew in each process; the inherited one is kept referenced,
    as freeing it would wait on the same missing threads."""
    if getattr(_REFORMATTERS, "pid", None) != os.getpid():  # once per process and thread, not per frame
        from av.video.reformatter import Interpolation, VideoReformatter

        _STALE_REFORMATTERS.append(getattr(_REFORMATTERS, "reformatter", None))
        _REFORMATTERS.pid, _REFORMATTERS.reformatter = os.getpid(), VideoReformatter()
        exact = Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.BITEXACT  # see `reformat_exact`
        _REFORMATTERS.exact = exact | Interpolation.FULL_CHR_H_INT
    return _REFORMATTERS.reformatter


_STALE_REFORMATTERS = []  # reformatters inherited through fork: never freed (see `_reformatter`)


def reformat_exact(frame, format: str, width: int | None = None, height: int | None = None):
    """A PyAV `VideoFrame` converted to pixel `format` (e.g. "rgb24", "yuv420p") and scaled (bilinear) to `width` x
    `height` px (None: its own), with the same pixels on every CPU. Returns a new `VideoFrame`.

    swscale's default conversion runs SIMD code chosen by the CPU, and its paths round differently: decoding one H.264
    file with FFmpeg's AVX2 paths and with its plain C ones gives different RGB in 74 % of values (up to 3 levels;
    rgb24 -> yuv420p differs too), so one video gave other frames on other machines (docs/study.md section 8).
    Accurate rounding makes swscale give one answer whatever the CPU (tests/test_video.py forces FFmpeg's CPU flags
    to check it); its YUV -> RGB path then interpolates chroma, horizontally too with FULL_CHR_H_INT (the default's
    nearest chroma on unscaled frames is gone): on the synthetic world, decoded RGB is 2.18 levels from the rendered
    frames on average against the default's 2.43, with more edge pixels off by over 8 levels (5.6 % against 3.9 %).
    Bilinear scaling as before."""
    reformatter = _reformatter()
    return reformatter.reformat(frame, format=format, width=width, height=height, interpolation=_REFORMATTERS.exact)


def _displayed(frame, short_side: int | None = None) -> np.ndarray:
    """A PyAV frame as (H, W, 3) uint8 RGB the way players show it: turned by its display matrix (phones record
    portrait video as landscape frames plus a rotation), as decord and FFmpeg's players do; with `short_side`,
    scaled by swscale while converting (a quarter turn keeps the short side)."""
    width, height = scaled_size(frame.width, frame.height, short_side)
    array = reformat_exact(frame, "rgb24", width, height).to_ndarray()
    turns = round(getattr(frame, "rotation", 0) / 90) % 4  # counter-clockwise quarter turns
    return np.ascontiguousarray(np.rot90(array, turns)) if turns else array


def _pyav_video_stream(container, path: str):
    """The first video stream of an open PyAV container; `VideoDecodeError` naming `path` when it has none."""
    if not container.streams.video:
        raise VideoDecodeError(f"{path}: no video stream")
    return container.streams.video[0]


def _pyav_start_s(stream) -> float:
    """The stream's first timestamp in seconds (0 when unknown): times we report are relative to it."""
    if stream.start_time is None or stream.time_base is None:
        return 0.0
    return float(stream.start_time * stream.time_base)


def _pyav_scan_duration_s(container, stream, start_s: float) -> float | None:
    """Duration from the packets' timestamps, for files whose header has none (some WebM / MKV): demuxes the whole
    file once without decoding. None when no packet has a timestamp."""
    end = None
    for packet in container.demux(stream):
        if packet.pts is not None:
            packet_end = packet.pts + (packet.duration or 0)
            end = packet_end if end is None else max(end, packet_end)
    container.seek(0)
    return None if end is None else float(end * stream.time_base) - start_s


def _pyav_seek(container, stream, target_s: float, start_s: float, gop_s: float):
    """Seek so that decoding starts at or before `target_s` (relative seconds); returns (decoder, first frame).

    Seeking lands on the keyframe before the target in MP4 / MKV, but in some containers (MPEG-TS) it can land after
    it; then we seek further back, doubling the distance, until the first frame is at or before the target or we are
    at the start of the stream."""
    back_s = 0.0
    while True:
        seek_s = max(target_s - back_s, 0.0)
        container.seek(int((seek_s + start_s) / stream.time_base), stream=stream, backward=True, any_frame=False)
        decoder = container.decode(stream)
        first = next(decoder, None)
        if first is None or first.time is None or first.time - start_s <= target_s + 1e-6 or seek_s == 0.0:
            return decoder, first
        back_s = max(2 * back_s, gop_s)


class _TorchcodecSource(VideoSource):
    backend = "torchcodec"
    chunk = 16

    def _open(self):
        try:  # optional decoder, see _DecordSource
            from torchcodec.decoders import VideoDecoder
        except ImportError:
            raise

        self._decoder = VideoDecoder(self.path, seek_mode="exact", dimension_order="NHWC")
        metadata = self._decoder.metadata
        self._start_s = float(metadata.begin_stream_seconds or 0.0)  # times we report are relative to it
        self._end_s = metadata.end_stream_seconds
        self.duration_s = metadata.duration_seconds or (self._end_s - self._start_s if self._end_s else None)

    def frames_at(self, times_s):
        targets = np.asarray(times_s, dtype=np.float64) + self._start_s
        if self._end_s:
            targets = np.minimum(targets, np.nextafter(self._end_s, 0))
        for first in range(0, len(targets), self.chunk):
            batch = self._decoder.get_frames_played_at(seconds=targets[first : first + self.chunk].tolist())
            times = batch.pts_seconds.numpy().astype(np.float64) - self._start_s
            yield from zip((scale_short_side(f, self.short_side) for f in batch.data.numpy()), times.tolist())

    def close(self):
        self._decoder = None


_SOURCES = {"decord": _DecordSource, "pyav": _PyAVSource, "torchcodec": _TorchcodecSource}


def _backend_order(path: str, backend: str) -> list[str]:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    check_video_path(path)
    # PyAV first: faster here for sparse sampling (benchmarks/decode.py), memory flat on long files, and it turns
    # display-matrix (phone) videos upright where decord fails; decord stays the fallback
    return ["pyav", "decord"] if backend == "auto" else [backend]


def check_video_path(path: str) -> None:
    """VideoDecodeError naming `path` when it is a URL, a folder or no file at all (decoders would try a URL over
    the network, or fail with a message about something else)."""
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", str(path)):
        raise VideoDecodeError(f"{path}: a URL; tsgv reads local video files only: download it and pass the file")
    if os.path.isdir(path):
        raise VideoDecodeError(f"{path}: a folder, not a video file")
    if not os.path.isfile(path):
        raise VideoDecodeError(f"{path}: video file not found")


def _try_backends(path: str, backend: str, attempt):
    """Run `attempt(backend_name)` for each backend in order until one succeeds; one VideoDecodeError if all fail."""
    errors = []
    for name in _backend_order(path, backend):
        try:
            return attempt(name)
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


def open_video(path: str | os.PathLike, backend: str = "auto", short_side: int | None = None) -> VideoSource:
    """Open a video for streaming reads at increasing times (see `VideoSource.frames_at`).

    Args:
        path: video file. backend: "auto" (PyAV, then decord if PyAV cannot read the file), "decord",
            "pyav" or "torchcodec". short_side: frames scaled to this short side (px), see `VideoSource`.
    Returns:
        an open `VideoSource` (a context manager).
    Raises:
        VideoDecodeError naming the path when the file is missing, unreadable or holds no video.
    """
    path = os.fspath(path)
    return _try_backends(path, backend, lambda name: _SOURCES[name](path, short_side))


def read_frames(
    path: str | os.PathLike,
    num_frames: int,
    spacing: str = "uniform",
    backend: str = "auto",
    rng: np.random.Generator | None = None,
    duration_s: float | None = None,
    start_s: float = 0.0,
    short_side: int | None = None,
) -> VideoFrames:
    """Read `num_frames` frames sampled by time over the whole video (or over [start_s, start_s + duration_s)).

    Args:
        path: video file.
        num_frames: T, frames to return.
        spacing: "uniform" (segment centres, for evaluation) or "random" (one random time per segment, for training).
        backend: "auto" (PyAV, then decord if PyAV fails), "decord", "pyav" or "torchcodec".
        rng: numpy Generator for "random" sampling.
        duration_s: the time axis to sample over (e.g. the annotation's duration); default: the file's own duration.
            Targets past the last frame get the last frame.
        start_s: start of the sampled window (with `duration_s` as its length), for clips out of a longer video.
        short_side: decode straight to this short side (px, aspect kept; see `VideoSource`), e.g. the model's frame
            size, instead of converting every frame to RGB at full resolution first.
    Returns:
        `VideoFrames` with frames (T, H, W, 3) uint8 and their presentation times (T,) in seconds.
    Raises:
        VideoDecodeError naming the path when the file is missing, unreadable or holds no video.
    """
    path = os.fspath(path)

    def attempt(name: str) -> VideoFrames:
        with _SOURCES[name](path, short_side) as source:
            duration = float(duration_s or source.duration_s or 0.0)
            if duration <= 0:
                raise VideoDecodeError(f"{path}: cannot tell the video's duration")
            targets_s = sample_times_s(duration, num_frames, spacing, rng, start_s)
            frames, times_s = zip(*source.frames_at(targets_s))
        return VideoFrames(np.stack(frames), np.asarray(times_s, dtype=np.float64), duration, name)

    return _try_backends(path, backend, attempt)


def video_duration_s(path: str | os.PathLike) -> float:
    """Duration of a video file in seconds, read from its container metadata (PyAV); raises VideoDecodeError."""
    import av

    path = os.fspath(path)
    check_video_path(path)
    try:
        with av.open(path) as container:
            duration = _pyav_duration_s(container, _pyav_video_stream(container, path))
    except av.error.FFmpegError as err:
        raise VideoDecodeError(f"{path}: cannot open video ({err})") from err
    if not duration or duration <= 0:
        raise VideoDecodeError(f"{path}: cannot tell the video's duration")
    return duration


def _frames_in(frames, offset_s: float, start_s: float, end_s: float):
    """Yield (frame, time_s) for the decoded `frames` shown in [start_s, end_s): first the frame on screen at start_s
    (timed start_s), then each later one at its own time (seconds from the stream's first timestamp `offset_s`)."""
    previous = None
    for frame in frames:
        if frame.time is None:
            continue
        time_s = frame.time - offset_s
        if time_s >= end_s:
            break
        if time_s <= start_s:
            previous = frame  # the frame on screen at start_s, once decoding reaches it
            continue
        if previous is not None:
            yield previous, start_s
            previous = None
        yield frame, time_s
    if previous is not None:
        yield previous, start_s


def cut_clip(path: str | os.PathLike, start_s: float, end_s: float, out_path: str | os.PathLike) -> int:
    """Write the part [start_s, end_s) of a video to `out_path` as an H.264 mp4 (video only; audio is not copied).

    Frames are re-encoded, so the cut is frame-accurate (a stream copy could only cut at keyframes); each frame keeps
    its own timing relative to start_s (variable frame rates survive), and the frame on screen at start_s opens the
    clip. Times count from the stream's first timestamp, as `read_frames` reports them. Odd frame sizes lose their last
    row / column (H.264 in yuv420p needs even sizes); nothing is resampled. Returns the number of frames written.

    Raises:
        VideoDecodeError naming the file when it is missing or unreadable; ValueError when end_s <= start_s or no
        frame lies in [start_s, end_s). On any error `out_path` is left as it was (written to a temporary file
        that replaces it only when complete).
    """
    import av

    path, out_path = os.fspath(path), os.fspath(out_path)
    if not end_s > start_s:
        raise ValueError(f"{path}: clip end {end_s:.3f} s must come after its start {start_s:.3f} s")
    check_video_path(path)
    written = 0
    try:
        with av.open(path) as source:
            stream = _pyav_video_stream(source, path)
            offset_s = _pyav_start_s(stream)  # start_s / end_s count from the stream's first timestamp
            duration_s = _pyav_duration_s(source, stream)
            if duration_s is not None and start_s >= duration_s:
                raise ValueError(f"{path}: no frame lies in [{start_s:.2f}, {end_s:.2f}) s (the video ends first)")
            width, height = stream.codec_context.width // 2 * 2, stream.codec_context.height // 2 * 2
            with atomic_path(out_path) as temporary, av.open(temporary, "w") as target:
                out = target.add_stream("libx264", rate=stream.average_rate or Fraction(25))
                out.width, out.height, out.pix_fmt = width, height, "yuv420p"
                out.codec_context.time_base = Fraction(1, 1000)  # pts in milliseconds since start_s
                decoder, first = _pyav_seek(source, stream, max(start_s, 0.0), offset_s, 2.0)
                last_pts = -1

                def write(frame, time_s):
                    nonlocal written, last_pts
                    pts = round(max(time_s - start_s, 0.0) * 1000)
                    if pts <= last_pts:  # two frames within one millisecond: keep the first
                        return
                    if frame.width != width or frame.height != height:  # odd size: crop, do not resample
                        pixels = reformat_exact(frame, "rgb24").to_ndarray()[:height, :width]
                        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
                    image = reformat_exact(frame, "yuv420p")
                    image.pts, image.time_base, last_pts = pts, Fraction(1, 1000), pts
                    target.mux(out.encode(image))
                    written += 1

                frames = itertools.chain([first] if first is not None else [], decoder)
                for frame, time_s in _frames_in(frames, offset_s, start_s, end_s):
                    write(frame, time_s)
                target.mux(out.encode())
                if written == 0:  # nothing to keep: the temporary file goes, out_path stays as it was
                    raise ValueError(f"{path}: no frame lies in [{start_s:.2f}, {end_s:.2f}) s")
    except av.error.FFmpegError as err:
        raise VideoDecodeError(f"{path}: cannot cut [{start_s:.2f}, {end_s:.2f}) s ({err})") from err
    return written


__all__ = [
    "VideoDecodeError",
    "VideoFrames",
    "VideoSource",
    "open_video",
    "read_frames",
    "reformat_exact",
    "sample_times_s",
    "video_duration_s",
    "BACKENDS",
]
