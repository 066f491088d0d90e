"""Per-operator self time of a PyTorch peer, grouped by operator name and input shapes, in
the form troupe's benches print with --op_profile (bench/op_profile.hpp), so that the two
sides of a benchmark can be compared line by line.

    with op_profile(rows=40, steps=3):
        for _ in range(3):
            step()
"""
import contextlib

import torch
from torch.profiler import ProfilerActivity, profile


@contextlib.contextmanager
def op_profile(rows, steps):
    if rows <= 0:
        yield
        return
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        yield
    table = {}
    for event in prof.key_averages(group_by_input_shape=True):
        shapes = ", ".join(str(list(s)) for s in event.input_shapes if s)
        key = f"{event.key} [{shapes}]"
        self_us, calls = table.get(key, (0.0, 0))
        table[key] = (self_us + event.self_cpu_time_total, calls + event.count)
    total = sum(v[0] for v in table.values())
    print(f"{'self ms':>10} {'share':>7} {'calls':>8}  operator [input shapes] (per step)")
    for key, (self_us, calls) in sorted(table.items(), key=lambda kv: -kv[1][0])[:rows]:
        print(f"{self_us / 1e3 / steps:10.1f} {100 * self_us / total:6.1f}% {calls / steps:8.0f}  {key}")
    print(f"{total / 1e3 / steps:10.1f} {100.0:6.1f}% {'':>8}  total self time of recorded operators")
