"""The built-in synthetic grounding world: H.264 videos of coloured shapes plus sentence-grounding annotations.

Each video shows 2-4 shapes (a unique (colour, shape) pair each) on a slowly drifting low-contrast texture; 2-5 timed
events (move, grow, shrink, spin, blink, change colour, appear, disappear) are each performed by one object while the
others stay still, and every event gets one sentence ("the crimson disc slides left") with its start/end in seconds.
In about a quarter of the videos one object does one of its actions twice: its sentence has two moments
(`windows_s`), the case of QVHighlights' queries with several relevant windows.
Distractors (the same action by another object, another action by the same object) make a query answerable only by
binding colour, shape and motion. The `test_novel` split holds out some (colour, action) combinations entirely.

Two presets (`PRESETS`): "standard" is the world above (112 px, 8-30 s, 2-4 objects of 7-10 % of the frame,
distractors sharing a colour or a shape); "easy" (what the default training job uses, sized for a 10-minute CPU run)
renders at 64 px, 8-16 s, 2-3 objects of 12-16 % of the frame (about one 16-px patch), each of its own colour, so the
colour word alone picks the object; actions, vocabulary, sentences and held-out combinations are the same.

Run it (500 videos take well under a minute on 2 cores):

    python -m modeling_tsgv.synthetic /tmp/syn500 --num-videos 500 --seed 0 [--preset easy]
"""

import argparse
import json
import logging
import math
import multiprocessing
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import av
import numpy as np
from tqdm.auto import tqdm

from ..video import reformat_exact

logger = logging.getLogger(__name__)

GENERATOR_VERSION = "1.5"  # 1.4: some videos repeat one action of one object (a sentence with two moments);
# 1.5: frames reach the encoder through swscale's bit-exact conversion (the same world on every CPU)
SPLITS = ("train", "val", "test", "test_novel")
HELD_OUT_FRACTION = 0.15  # of all (colour, action) combinations, kept for test_novel only
HELD_OUT_MAX_PER_ITEM = 2  # at most this many held-out combos per colour and per action
EVENT_MIN_S, EVENT_MAX_S = 1.5, 8.0
EVENT_MAX_FRACTION = 0.4  # an event lasts at most this fraction of its video
EVENT_GAP_S = 0.5  # between two events of one object, and two events of one action
BLINK_HZ = 2.5  # the standard world's blink rate; a preset may set its own
VIDEO_ID_PATTERN = re.compile(r"syn\d{5,}\.mp4")

COLOURS = {  # name: (RGB, synonyms used in sentences)
    "red": ((220, 40, 40), ("red", "crimson", "scarlet")),
    "green": ((40, 190, 70), ("green", "emerald", "lime")),
    "blue": ((50, 90, 235), ("blue", "azure", "cobalt")),
    "yellow": ((240, 220, 40), ("yellow", "golden", "lemon")),
    "purple": ((150, 60, 210), ("purple", "violet", "plum")),
    "orange": ((250, 140, 20), ("orange", "amber", "tangerine")),
    "white": ((240, 240, 240), ("white", "snowy", "ivory")),
}
SHAPES = {
    "circle": ("circle", "disc", "ball"),
    "square": ("square", "box", "block"),
    "triangle": ("triangle", "triangular shape", "wedge"),
    "star": ("star", "five-pointed star", "starburst"),
    "diamond": ("diamond", "rhombus", "lozenge"),
}
TEMPLATES = {  # {o}: the object phrase, {t}: the new colour of change_colour
    "move_left": ("{o} moves to the left", "{o} slides left", "{o} travels leftwards", "{o} shifts to the left side",
                  "{o} drifts over to the left", "{o} heads left"),
    "move_right": ("{o} moves to the right", "{o} slides right", "{o} travels rightwards",
                   "{o} shifts to the right side", "{o} drifts over to the right", "{o} heads right"),
    "move_up": ("{o} moves up", "{o} rises", "{o} slides upwards", "{o} travels toward the top", "{o} climbs up",
                "{o} floats upward"),
    "move_down": ("{o} moves down", "{o} sinks", "{o} slides downwards", "{o} drops toward the bottom",
                  "{o} falls", "{o} descends"),
    "grow": ("{o} grows", "{o} gets bigger", "{o} expands", "{o} increases in size", "{o} swells up",
             "{o} becomes larger"),
    "shrink": ("{o} shrinks", "{o} gets smaller", "{o} contracts", "{o} decreases in size", "{o} becomes smaller",
               "{o} shrivels"),
    "spin": ("{o} spins", "{o} spins around", "{o} rotates", "{o} turns a full circle", "{o} twirls",
             "{o} makes a full rotation"),
    "blink": ("{o} blinks", "{o} flashes", "{o} flickers", "{o} blinks on and off", "{o} keeps flashing",
              "{o} twinkles"),
    "change_colour": ("{o} turns {t}", "{o} changes colour to {t}", "{o} becomes {t}", "{o} changes color to {t}",
                      "{o} switches to {t}", "{o} is recoloured {t}"),
    "appear": ("{o} appears", "{o} fades in", "{o} shows up", "{o} comes into view", "{o} materialises",
               "{o} pops up"),
    "disappear": ("{o} disappears", "{o} vanishes", "{o} fades away", "{o} fades out", "{o} goes out of view",
                  "{o} disappears from view"),
}  # fmt: skip
ACTIONS = tuple(TEMPLATES)
TERMINAL_ACTIONS = ("disappear", "change_colour")  # nothing of the object happens after these
MOVE_DIRECTIONS = {"move_left": (-1, 0), "move_right": (1, 0), "move_up": (0, -1), "move_down": (0, 1)}
SCALE_FACTORS = {"grow": 1.6, "shrink": 0.6}
# actions an object can do twice with the same look each time (appear / disappear / change_colour cannot)
REPEATABLE_ACTIONS = ("move_left", "move_right", "move_up", "move_down", "grow", "shrink", "spin", "blink")
REPEAT_PROBABILITY = 0.5  # of videos that try to repeat one action of one object (about half find room: ~23 % do)


