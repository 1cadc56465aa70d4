#!/usr/bin/env python3
"""make_corpus.py: writes the fuzzers' seed corpus, one folder per target, instead of keeping
binary files in git: small hand-made IDX, gzip and safetensors files, and the two checkpoints
(best.safetensors, last.safetensors) of a tiny training run of the release binary on synthetic
4x4 images, so the checkpoint seeds always have the current format.

  fuzz/make_corpus.py OUT_DIR DIST_TRAINER_BIN      (scripts/fuzz.sh runs it)
"""
import gzip
import json
import os
import random
import struct
import subprocess
import sys
import tempfile


def idx(type_code, dims, payload):
    """An IDX file: magic (0, 0, type, rank), big-endian dimensions, then the bytes."""
    return struct.pack(">BBBB", 0, 0, type_code, len(dims)) + b"".join(struct.pack(">I", d) for d in dims) + bytes(payload)


def safetensors(tensors, metadata=None):
    """A safetensors file of float32 tensors {name: (shape, values)}; header padded to 8 bytes."""
    header, data = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, (shape, values) in tensors.items():
        raw = struct.pack(f"<{len(values)}f", *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def write(path, content):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(content)


def checkpoints(out, binary):
    """best.safetensors and last.safetensors of a 3-epoch run on 4×4 images (hidden 4,3)."""
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        for prefix, count in (("train", 600), ("t10k", 100)):
            labels = [rng.randrange(10) for _ in range(count)]
            pixels = [min(255, 20 * label + rng.randrange(60)) for label in labels for _ in range(16)]
            write(f"{data}/{prefix}-images-idx3-ubyte", idx(0x08, [count, 4, 4], pixels))
            write(f"{data}/{prefix}-labels-idx1-ubyte", idx(0x08, [count], labels))
        run = os.path.join(tmp, "run")
        subprocess.run([binary, "train", "--data-dir", data, "--run-dir", run, "--hidden", "4,3", "--epochs", "3",
                        "--batch-size", "50", "--lr", "0.01", "--threads", "1"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for name in ("best.safetensors", "last.safetensors"):
            with open(os.path.join(run, name), "rb") as f:
                write(f"{out}/checkpoint/{name}", f.read())


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip())
    out, binary = sys.argv[1], sys.argv[2]
    labels = idx(0x08, [8], [0, 1, 2, 3, 4, 5, 6, 9])
    write(f"{out}/idx/labels", labels)
    write(f"{out}/idx/images", idx(0x08, [2, 3, 3], range(18)))
    write(f"{out}/idx/empty-images", idx(0x08, [0, 28, 28], []))
    # mtime=0: the same bytes on every run.
    write(f"{out}/gzip/one-member.gz", gzip.compress(b"dist-trainer fuzz seed " * 8, mtime=0))
    write(f"{out}/gzip/two-members.gz", gzip.compress(b"first", mtime=0) + gzip.compress(b"second", mtime=0))
    write(f"{out}/gzip/idx-labels.gz", gzip.compress(labels, mtime=0))
    write(f"{out}/safetensors/scalar-and-empty.safetensors", safetensors({"s": ([], [1.5]), "e": ([0, 4], [])}))
    write(f"{out}/safetensors/two-tensors.safetensors",
          safetensors({"a": ([2, 2], [1, 2, 3, 4]), "b": ([3], [5, 6, 7])}, metadata={"format": "x"}))
    checkpoints(out, binary)


if __name__ == "__main__":
    main()
