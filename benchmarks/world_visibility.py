"""Which actions of the synthetic world show in the frames the default model samples? Prints a table per preset.

The default model sees 32 frames spread uniformly over the whole video (0.25-0.5 s apart in the easy world's 8-16 s
videos, up to 0.94 s in the standard world's 30 s). For every event this script renders its object alone at those
sampled times (exact masks, colours and opacity from the generator's tracks) and compares each sampled frame inside the
event, and the one just before it, with the next: a pair "shows change" when the object's look differs (mask IoU below
0.9, opacity by more than 0.3 or a colour channel by more than 20 of 255). Per action it reports the share of events
with at least one changing pair, the mean share of changing pairs, and the share of events whose object looks different
in the last sample before the event and the first after it (a lasting change) — an action whose events show no change
is one the model cannot see however well it learns.

    python benchmarks/world_visibility.py [--num-videos 300] [--num-frames 32]
"""

import argparse
import tempfile

import numpy as np

from modeling_tsgv.synthetic import ACTIONS, PRESETS, generate, object_mask, object_tracks, world_plans


def object_look(plan, tracks, object_index: int, frame_index: int):
    """(mask (S, S) bool, opacity, rgb (3,)) of one object drawn alone at one frame."""
    mask = object_mask(plan, tracks, object_index, frame_index)
    return mask, tracks["alpha"][object_index, frame_index], tracks["rgb"][object_index, frame_index]


def changed(a, b) -> bool:
    """Whether two looks of one object differ visibly (mask IoU < 0.9, opacity by > 0.3, colour by > 20 of 255)."""
    (mask_a, alpha_a, rgb_a), (mask_b, alpha_b, rgb_b) = a, b
    union = (mask_a | mask_b).sum()
    iou = (mask_a & mask_b).sum() / union if union else 1.0
    return iou < 0.9 or abs(alpha_a - alpha_b) > 0.3 or np.abs(rgb_a - rgb_b).max() > 20


def visibility(plans, num_frames: int) -> dict[str, tuple[float, float, float, int]]:
    """Per action: (share of events with a changing pair, mean share of changing pairs, share of events with a lasting
    change, events)."""
    seen, steady, lasting = {a: [] for a in ACTIONS}, {a: [] for a in ACTIONS}, {a: [] for a in ACTIONS}
    for plan in plans:
        tracks = object_tracks(plan)
        times_s = (np.arange(num_frames) + 0.5) / num_frames * plan.duration_s
        frame_indices = np.minimum((times_s * plan.fps).astype(int), plan.num_frames - 1)
        for event in plan.events:
            inside = np.flatnonzero((times_s >= event.start_s) & (times_s <= event.end_s))
            if len(inside) == 0:
                for values in (seen, steady, lasting):
                    values[event.action].append(0.0)
                continue
            first, last = max(inside[0] - 1, 0), min(inside[-1] + 1, num_frames - 1)
            looks = {
                i: object_look(plan, tracks, event.object_index, frame_indices[i]) for i in range(first, last + 1)
            }
            flags = [changed(looks[i], looks[i + 1]) for i in range(first, last)]
            seen[event.action].append(float(any(flags)))
            steady[event.action].append(float(np.mean(flags)) if flags else 0.0)
            lasting[event.action].append(float(changed(looks[first], looks[last])))
    return {a: (np.mean(seen[a]), np.mean(steady[a]), np.mean(lasting[a]), len(seen[a])) for a in ACTIONS if seen[a]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-videos", type=int, default=300)
    parser.add_argument("--num-frames", type=int, default=32, help="frames the model samples per video")
    args = parser.parse_args(argv)
    for preset in PRESETS:
        with tempfile.TemporaryDirectory() as folder:
            generate(folder, num_videos=args.num_videos, seed=0, preset=preset, progress=False)
            plans = list(world_plans(folder).values())
        rows = visibility(plans, args.num_frames)
        look = PRESETS[preset]
        spin = "1 turn per event" if look.spin_deg_per_s is None else f"{look.spin_deg_per_s:g} deg/s"
        print(f"\n{preset} preset ({args.num_videos} videos, {args.num_frames} frames per video; blink "
              f"{look.blink_hz:g} Hz, spin {spin})")  # fmt: skip
        print("action | events | events with a visible change | sampled pairs that change | lasting change")
        print("---|---:|---:|---:|---:")
        for action, (any_change, share, lasting, count) in rows.items():
            print(f"{action} | {count} | {100 * any_change:.1f} % | {100 * share:.1f} % | {100 * lasting:.1f} %")


if __name__ == "__main__":
    main()