@dataclass(frozen=True)
class WorldPreset:
    """How a world looks: frame size (px), frame rate, video length (s), objects per video, object radius (fraction of
    the frame side), whether the objects of one video all differ in colour, the blink rate (Hz), how far a spin
    turns (`spin_deg_per_s`: a set angular speed in degrees per second; None: one full turn per event, however long)
    and the share of videos in which one object repeats one of its actions (`repeat_probability`: its sentence then
    has two moments)."""

    image_size: int
    fps: int
    min_duration_s: float
    max_duration_s: float
    min_objects: int
    max_objects: int
    min_radius: float
    max_radius: float
    unique_colours: bool
    blink_hz: float = BLINK_HZ
    spin_deg_per_s: float | None = None
    repeat_probability: float = REPEAT_PROBABILITY


# The easy preset is sampled by the default model at 32 frames over 8-16 s, i.e. every 0.25-0.5 s. Its blink is off for
# 0.625 s at a time (longer than that spacing, so every dark phase is seen), and its spin turns 40 deg/s (at most
# 1.5 x 40 x 0.5 = 30 deg between two samples at the smoothstep's peak: below half of the star's 72-deg symmetry, so
# no shape's turn aliases into standing still or turning back). The standard world blinks at 2.5 Hz and turns
# once per spin event (`benchmarks/world_visibility.py` shows what that leaves unseen at the model's frames).
PRESETS = {
    "standard": WorldPreset(112, 10, 8.0, 30.0, 2, 4, 0.07, 0.1, unique_colours=False),
    "easy": WorldPreset(64, 10, 8.0, 16.0, 2, 3, 0.12, 0.16, unique_colours=True, blink_hz=0.8, spin_deg_per_s=40.0),
}


@dataclass
class SceneObject:
    """One shape: identity (colour, shape), base radius and rest position (pixels) before any move."""

    colour: str
    shape: str
    radius_px: float = 0.0
    x_px: float = 0.0
    y_px: float = 0.0


@dataclass
class Event:
    """One timed action of one object; `amount` is a move distance (px), a spin (turns) or the new colour."""

    object_index: int
    action: str
    start_s: float = 0.0
    end_s: float = 0.0
    amount: float | str | None = None


@dataclass
class VideoPlan:
    """Everything needed to render and annotate one video."""

    video_id: str
    split: str
    num_frames: int
    fps: int
    image_size: int
    blink_hz: float = BLINK_HZ
    objects: list[SceneObject] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return round(self.num_frames / self.fps, 4)


# ----------------------------------------------------------------------------- vocabulary, splits, held-out combos


def held_out_combos(seed: int) -> list[tuple[str, str]]:
    """The (colour, action) pairs kept out of train/val/test: ~15% of all, at most 2 per colour and per action."""
    rng = np.random.default_rng([seed, 0])
    combos = [(colour, action) for colour in COLOURS for action in ACTIONS]
    wanted = round(HELD_OUT_FRACTION * len(combos))
    chosen, per_colour, per_action = [], {}, {}
    for i in rng.permutation(len(combos)):
        colour, action = combos[i]
        if per_colour.get(colour, 0) < HELD_OUT_MAX_PER_ITEM and per_action.get(action, 0) < HELD_OUT_MAX_PER_ITEM:
            chosen.append(combos[i])
            per_colour[colour] = per_colour.get(colour, 0) + 1
            per_action[action] = per_action.get(action, 0) + 1
        if len(chosen) == wanted:
            break
    return sorted(chosen)


def split_counts(num_videos: int, split_fractions) -> dict[str, int]:
    """Videos per split by largest remainder; every split of a non-zero fraction gets at least one video when
    num_videos >= 4."""
    exact = [fraction * num_videos for fraction in split_fractions]
    counts = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(SPLITS)), key=lambda i: (counts[i] - exact[i], i))
    for i in by_remainder[: num_videos - sum(counts)]:
        counts[i] += 1
    if num_videos >= len(SPLITS):
        for i in range(len(SPLITS)):
            if counts[i] == 0 and split_fractions[i] > 0:
                counts[int(np.argmax(counts))] -= 1
                counts[i] = 1
    return dict(zip(SPLITS, counts))


# ----------------------------------------------------------------------------- planning one video


def _sample_objects(rng, num_objects: int, first: SceneObject, unique_colours: bool) -> list[SceneObject]:
    """`num_objects` objects with unique (colour, shape); later ones often share a colour (unless `unique_colours`)
    or a shape with an earlier one."""
    objects = [first]
    while len(objects) < num_objects:
        like = objects[rng.integers(len(objects))]
        mode = rng.random()
        if unique_colours:
            colour = str(rng.choice([c for c in COLOURS if all(o.colour != c for o in objects)]))
        else:
            colour = like.colour if mode < 0.4 else str(rng.choice(list(COLOURS)))
        shape = like.shape if 0.4 <= mode < 0.8 else str(rng.choice(list(SHAPES)))
        if all((o.colour, o.shape) != (colour, shape) for o in objects):
            objects.append(SceneObject(colour, shape))
    return objects


def _action_allowed(objects, pairs, object_index: int, action: str, banned) -> bool:
    """Whether `object_index` may still do `action`: visible effect, not banned, one terminal action per object."""
    obj = objects[object_index]
    done = [a for i, a in pairs if i == object_index]
    if (obj.colour, action) in banned or action in done or (action == "spin" and obj.shape == "circle"):
        return False
    return not (action in TERMINAL_ACTIONS and any(a in TERMINAL_ACTIONS for a in done))


def _sample_pairs(rng, objects, num_events: int, banned, first_pair) -> list[tuple[int, str]]:
    """(object_index, action) per event; each pick favours distractors of an earlier one (same action or object)."""
    pairs = [first_pair]
    while len(pairs) < num_events:
        candidates = [
            (i, a) for i in range(len(objects)) for a in ACTIONS if _action_allowed(objects, pairs, i, a, banned)
        ]
        related = [3.0 * (any(a == b for _, b in pairs) or any(i == j for j, _ in pairs)) for i, a in candidates]
        weights = np.array(related) + (0.0 if len(pairs) == 1 else 1.0)  # the 2nd event is always a distractor
        if not candidates or weights.sum() == 0:
            break
        pairs.append(candidates[rng.choice(len(candidates), p=weights / weights.sum())])
    return pairs


