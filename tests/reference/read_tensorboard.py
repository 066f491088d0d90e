#!/usr/bin/env python3
"""Checks that TensorBoard's own loader reads the event file troupe's TensorBoardWriter
wrote, with exactly the scalars written.

A file only counts as a TensorBoard event file when TensorBoard reads it; checking it
with our own parser would prove little.

Usage: python3 tests/reference/read_tensorboard.py LOG_DIR
  LOG_DIR  the directory the hidden Catch case "[tensorboard_export]" in
           tests/engine/test_run_outputs.cpp wrote; the values below mirror that case.
Exits 0 when every tag, step, value (as float32) and wall time matches, 1 with a
message naming what differs otherwise.
"""
import os
import struct
import sys


def fail(message):
    print(f"read_tensorboard: FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def float32(x):
    """x rounded to float32, as the C++ side's static_cast<float>(double) does."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


# tag -> [(step, value, wall_time)], as written by the C++ test case.
EXPECTED = {
    "train/loss": [(step, float32(1.0 / (step + 1)), 1700000000.0 + step) for step in range(10)],
    "eval/ppl": [(i * 4, v, 1700000100.5 + i) for i, v in enumerate([12.5, 6.25, 3.125])],
}


def main():
    if len(sys.argv) != 2:
        fail("usage: read_tensorboard.py LOG_DIR")
    log_dir = sys.argv[1]
    if not os.path.isdir(log_dir):
        fail(f"{log_dir}: no such directory (did the [tensorboard_export] case run?)")
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError as e:
        fail(f"cannot import tensorboard ({e}); run scripts/setup")

    event_files = [f for f in os.listdir(log_dir) if "tfevents" in f]
    if len(event_files) != 1:
        fail(f"{log_dir}: expected one event file, found {sorted(event_files)}")

    # size_guidance 0 keeps every event; the default samples scalars down to 10000.
    accumulator = EventAccumulator(log_dir, size_guidance={"scalars": 0})
    accumulator.Reload()

    tags = sorted(accumulator.Tags()["scalars"])
    if tags != sorted(EXPECTED):
        fail(f"scalar tags {tags}, expected {sorted(EXPECTED)}")
    for tag, want in EXPECTED.items():
        got = [(e.step, e.value, e.wall_time) for e in accumulator.Scalars(tag)]
        if len(got) != len(want):
            fail(f"{tag}: {len(got)} events, expected {len(want)}: {got}")
        for (step, value, wall_time), (want_step, want_value, want_wall_time) in zip(got, want):
            if step != want_step:
                fail(f"{tag}: step {step}, expected {want_step}")
            if value != want_value:
                fail(f"{tag} step {step}: value {value!r}, expected float32 {want_value!r}")
            if wall_time != want_wall_time:
                fail(f"{tag} step {step}: wall_time {wall_time!r}, expected {want_wall_time!r}")
    print(f"read_tensorboard: ok: {', '.join(f'{t} ({len(w)} steps)' for t, w in EXPECTED.items())}")


if __name__ == "__main__":
    main()
