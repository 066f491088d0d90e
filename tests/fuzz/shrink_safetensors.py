#!/usr/bin/env python3
"""Writes a small copy of a .safetensors file for a fuzzing seed: the same tensor names,
dtypes and metadata, every dimension cut to at most 2 and the data zeroed, so that the
fuzzer's mutations land in the header rather than in kilobytes of weights.

  shrink_safetensors.py IN OUT
"""
import json
import struct
import sys

SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def main(source, target):
    with open(source, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    offset = 0
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        spec["shape"] = [min(d, 2) for d in spec["shape"]]
        count = 1
        for d in spec["shape"]:
            count *= d
        spec["data_offsets"] = [offset, offset + count * SIZES[spec["dtype"]]]
        offset = spec["data_offsets"][1]
    text = json.dumps(header, separators=(",", ":")).encode()
    with open(target, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + bytes(offset))


if __name__ == "__main__":
    main(*sys.argv[1:])