def _with_repeat(rng, pairs: list[tuple[int, str]], probability: float) -> list[tuple[int, str]]:
    """`pairs`, and with `probability` one of them whose action can repeat (`REPEATABLE_ACTIONS`) a second time, right
    after it (placed while the timeline is still open; if it does not fit, the video has no repeat)."""
    repeatable = [index for index, pair in enumerate(pairs) if pair[1] in REPEATABLE_ACTIONS]
    if not repeatable or rng.random() >= probability:
        return pairs
    index = repeatable[int(rng.integers(len(repeatable)))]
    return [*pairs[: index + 1], pairs[index], *pairs[index + 1 :]]


def _fits(candidate: Event, placed: list[Event]) -> bool:
    """No overlap with the same object's or the same action's events; appear first and terminal actions last."""
    for other in placed:
        same_object = other.object_index == candidate.object_index
        if not same_object and other.action != candidate.action:
            continue
        if candidate.start_s < other.end_s + EVENT_GAP_S and other.start_s < candidate.end_s + EVENT_GAP_S:
            return False
        if same_object:
            first, last = (candidate, other) if candidate.start_s < other.start_s else (other, candidate)
            if last.action == "appear" or first.action in TERMINAL_ACTIONS:
                return False
    return True


def _place_events(rng, pairs, duration_s: float, image_size: int, spin_deg_per_s: float | None) -> list[Event]:
    """Random start/end (2 decimals) per event by rejection sampling; an event that never fits is dropped.
    Amounts: a move's distance (px), a spin's turns (signed; one, or `spin_deg_per_s` x the event's length)."""
    placed = []
    for object_index, action in pairs:
        for _ in range(60):
            length_s = rng.uniform(EVENT_MIN_S, min(EVENT_MAX_S, EVENT_MAX_FRACTION * duration_s))
            start_s = round(rng.uniform(0.0, duration_s - length_s), 2)
            end_s = min(round(start_s + length_s, 2), duration_s)
            candidate = Event(object_index, action, start_s, end_s)
            if _fits(candidate, placed):
                placed.append(candidate)
                break
    for event in placed:
        if event.action in MOVE_DIRECTIONS:
            event.amount = float(rng.uniform(0.2, 0.3) * image_size)
        elif event.action == "spin":
            turns = 1.0 if spin_deg_per_s is None else spin_deg_per_s * (event.end_s - event.start_s) / 360.0
            event.amount = float(rng.choice([-1.0, 1.0])) * turns
    return sorted(placed, key=lambda e: (e.start_s, e.object_index))


def _choose_new_colours(rng, objects, events, unique_colours: bool) -> None:
    """Give every change_colour event a new colour that keeps (colour, shape) — or, with `unique_colours`, the colour
    alone — unique among the objects, before and after the change."""
    taken = {(o.colour, o.shape) for o in objects}
    for event in events:
        if event.action == "change_colour":
            obj = objects[event.object_index]
            if unique_colours:
                options = [c for c in COLOURS if all(c != colour for colour, _ in taken)]
            else:
                options = [c for c in COLOURS if (c, obj.shape) not in taken]
            event.amount = str(rng.choice(options))
            taken.add((event.amount, obj.shape))


def _place_objects(rng, objects, events, image_size: int, radius_range: tuple[float, float]) -> None:
    """Radius (a fraction in `radius_range` of the frame side) and rest position per object, so its whole trajectory
    (moves, growth) stays inside the frame."""
    for index, obj in enumerate(objects):
        obj.radius_px = float(rng.uniform(*radius_range) * image_size)
        offsets, scale, max_scale = [(0.0, 0.0)], 1.0, 1.0
        for event in (e for e in events if e.object_index == index):
            if event.action in MOVE_DIRECTIONS:
                dx, dy = MOVE_DIRECTIONS[event.action]
                offsets.append((offsets[-1][0] + dx * event.amount, offsets[-1][1] + dy * event.amount))
            scale *= SCALE_FACTORS.get(event.action, 1.0)
            max_scale = max(max_scale, scale)
        margin_px = 1.25 * obj.radius_px * max_scale + 1
        low = [margin_px - min(o[k] for o in offsets) for k in (0, 1)]
        high = [image_size - margin_px - max(o[k] for o in offsets) for k in (0, 1)]
        best, best_distance = None, -1.0
        for _ in range(12):  # the first rest position far enough from the objects placed before (else the farthest)
            x, y = (rng.uniform(lo, hi) if hi > lo else (lo + hi) / 2 for lo, hi in zip(low, high))
            distance = min((math.hypot(x - o.x_px, y - o.y_px) for o in objects[:index]), default=math.inf)
            if distance > best_distance:
                best, best_distance = (x, y), distance
            if distance > 0.3 * image_size:
                break
        obj.x_px, obj.y_px = best


def _has_distractor(events: list[Event]) -> bool:
    """At least two distinct (object, action) events, two of them sharing their action or their object (a repeat of
    one object's action is not a distractor of itself)."""
    pairs = sorted({(e.object_index, e.action) for e in events})
    actions, objects = [a for _, a in pairs], [i for i, _ in pairs]
    return len(set(actions)) < len(actions) or len(set(objects)) < len(objects)


def plan_video(video_index: int, split: str, seed: int, params: dict, held_out, novel_combo=None) -> VideoPlan:
    """Sample one video (deterministic in seed and video_index); `novel_combo` forces one held-out event."""
    rng = np.random.default_rng([seed, 1, video_index])
    params = {**asdict(PRESETS["standard"]), **params}  # a look left out is the standard world's
    fps, image_size = params["fps"], params["image_size"]
    num_frames = round(rng.uniform(params["min_duration_s"], params["max_duration_s"]) * fps)
    plan = VideoPlan(f"syn{video_index:05d}", split, num_frames, fps, image_size, params["blink_hz"])
    banned = () if novel_combo else set(held_out)
    repeat_rng = np.random.default_rng([seed, 3, video_index])  # its own stream: one that tries none is as in 1.3
    while not _has_distractor(plan.events):
        if novel_combo:
            shapes = [s for s in SHAPES if not (novel_combo[1] == "spin" and s == "circle")]
            first, first_action = SceneObject(novel_combo[0], str(rng.choice(shapes))), novel_combo[1]
        else:
            first = SceneObject(str(rng.choice(list(COLOURS))), str(rng.choice(list(SHAPES))))
            actions = [a for a in ACTIONS if _action_allowed([first], [], 0, a, banned)]
            first_action = str(rng.choice(actions))
        num_objects = int(rng.integers(params["min_objects"], params["max_objects"] + 1))
        plan.objects = _sample_objects(rng, num_objects, first, params["unique_colours"])
        pairs = _sample_pairs(rng, plan.objects, int(rng.integers(2, 6)), banned, (0, first_action))
        pairs = _with_repeat(repeat_rng, pairs, params.get("repeat_probability", 0.0))
        plan.events = _place_events(rng, pairs, plan.duration_s, image_size, params["spin_deg_per_s"])
    _choose_new_colours(rng, plan.objects, plan.events, params["unique_colours"])
    _place_objects(rng, plan.objects, plan.events, image_size, (params["min_radius"], params["max_radius"]))
    return plan


