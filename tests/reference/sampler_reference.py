#!/usr/bin/env python3
"""Reference for troupe's distributed_indices (tests/data/test_sampler.cpp): what
torch.utils.data.DistributedSampler yields per rank for a few sizes, seeds, epochs.

    python3 tests/reference/sampler_reference.py
"""
import json
import os

import torch
from torch.utils.data import DistributedSampler

cases = []
for n, world, drop_last in [(10, 1, False), (10, 3, False), (10, 3, True), (7, 4, False), (2, 5, False), (37, 2, True), (100, 8, False)]:
    for seed, epoch in [(0, 0), (1234, 0), (1234, 3)]:
        for shuffle in (True, False):
            for rank in range(world):
                s = DistributedSampler(list(range(n)), num_replicas=world, rank=rank, shuffle=shuffle, seed=seed,
                                       drop_last=drop_last)
                s.set_epoch(epoch)
                cases.append({"n": n, "world_size": world, "rank": rank, "drop_last": drop_last, "seed": seed,
                              "epoch": epoch, "shuffle": shuffle, "indices": list(iter(s))})
path = os.path.join(os.path.dirname(__file__), "fixtures", "data", "sampler_reference.json")
with open(path, "w") as f:
    json.dump({"generator": "tests/reference/sampler_reference.py", "torch": torch.__version__, "cases": cases}, f,
              separators=(",", ":"))
    f.write("\n")
print(f"wrote {path}")
