"""Decoding speed of `read_frames` per backend, and of the whole data path (decode + resize + normalise), per video.

    python benchmarks/decode.py [--repeats 3] [--out-dir /tmp/tsgv_decode_bench]

Makes two H.264 files (60 s, 30 fps, 320x240, noise + a moving bar, so they are not trivially compressible): one with
long GOPs (keyframe every 250 frames), one with short GOPs (every 30). Reads 32 uniformly spaced frames (the file is
opened each time) and prints the median of `--repeats` runs as a markdown table. "pyav naive seek" is the baseline our
PyAV reader improves on: one seek per frame, which re-decodes whole GOPs.
"""

import argparse
import statistics
import time
from pathlib import Path

import av
import numpy as np
import torch

from modeling_tsgv.processing_tsgv import TSGVProcessor
from modeling_tsgv.video import read_frames, sample_times_s

NUM_FRAMES = 32


def make_video(path: Path, gop: int, seconds: int = 60, fps: int = 30, size=(240, 320)) -> Path:
    """Write the benchmark file once; frames carry noise and a bar moving across the picture."""
    if path.exists():
        return path
    rng = np.random.default_rng(0)
    height, width = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"g": str(gop), "keyint_min": str(gop), "preset": "veryfast", "crf": "23"}
        for index in range(seconds * fps):
            image = rng.integers(0, 60, (height, width, 3), dtype=np.uint8)
            left = (index * 3) % (width - 20)
            image[:, left : left + 20] = 230
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def naive_pyav_seek(path: Path):
    """One seek per target frame, decoding forward from the keyframe each time."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        duration = float(stream.duration * stream.time_base)
        frames = []
        for target in sample_times_s(duration, NUM_FRAMES):
            container.seek(int(target / stream.time_base), stream=stream, backward=True)
            for frame in container.decode(stream):
                if frame.time >= target - 1 / 60:
                    frames.append(frame.to_ndarray(format="rgb24"))
                    break
    return frames


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def available_backends() -> list[str]:
    backends = ["decord", "pyav"]
    try:
        import torchcodec.decoders  # noqa: F401

        backends.append("torchcodec")
    except (ImportError, OSError, RuntimeError):
        pass
    return backends


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out-dir", default="/tmp/tsgv_decode_bench")
    parser.add_argument("--image-size", type=int, default=224, help="frame size of the whole-data-path row")
    args = parser.parse_args()
    folder = Path(args.out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    files = {"GOP 250": make_video(folder / "gop250.mp4", 250), "GOP 30": make_video(folder / "gop30.mp4", 30)}
    processor = TSGVProcessor.from_text_encoder(image_size=args.image_size)
    torch.set_num_threads(1)

    rows = []
    for backend in available_backends():
        rows.append(
            (
                f"read_frames {backend}",
                {
                    k: median_ms(lambda p=p, b=backend: read_frames(p, NUM_FRAMES, backend=b), args.repeats)
                    for k, p in files.items()
                },
            )
        )
    rows.append(
        (
            "pyav naive seek (baseline)",
            {k: median_ms(lambda p=p: naive_pyav_seek(p), args.repeats) for k, p in files.items()},
        )
    )

    def whole_path(path):
        video = read_frames(path, NUM_FRAMES)
        return processor.video_processor([torch.from_numpy(video.frames)], return_tensors="pt")["pixel_values"]

    rows.append(
        (
            f"decode (auto) + resize/crop/normalise to {args.image_size}",
            {k: median_ms(lambda p=p: whole_path(p), args.repeats) for k, p in files.items()},
        )
    )

    print(
        f"{NUM_FRAMES} uniformly spaced frames from a 60 s, 30 fps, 320x240 H.264 file; median of {args.repeats}; 1 thread"
    )
    print("| method | " + " | ".join(f"{k} ms (frames/s)" for k in files) + " |")
    print("|---|" + "---:|" * len(files))
    for name, cells in rows:
        print(f"| {name} | " + " | ".join(f"{ms:.0f} ({1000 * NUM_FRAMES / ms:.1f})" for ms in cells.values()) + " |")


if __name__ == "__main__":
    main()
