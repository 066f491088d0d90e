#!/usr/bin/env python3
"""Reference for troupe's data split (tests/data/test_split.cpp).

Reproduces DeepSpeed-Chat's `get_raw_dataset_split_index` / `get_shuffle_idx`
(dschat/utils/data/data_utils.py) with NumPy, and writes the chunk boundaries,
permutations and per-phase index selections to
tests/reference/fixtures/data/split_reference.json.

    python3 tests/reference/split_reference.py
"""
import json
import os

import numpy as np


def get_shuffle_idx(seed, size):
    # As DeepSpeed-Chat: RandomState(seed).shuffle over arange(size).
    np_rng = np.random.RandomState(seed=seed)
    dtype_ = np.uint32
    if size >= (np.iinfo(np.uint32).max - 1):
        dtype_ = np.int64
    shuffle_idx = np.arange(start=0, stop=size, step=1, dtype=dtype_)
    np_rng.shuffle(shuffle_idx)
    return shuffle_idx


def split_boundaries(data_split, data_size):
    splits = [float(s) for s in data_split.split(",")]
    splits_sum = sum(splits)
    splits = [split / splits_sum for split in splits]
    splits_index = [0]
    for index, split in enumerate(splits):
        splits_index.append(splits_index[index] + int(round(split * float(data_size))))
    diff = splits_index[-1] - data_size
    for index in range(1, len(splits_index)):
        splits_index[index] -= diff
    assert splits_index[-1] == data_size
    return splits_index


def split_index(seed, data_split, chunk, data_size):
    b = split_boundaries(data_split, data_size)
    shuffle_idx = get_shuffle_idx(seed, data_size)
    return shuffle_idx[b[chunk]:b[chunk + 1]].tolist()


def main():
    splits = ["2,4,4", "1,1,1", "9,1", "10,0,0", "3,3,4", "0.2,0.4,0.4", "1,2,3", "6,2,2", "1,98,1", "5,5"]
    sizes = list(range(0, 64)) + [99, 100, 101, 255, 1000, 1001, 12345, 160800]
    boundaries = [{"n": n, "split": s, "boundaries": split_boundaries(s, n)} for s in splits for n in sizes]

    permutations = []
    for seed in [0, 1, 42, 1234, 4294967295]:
        for n in [1, 2, 3, 5, 10, 37, 100, 257]:
            permutations.append({"seed": seed, "n": n, "indices": get_shuffle_idx(seed, n).tolist()})

    # A dataset without an eval split: 9:1 first, then 2,4,4 on each side (DeepSpeed-Chat's
    # raw datasets do this with split names "train_eval" and then "train"/"eval").
    phases = []
    for seed, n in [(1234, 37), (7, 100)]:
        train = split_index(seed, "9,1", 0, n)
        evals = split_index(seed, "9,1", 1, n)
        for phase in (1, 2, 3):
            tr = [train[i] for i in split_index(seed, "2,4,4", phase - 1, len(train))]
            ev = [evals[i] for i in split_index(seed, "2,4,4", phase - 1, len(evals))]
            phases.append({"seed": seed, "n": n, "phase": phase, "train": tr, "eval": ev})

    # Blending (DeepSpeed-Chat's create_prompt_dataset): dataset "a" with an eval file
    # (20 train, 6 eval), dataset "b" without (13 rows); each phase's chunks concatenated,
    # then one shuffle; in phase 1 an SFT-only dataset "s" (7 rows, no eval) is split
    # "10,0,0", appended and everything shuffled once more.
    def phase_chunks(name, train_n, eval_n, seed, data_split, phase):
        if eval_n is None:
            train = split_index(seed, "9,1", 0, train_n)
            evals = split_index(seed, "9,1", 1, train_n)
            train = [f"{name}{i}" for i in train]
            evals = [f"{name}{i}" for i in evals]
        else:
            train = [f"{name}{i}" for i in range(train_n)]
            evals = [f"{name}e{i}" for i in range(eval_n)]
        tr = [train[i] for i in split_index(seed, data_split, phase - 1, len(train))]
        ev = [evals[i] for i in split_index(seed, data_split, phase - 1, len(evals))]
        return tr, ev

    blends = []
    seed = 1234
    for phase in (1, 2, 3):
        ta, ea = phase_chunks("a", 20, 6, seed, "2,4,4", phase)
        tb, eb = phase_chunks("b", 13, None, seed, "2,4,4", phase)
        train = ta + tb
        evals = ea + eb
        train = [train[i] for i in get_shuffle_idx(seed, len(train))]
        evals = [evals[i] for i in get_shuffle_idx(seed, len(evals))]
        if phase == 1:
            ts, es = phase_chunks("s", 7, None, seed, "10,0,0", 1)
            train = train + ts
            evals = evals + es
            train = [train[i] for i in get_shuffle_idx(seed, len(train))]
            evals = [evals[i] for i in get_shuffle_idx(seed, len(evals))]
        blends.append({"seed": seed, "phase": phase, "train": train, "eval": evals})

    out = {
        "generator": "tests/reference/split_reference.py",
        "numpy": np.__version__,
        "boundaries": boundaries,
        "permutations": permutations,
        "phases_without_eval": phases,
        "blends": blends,
    }
    path = os.path.join(os.path.dirname(__file__), "fixtures", "data", "split_reference.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