# ----------------------------------------------------------------------------- per-frame object state


def _progress(frame_times_s: np.ndarray, event: Event) -> np.ndarray:
    """Smoothstep progress of `event` in [0, 1] at each frame time (0 before, 1 after)."""
    p = np.clip((frame_times_s - event.start_s) / (event.end_s - event.start_s), 0.0, 1.0)
    return p * p * (3.0 - 2.0 * p)


def object_tracks(plan: VideoPlan) -> dict[str, np.ndarray]:
    """Per object and frame: x, y, radius (px), angle (rad), alpha in [0, 1], rgb (float) and colour name index.

    Shapes: `x`, `y`, `radius`, `angle`, `alpha`, `colour_index` (num_objects, num_frames); `rgb`
    (num_objects, num_frames, 3).
    """
    frame_times_s = np.arange(plan.num_frames) / plan.fps
    n, f = len(plan.objects), plan.num_frames
    names = list(COLOURS)
    tracks = {
        "x": np.array([[o.x_px] * f for o in plan.objects]),
        "y": np.array([[o.y_px] * f for o in plan.objects]),
        "radius": np.array([[o.radius_px] * f for o in plan.objects]),
        "angle": np.zeros((n, f)),
        "alpha": np.ones((n, f)),
        "rgb": np.array([[COLOURS[o.colour][0]] * f for o in plan.objects], dtype=np.float64),
        "colour_index": np.array([[names.index(o.colour)] * f for o in plan.objects]),
    }
    for event in plan.events:
        _apply_event(tracks, event, frame_times_s, plan.blink_hz)
    return tracks


def _apply_event(tracks: dict, event: Event, frame_times_s: np.ndarray, blink_hz: float) -> None:
    """Add one event's effect to its object's tracks; moves, scalings and colour changes persist after the event."""
    i, p, action = event.object_index, _progress(frame_times_s, event), event.action
    if action in MOVE_DIRECTIONS:
        dx, dy = MOVE_DIRECTIONS[action]
        tracks["x"][i] += dx * event.amount * p
        tracks["y"][i] += dy * event.amount * p
    elif action in SCALE_FACTORS:
        tracks["radius"][i] *= 1.0 + (SCALE_FACTORS[action] - 1.0) * p
    elif action == "spin":
        tracks["angle"][i] += event.amount * 2.0 * math.pi * p
    elif action == "blink":
        active = (frame_times_s >= event.start_s) & (frame_times_s < event.end_s)
        off = ((frame_times_s - event.start_s) * blink_hz) % 1.0 >= 0.5
        tracks["alpha"][i] *= np.where(active & off, 0.0, 1.0)
    elif action == "change_colour":
        new_rgb = np.array(COLOURS[event.amount][0], dtype=np.float64)
        tracks["rgb"][i] += (new_rgb - tracks["rgb"][i]) * p[:, None]
        tracks["colour_index"][i][p >= 0.5] = list(COLOURS).index(event.amount)
    elif action in ("appear", "disappear"):
        shown = p if action == "appear" else 1.0 - p
        tracks["alpha"][i] *= shown
        tracks["radius"][i] *= 0.3 + 0.7 * shown


# ----------------------------------------------------------------------------- drawing


def _shape_mask(shape: str, u: np.ndarray, v: np.ndarray, radius_px: float) -> np.ndarray:
    """Boolean mask of `shape` centred at (u, v) = (0, 0) in rotated pixel offsets (v points down)."""
    if shape == "circle":
        return u * u + v * v <= radius_px * radius_px
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.85 * radius_px
    if shape == "diamond":
        return np.abs(u) / 0.7 + np.abs(v) <= radius_px
    if shape == "triangle":  # apex up, inscribed in the circle of radius_px (inradius radius_px / 2)
        edges = [(0.0, 1.0), (-math.sqrt(3) / 2, -0.5), (math.sqrt(3) / 2, -0.5)]
        return np.all([u * nx + v * ny <= radius_px / 2 for nx, ny in edges], axis=0)
    if shape == "star":  # 5 points: the radius falls linearly from each tip to 0.45 between tips
        phase = (np.arctan2(u, -v) * 5 / (2 * math.pi)) % 1.0
        return np.hypot(u, v) <= radius_px * (0.45 + 0.55 * np.abs(2.0 * phase - 1.0))
    raise ValueError(f"unknown shape {shape!r}; known: {list(SHAPES)}")


def _object_patch(shape: str, x_px, y_px, radius_px, angle, image_size: int):
    """(row slice, column slice, mask) of one object, cropped to the frame."""
    half = int(math.ceil(radius_px * 1.25)) + 1  # a square turned 45 degrees reaches 1.2 r
    x0, y0 = max(int(x_px) - half, 0), max(int(y_px) - half, 0)
    x1, y1 = min(int(x_px) + half + 1, image_size), min(int(y_px) + half + 1, image_size)
    u = np.arange(x0, x1)[None, :] + 0.5 - x_px  # (1, W_patch)
    v = np.arange(y0, y1)[:, None] + 0.5 - y_px  # (H_patch, 1)
    cos, sin = math.cos(angle), math.sin(angle)
    mask = _shape_mask(shape, u * cos + v * sin, v * cos - u * sin, radius_px)  # (H_patch, W_patch)
    return slice(y0, y1), slice(x0, x1), mask


def _background(rng, image_size: int, num_frames: int, fps: int):
    """A per-video low-contrast texture (grey level, tint, gradient, blurred noise) and its drift in px per frame.

    Returns the texture (H + pad, W + pad, 3) uint8 and per-frame integer (row, column) offsets into it.
    """
    velocity_px_per_s = rng.uniform(-0.8, 0.8, size=2)
    pad = int(math.ceil(np.abs(velocity_px_per_s).max() * num_frames / fps)) + 1
    size = image_size + pad
    cells = rng.normal(size=(size // 8 + 2, size // 8 + 2))
    noise = np.kron(cells, np.ones((8, 8)))[:size, :size]
    kernel = np.ones(7) / 7  # separable box blur: smooth blotches instead of 8-px blocks
    noise = np.apply_along_axis(np.convolve, 0, noise, kernel, mode="same")
    noise = np.apply_along_axis(np.convolve, 1, noise, kernel, mode="same")
    ramp = np.linspace(-1.0, 1.0, size)
    gradient = rng.uniform(-10, 10) * ramp[None, :] + rng.uniform(-10, 10) * ramp[:, None]
    grey = rng.uniform(45, 95) + gradient + 14 * noise / max(np.abs(noise).max(), 1e-6)
    texture = grey[:, :, None] + rng.uniform(-6, 6, size=3)  # (size, size, 3)
    frame_times_s = np.arange(num_frames) / fps
    start = np.where(velocity_px_per_s < 0, pad - 1, 0)
    offsets = (start[None, :] + np.outer(frame_times_s, velocity_px_per_s)).astype(int).clip(0, pad - 1)
    return np.clip(texture, 0, 255).astype(np.uint8), offsets


def render_frames(plan: VideoPlan, tracks: dict, rng):
    """Yield the video's frames, (image_size, image_size, 3) uint8 RGB; a resting object's mask is reused."""
    size = plan.image_size
    texture, offsets = _background(rng, size, plan.num_frames, plan.fps)
    states = np.round(np.stack([tracks[k] for k in ("x", "y", "radius", "angle")], axis=-1), 3)  # (N_obj, F, 4)
    changed = np.ones(states.shape[:2], dtype=bool)  # (N_obj, F): the mask must be recomputed
    changed[:, 1:] = (states[:, 1:] != states[:, :-1]).any(axis=-1)
    rgb_uint8 = np.round(tracks["rgb"]).astype(np.uint8)  # (N_obj, F, 3)
    patches = [None] * len(plan.objects)
    for frame_index in range(plan.num_frames):
        row, col = offsets[frame_index]
        frame = texture[row : row + size, col : col + size].copy()
        for i, obj in enumerate(plan.objects):
            if changed[i, frame_index]:
                patches[i] = _object_patch(obj.shape, *states[i, frame_index], size)
            alpha = tracks["alpha"][i, frame_index]
            if alpha <= 0.0 or states[i, frame_index, 2] < 0.5:
                continue
            rows, cols, mask = patches[i]
            patch = frame[rows, cols]
            if alpha >= 1.0:
                patch[mask] = rgb_uint8[i, frame_index]
            else:
                blend = alpha * tracks["rgb"][i, frame_index] + (1.0 - alpha) * patch[mask]
                patch[mask] = np.round(blend).astype(np.uint8)
        yield frame


def write_mp4(path: Path, frames, fps: int, image_size: int) -> None:
    """Encode RGB frames as H.264 (yuv420p, ultrafast, one keyframe per second so seeking is cheap); the same bytes
    on every CPU (x264's SIMD code is checked bit-exact against its C code; the colour conversion is
    `reformat_exact`)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = image_size, image_size, "yuv420p"
        stream.codec_context.gop_size = fps
        stream.options = {"preset": "ultrafast", "crf": "20", "threads": "1", "x264-params": "scenecut=0"}
        for frame_index, frame in enumerate(frames):
            # converted here, bit-exactly: the encoder's own rgb24 -> yuv420p conversion rounds by the CPU's SIMD
            video_frame = reformat_exact(av.VideoFrame.from_ndarray(frame, format="rgb24"), "yuv420p")
            video_frame.pts = frame_index
            container.mux(stream.encode(video_frame))
        container.mux(stream.encode())


# ----------------------------------------------------------------------------- annotations


def _sentence(rng, plan: VideoPlan, event: Event) -> str:
    """One sentence for `event` from a random template and random colour / shape synonyms."""
    obj = plan.objects[event.object_index]
    definite = rng.random() < 0.8
    colour = rng.choice(COLOURS[obj.colour][1])
    article = "the" if definite else ("an" if colour[0] in "aeiou" else "a")
    phrase = f"{article} {colour} {rng.choice(SHAPES[obj.shape])}"
    new_colour = rng.choice(COLOURS[event.amount][1]) if event.action == "change_colour" else ""
    return str(rng.choice(TEMPLATES[event.action])).format(o=phrase, t=new_colour)


def _queries(rng, plan: VideoPlan, held_out) -> list[dict]:
    """One query per (object, action) of the video (in test_novel: only those with a held-out (colour, action)
    combination); an action the object does twice is one sentence with both moments (`windows_s`, seconds, in time
    order; `start_s` / `end_s` are the first)."""
    groups: dict[tuple[int, str], list[Event]] = {}
    for event in plan.events:
        groups.setdefault((event.object_index, event.action), []).append(event)
    queries = []
    for (object_index, action), events in groups.items():
        obj = plan.objects[object_index]
        sentence = _sentence(rng, plan, events[0])
        if plan.split == "test_novel" and (obj.colour, action) not in held_out:
            continue
        query = {
            "video_id": plan.video_id,
            "video_path": f"videos/{plan.video_id}.mp4",
            "duration_s": plan.duration_s,
            "sentence": sentence,
            "start_s": events[0].start_s,
            "end_s": events[0].end_s,
            "object": {"colour": obj.colour, "shape": obj.shape},
            "action": action,
        }
        if len(events) > 1:
            query["windows_s"] = [[e.start_s, e.end_s] for e in events]
        queries.append(query)
    return queries


def _make_video(job: tuple) -> dict:
    """Worker: plan, render and encode one video; return its queries."""
    video_index, split, seed, params, held_out, novel_combo, out_dir = job
    plan = plan_video(video_index, split, seed, params, held_out, novel_combo)
    rng = np.random.default_rng([seed, 2, video_index])  # sentences and background
    tracks = object_tracks(plan)
    queries = _queries(rng, plan, set(held_out))
    path = Path(out_dir) / "videos" / f"{plan.video_id}.mp4"
    write_mp4(path, render_frames(plan, tracks, rng), plan.fps, plan.image_size)
    return {"video_id": plan.video_id, "split": split, "duration_s": plan.duration_s, "queries": queries}


# ----------------------------------------------------------------------------- what the generator knows, per patch


def world_plans(out_dir) -> dict[str, VideoPlan]:
    """The plans of a generated world, rebuilt from its meta.json (planning is deterministic in the parameters).

    Returns {video_id: VideoPlan} in video order; `object_tracks(plan)` gives each object's state per frame. Raises
    ValueError naming the folder when meta.json is missing or was written by another generator version.
    """
    path = Path(out_dir) / "meta.json"
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not a synthetic world's meta.json ({error})") from None
    if meta.get("generator_version") != GENERATOR_VERSION:
        raise ValueError(
            f"{path}: written by generator version {meta.get('generator_version')}, this is {GENERATOR_VERSION}; "
            "generate the world again"
        )
    params = meta["params"]
    held_out = held_out_combos(params.get("held_out_seed", params["seed"]))
    plans = (plan_video(*job) for job in _jobs(params["num_videos"], params["seed"], params, held_out))
    return {plan.video_id: plan for plan in plans}


def object_mask(plan: VideoPlan, tracks: dict, object_index: int, frame_index: int) -> np.ndarray:
    """(image_size, image_size) bool: the pixels of one object's shape at one frame, whatever its opacity (none when
    it has shrunk below half a pixel)."""
    size = plan.image_size
    mask = np.zeros((size, size), dtype=bool)
    x, y, radius, angle = (tracks[k][object_index, frame_index] for k in ("x", "y", "radius", "angle"))
    if radius >= 0.5:
        rows, cols, patch = _object_patch(plan.objects[object_index].shape, x, y, radius, angle, size)
        mask[rows, cols] = patch
    return mask


def patch_coverage(plan: VideoPlan, tracks: dict, frame_indices, grid: int) -> np.ndarray:
    """Share of each patch that each object covers, as drawn (later objects over earlier ones, weighted by opacity).

    Args:
        plan, tracks: a video's plan and `object_tracks(plan)`.
        frame_indices: (F,) integer frame indices into the video (frame time = index / fps).
        grid: patches per side; the frame side (plan.image_size px) is cut into grid x grid equal squares.
    Returns:
        (F, num_objects, grid, grid) float32 in [0, 1]: visible area of the object in the patch / patch area.
    Raises:
        ValueError when grid does not divide the frame side.
    """
    size = plan.image_size
    if grid < 1 or size % grid:
        raise ValueError(f"grid must divide the frame side ({size} px), got {grid}")
    cell = size // grid
    out = np.zeros((len(frame_indices), len(plan.objects), grid, grid), dtype=np.float32)
    for f, frame_index in enumerate(frame_indices):
        owner = np.full((size, size), -1, dtype=np.int64)  # topmost object per pixel
        opacity = np.zeros((size, size))
        for i in range(len(plan.objects)):
            alpha = tracks["alpha"][i, frame_index]
            if alpha > 0.0:
                mask = object_mask(plan, tracks, i, frame_index)
                owner[mask], opacity[mask] = i, alpha
        for i in range(len(plan.objects)):
            weight = np.where(owner == i, opacity, 0.0)  # (H, W)
            out[f, i] = weight.reshape(grid, cell, grid, cell).sum(axis=(1, 3))
    return out / (cell * cell)


# ----------------------------------------------------------------------------- the world: generate() and the CLI


def _check_arguments(num_videos, seed, image_size, fps, min_duration_s, max_duration_s, split_fractions) -> None:
    """Raise ValueError naming the first bad argument of `generate`."""
    if num_videos < 1:
        raise ValueError(f"num_videos must be at least 1, got {num_videos}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    if image_size < 32 or image_size % 2:
        raise ValueError(f"image_size must be an even number of pixels >= 32 (H.264 yuv420p), got {image_size}")
    if fps < 1:
        raise ValueError(f"fps must be a positive integer, got {fps}")
    shortest_s = 2 * EVENT_MIN_S / EVENT_MAX_FRACTION
    if not shortest_s <= min_duration_s <= max_duration_s:
        raise ValueError(
            f"need {shortest_s:g} <= min_duration_s <= max_duration_s (room for two events), "
            f"got min_duration_s={min_duration_s}, max_duration_s={max_duration_s}"
        )
    if len(split_fractions) != len(SPLITS) or min(split_fractions) < 0 or abs(sum(split_fractions) - 1) > 1e-6:
        raise ValueError(
            f"split_fractions must be {len(SPLITS)} non-negative numbers (for {', '.join(SPLITS)}) summing to 1, "
            f"got {tuple(split_fractions)}"
        )


def _cached_meta(out_dir: Path, params: dict) -> dict | None:
    """The existing meta.json when it was written with `params` and every file it lists is present."""
    try:
        meta = json.loads((out_dir / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    if meta.get("params") != params or meta.get("generator_version") != GENERATOR_VERSION:
        return None
    names = [f"annotations/{s}.jsonl" for s in SPLITS] + [f"annotations/{s}.charades_sta.txt" for s in SPLITS]
    names += ["annotations/durations.json"]
    names += [f"videos/{video_id}.mp4" for video_id in meta.get("video_ids", [])]
    return meta if all((out_dir / name).is_file() for name in names) else None


def _jobs(num_videos: int, seed: int, params: dict, held_out) -> list[tuple]:
    """One worker job per video: splits in order train, val, test, test_novel; test_novel cycles the held-out combos."""
    counts = split_counts(num_videos, params["split_fractions"])
    if params.get("split_videos") is not None:
        counts = dict(zip(SPLITS, params["split_videos"]))
    splits = [split for split in SPLITS for _ in range(counts[split])]
    first_novel = splits.index("test_novel") if "test_novel" in splits else num_videos
    jobs = []
    for index, split in enumerate(splits):
        novel_combo = held_out[(index - first_novel) % len(held_out)] if split == "test_novel" else None
        jobs.append((index, split, seed, params, tuple(held_out), novel_combo))
    return jobs


def _run_jobs(jobs: list[tuple], out_dir: Path, num_workers: int, progress: bool) -> list[dict]:
    """Make every video, in parallel when num_workers > 1; results come back in video order."""
    jobs = [job + (str(out_dir),) for job in jobs]
    bar = tqdm(total=len(jobs), desc="synthetic videos", unit="video", disable=not progress)
    if num_workers <= 1 or len(jobs) == 1:
        results = []
        for job in jobs:
            results.append(_make_video(job))
            bar.update()
    else:
        with multiprocessing.Pool(min(num_workers, len(jobs))) as pool:
            results = []
            for result in pool.imap_unordered(_make_video, jobs, chunksize=2):
                results.append(result)
                bar.update()
    bar.close()
    return sorted(results, key=lambda r: r["video_id"])


def _write_lines(path: Path, lines) -> None:
    path.write_text("".join(line + "\n" for line in lines))


def _write_annotations(out_dir: Path, results: list[dict]) -> dict[str, dict[str, int]]:
    """Write the per-split jsonl and Charades-STA files and durations.json; return counts (jsonl queries). A sentence
    with two moments is one jsonl line (`windows_s`) and, as Charades-STA itself writes it, one txt line per moment."""
    counts = {}
    for split in SPLITS:
        videos = [r for r in results if r["split"] == split]
        queries = [q for r in videos for q in r["queries"]]
        _write_lines(out_dir / "annotations" / f"{split}.jsonl", (json.dumps(q) for q in queries))
        _write_lines(
            out_dir / "annotations" / f"{split}.charades_sta.txt",
            (
                f"{q['video_id']} {start_s:.2f} {end_s:.2f}##{q['sentence']}"
                for q in queries
                for start_s, end_s in q.get("windows_s", [[q["start_s"], q["end_s"]]])
            ),
        )
        counts[split] = {"videos": len(videos), "queries": len(queries)}
    durations = {r["video_id"]: r["duration_s"] for r in results}
    (out_dir / "annotations" / "durations.json").write_text(json.dumps(durations, indent=1) + "\n")
    return counts


def _world_params(
    preset, num_videos, seed, image_size, fps, min_duration_s, max_duration_s, split_fractions, held_out_seed
) -> dict:
    """`generate`'s arguments with the preset's values filled in where None, checked (ValueError naming the first
    bad one); the dict that meta.json records and that decides whether a world on disk can be reused."""
    if preset not in PRESETS:
        raise ValueError(f"unknown synthetic world preset {preset!r}; known: {', '.join(PRESETS)}")
    look = PRESETS[preset]
    image_size = look.image_size if image_size is None else image_size
    fps = look.fps if fps is None else fps
    min_duration_s = look.min_duration_s if min_duration_s is None else min_duration_s
    max_duration_s = look.max_duration_s if max_duration_s is None else max_duration_s
    split_fractions = tuple(float(x) for x in split_fractions)
    _check_arguments(num_videos, seed, image_size, fps, min_duration_s, max_duration_s, split_fractions)
    held_out_seed = seed if held_out_seed is None else held_out_seed
    if held_out_seed < 0:
        raise ValueError(f"held_out_seed must be a non-negative integer, got {held_out_seed}")
    return {
        "preset": preset, "num_videos": num_videos, "seed": seed, "image_size": image_size, "fps": fps,
        "min_duration_s": float(min_duration_s), "max_duration_s": float(max_duration_s),
        "split_fractions": list(split_fractions), "min_objects": look.min_objects, "max_objects": look.max_objects,
        "min_radius": look.min_radius, "max_radius": look.max_radius, "unique_colours": look.unique_colours,
        "blink_hz": look.blink_hz, "spin_deg_per_s": look.spin_deg_per_s, "held_out_seed": held_out_seed,
        "repeat_probability": look.repeat_probability,
    }  # fmt: skip


def _world_meta(params: dict, seed: int, held_out, counts: dict, video_ids: list[str]) -> dict:
    """meta.json of a world: generator version, parameters, vocabulary, held-out combinations, counts, video ids."""
    return {
        "generator_version": GENERATOR_VERSION,
        "params": params,
        "seed": seed,
        "vocabulary": {
            "colours": {name: {"rgb": list(rgb), "synonyms": list(words)} for name, (rgb, words) in COLOURS.items()},
            "shapes": {name: list(words) for name, words in SHAPES.items()},
            "actions": list(ACTIONS),
        },
        "held_out_combos": [list(combo) for combo in held_out],
        "counts": counts,
        "video_ids": video_ids,
    }


def described_event(record: dict) -> tuple:
    """The (colour, shape, action) a synthetic query describes (its annotation line carries them)."""
    return record["object"]["colour"], record["object"]["shape"], record["action"]


def with_absent_queries(annotation_path, seed: int = 0) -> Path:
    """`<split>_with_absent.jsonl` beside a synthetic split's annotations: its lines, plus one absent query per video
    (`"absent": true`, no moment): the sentence of another video of the split describing an event — a colour,
    shape and action — that does not happen in this video (the generator's own record of it, so absent for sure).
    Drawn with its own generator ([seed, 7]): the world's videos and other queries do not change. Returns the path."""
    source = Path(annotation_path)
    target = source.with_name(f"{source.stem}_with_absent.jsonl")
    if target.exists() and target.stat().st_mtime >= source.stat().st_mtime:
        return target
    records = [json.loads(line) for line in source.read_text().splitlines() if line.strip()]
    by_video: dict[str, list[dict]] = {}
    for record in records:
        by_video.setdefault(record["video_id"], []).append(record)
    rng = np.random.default_rng([seed, 7])
    lines = [json.dumps(record) for record in records]
    for video_id, own in by_video.items():
        happens = {described_event(r) for r in own}
        pool = [r for r in records if r["video_id"] != video_id and described_event(r) not in happens]
        if pool:
            other = pool[int(rng.integers(len(pool)))]
            keep = ("video_id", "video_path", "duration_s")
            lines.append(json.dumps({**{k: own[0][k] for k in keep}, "sentence": other["sentence"], "absent": True}))
    _write_lines(target, lines)
    return target


def _checked_split_videos(split_videos) -> list[int]:
    """`split_videos` as a list of ints, one per split of `SPLITS`; ValueError naming the rule when it breaks it."""
    counts = [int(count) for count in split_videos]
    if len(counts) != len(SPLITS) or min(counts) < 0 or counts[0] < 1:
        raise ValueError(f"split_videos must be {len(SPLITS)} counts ({', '.join(SPLITS)}), train >= 1, got {counts}")
    return counts


def _remove_stale_videos(video_dir: Path, video_ids: set) -> None:
    """Delete the world's videos in `video_dir` whose id is not in `video_ids` (left by an earlier, larger world)."""
    for stale in video_dir.iterdir():
        if VIDEO_ID_PATTERN.fullmatch(stale.name) and stale.stem not in video_ids:
            stale.unlink()


def generate(
    out_dir,
    num_videos: int = 500,
    seed: int = 0,
    image_size: int | None = None,
    fps: int | None = None,
    min_duration_s: float | None = None,
    max_duration_s: float | None = None,
    split_fractions=(0.7, 0.1, 0.1, 0.1),
    preset: str = "standard",
    held_out_seed: int | None = None,
    num_workers: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    split_videos=None,
) -> dict:
    """Write the synthetic grounding world to `out_dir` (or reuse it when already there) and return its meta dict.

    Layout: `videos/<video_id>.mp4`, `annotations/{split}.jsonl` and `{split}.charades_sta.txt` (one line per
    query), `annotations/durations.json`, `meta.json`. The output depends only on
    the parameters (not on `num_workers`): the same seed gives byte-identical annotations and identical frames.
    `preset` (a key of `PRESETS`) sets the look of the world; `image_size` (px), `fps`, `min_duration_s` and
    `max_duration_s` override the preset's values when given. The (colour, action) combinations kept for test_novel
    are `held_out_combos(held_out_seed)` (default: `seed`); a world of another seed that must never show the held-out
    combinations of a given world (a stage-1 pretraining world) passes that world's seed here. `split_videos` (train,
    val, test, test_novel counts) sets every split's size instead of `num_videos` x `split_fractions` — test splits
    large enough to tell methods apart (about 2.9 queries per test video, 1.2 per test_novel video) beside an
    unchanged training world: the train and val videos of the same counts are the same videos.

    Example:
        >>> meta = generate("/tmp/syn", num_videos=8, image_size=64, progress=False)
        >>> meta["counts"]["train"]["videos"]
        5
    """
    if split_videos is not None:
        split_videos = _checked_split_videos(split_videos)
        num_videos = sum(split_videos)
        split_fractions = [count / num_videos for count in split_videos]
    params = _world_params(
        preset, num_videos, seed, image_size, fps, min_duration_s, max_duration_s, split_fractions, held_out_seed
    )
    if split_videos is not None:
        params["split_videos"] = split_videos  # recorded only when given: worlds made without it stay reusable
    out_dir = Path(out_dir)
    cached = None if overwrite else _cached_meta(out_dir, params)
    if cached is not None:
        logger.info("synthetic world in %s is up to date; not regenerating", out_dir)
        return cached
    start_time_s = time.perf_counter()
    (out_dir / "meta.json").unlink(missing_ok=True)  # written last, so an interrupted run is never reused
    for sub in ("videos", "annotations"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    held_out = held_out_combos(params["held_out_seed"])
    jobs = _jobs(num_videos, seed, params, held_out)
    results = _run_jobs(jobs, out_dir, num_workers or os.cpu_count() or 1, progress)
    _remove_stale_videos(out_dir / "videos", {r["video_id"] for r in results})
    meta = _world_meta(params, seed, held_out, _write_annotations(out_dir, results), [r["video_id"] for r in results])
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    logger.info("wrote %d synthetic videos to %s in %.1f s", num_videos, out_dir, time.perf_counter() - start_time_s)
    return meta


def main(argv=None) -> dict:
    """CLI: `python -m modeling_tsgv.synthetic OUT_DIR --num-videos N --seed S`; prints videos/queries per split."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", help="folder to write videos/, annotations/ and meta.json into")
    parser.add_argument("--num-videos", type=int, default=500, help="videos in total over all splits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preset", choices=list(PRESETS), default="standard", help="look of the world")
    parser.add_argument(
        "--held-out-seed", type=int, default=None, help="keep out the held-out combinations of this seed's world"
    )
    parser.add_argument("--image-size", type=int, default=None, help="frame side in pixels (default: the preset's)")
    parser.add_argument("--fps", type=int, default=None, help="frames per second (default: the preset's)")
    parser.add_argument("--min-duration-s", type=float, default=None, help="(default: the preset's)")
    parser.add_argument("--max-duration-s", type=float, default=None, help="(default: the preset's)")
    parser.add_argument("--num-workers", type=int, default=None, help="processes (default: all CPU cores)")
    parser.add_argument("--overwrite", action="store_true", help="regenerate even if an identical world exists")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    start_time_s = time.perf_counter()
    meta = generate(
        args.out_dir, num_videos=args.num_videos, seed=args.seed, image_size=args.image_size, fps=args.fps,
        min_duration_s=args.min_duration_s, max_duration_s=args.max_duration_s, preset=args.preset,
        held_out_seed=args.held_out_seed, num_workers=args.num_workers,
        overwrite=args.overwrite, progress=not args.no_progress,
    )  # fmt: skip
    for split, count in meta["counts"].items():
        print(f"{split:>10}: {count['videos']:4d} videos, {count['queries']:5d} queries")
    print(f"synthetic world in {args.out_dir} ({time.perf_counter() - start_time_s:.1f} s)")
    return meta


__all__ = [
    "GENERATOR_VERSION",
    "SPLITS",
    "HELD_OUT_FRACTION",
    "HELD_OUT_MAX_PER_ITEM",
    "EVENT_MAX_FRACTION",
    "EVENT_GAP_S",
    "BLINK_HZ",
    "VIDEO_ID_PATTERN",
    "COLOURS",
    "SHAPES",
    "TEMPLATES",
    "ACTIONS",
    "TERMINAL_ACTIONS",
    "MOVE_DIRECTIONS",
    "SCALE_FACTORS",
    "REPEATABLE_ACTIONS",
    "REPEAT_PROBABILITY",
    "WorldPreset",
    "PRESETS",
    "SceneObject",
    "Event",
    "VideoPlan",
    "held_out_combos",
    "split_counts",
    "plan_video",
    "object_tracks",
    "render_frames",
    "write_mp4",
    "world_plans",
    "object_mask",
    "patch_coverage",
    "described_event",
    "with_absent_queries",
    "generate",
    "main",
]

if __name__ == "__main__":
    main()
