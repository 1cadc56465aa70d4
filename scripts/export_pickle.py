#!/usr/bin/env python3
"""Export a dist-trainer checkpoint to the seed notebook's pickle layout, and run it.

The seed notebook saves and loads its fully-connected network with
    FNN.save_model(f):  pickle.dump({name: (layer.w, layer.b) for every layer with w and b}, f)
    FNN.load_model(f):  for k, layer in self.layers.items():
                            if k in data: layer.w, layer.b = data[k]
so a notebook pickle is a dict keyed by the notebook's layer names whose values are (w, b) tuples
of float64 NumPy arrays:
    Dense 'l{n}'      w [fan_in, fan_out], b (1, fan_out)   (y = x @ w + b)
    BatchNorm 'bn{n}' w (1, d) = scale (gamma), b (1, d) = shift (beta)
The key names follow the notebook's three FNN variants:
    Model 1 (784-128-64-10):         l1, bn1, l3, bn3, l4
    Model 2 (784-512-128-64-10):     l1, bn1, l2, bn2, l3, bn3, l4
    Model 3 (784-512-128-64-32-10):  l1, bn1, l2, bn2, l3, bn3, l4, bn4, l5
A checkpoint whose hidden widths differ from its preset's (trained with --hidden) is numbered
generically: blocks l1/bn1 .. lL/bnL, head l{L+1} (a note on stderr says so). The input width is
whatever the checkpoint was trained on (784 for Fashion-MNIST).

Running statistics. The notebook's pickle forgets BatchNorm's running mean and variance (they are
not `w`/`b`), so a notebook network loaded from it would normalise with its initial statistics
(mean 0, variance 1). This export also writes them, under extra keys
    'bn{n}_running' = (running_mean (1, d), running_var (1, d))   float64
`load_model` only looks up keys that name its layers, so the extra keys are ignored by it and
harmless. To restore them after `net.load_model(path)`:
    with open(path, 'rb') as f:
        data = pickle.load(f)
    net.bn.running_mean, net.bn.running_var = data['bn1_running']     # and bn2/net.bn2, ...
(the notebook's attribute for 'bn1' is `net.bn`, for 'bn2' `net.bn2`, and so on). One more extra
key says how the data file's raw values become the network's inputs, x' = (x - shift) * scale:
    'input_transform' = (shift (1, D), scale (1, D))   float64
(1/255 for images, as the notebook divides pixels by 255; the training split's mean and standard
deviation for real-valued features). The dict holds only the layer keys, the `*_running` keys and
'input_transform', nothing else.

Usage
  python3 scripts/export_pickle.py CHECKPOINT.safetensors OUT.pkl
      Read a best.safetensors or last.safetensors (of a last: its current model; the optimizer.*
      and best.* tensors are ignored) and write OUT.pkl. Prints one summary line.
  python3 scripts/export_pickle.py --forward OUT.pkl --images IDXFILE --out LOGITS.npy
      Load the PICKLE (not the checkpoint), read images from an IDX file (gzipped or plain, e.g.
      t10k-images-idx3-ubyte.gz), scale them by 1/255 and run the notebook's inference forward
      (float64, running statistics, no dropout): for each block z = x @ w + b, a = max(z, 0),
      y = gamma * (a - running_mean) / sqrt(running_var + 1e-7) + beta; then logits = h @ w + b.
      Saves the logits as a float32 .npy [samples x classes], the format of
      `dist-trainer evaluate --save-logits`, so the two can be compared directly. This checks
      that the exported pickle is complete and correct.

Errors (not a dist-trainer checkpoint, unreadable file, missing or misshapen tensors, ...) print
one line on stderr and exit with status 1; command-line misuse exits with status 2 (argparse).

Requires numpy and safetensors (`python3 -m pip install safetensors numpy`). The pickle is written
with protocol 4, so that NumPy 1.26.1 and later as well as NumPy 2 can load it when it was written
under NumPy 2 (whose protocol-5 array pickles NumPy 1.x cannot read). As with any pickle, only load
files you trust.
"""

import argparse
import gzip
import json
import os
import pickle
import re
import sys
import tempfile

PROG = "export_pickle.py"
EPSILON = 1e-7  # the notebook's BatchNorm epsilon
PICKLE_PROTOCOL = 4

# Per seed preset: hidden widths, the notebook's number for each hidden block, the head's number.
PRESETS = {
    "1": ([128, 64], [1, 3], 4),
    "2": ([512, 128, 64], [1, 2, 3], 4),
    "3": ([512, 128, 64, 32], [1, 2, 3, 4], 5),
}


class ExportError(Exception):
    """A problem with the input, reported as one line on stderr (exit status 1)."""


def one_line(text):
    return " ".join(str(text).split())


# MARK: - Reading the checkpoint


def read_checkpoint(path):
    """Returns (architecture dict, metadata dict, {name: float64 array}) of the top-level model."""
    import numpy as np

    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as e:
        raise ExportError(f"cannot read {path}: {e.strerror or e}")
    try:
        from safetensors import safe_open
    except ImportError:
        raise ExportError("the Python package 'safetensors' is missing (python3 -m pip install safetensors numpy)")
    try:
        handle = safe_open(path, framework="np")
    except Exception as e:  # safetensors raises SafetensorError (and others) for a malformed header
        raise ExportError(f"{path}: not a readable safetensors file ({one_line(e)})")
    with handle as f:
        metadata = f.metadata() or {}
        fmt = metadata.get("format")
        if fmt != "dist-trainer":
            found = "no 'format' metadata" if fmt is None else f"metadata format '{fmt}'"
            raise ExportError(f"{path}: not a dist-trainer checkpoint ({found})")
        version = metadata.get("format_version")
        if version != "1":
            raise ExportError(f"{path}: dist-trainer checkpoint format version {version!r}, this script reads version '1'")
        arch = parse_architecture(path, metadata)
        names = set(f.keys())
        expected = expected_shapes(arch)
        missing = [name for name in expected if name not in names]
        if missing:
            shown = ", ".join(missing[:4]) + (f" (and {len(missing) - 4} more)" if len(missing) > 4 else "")
            raise ExportError(f"{path}: missing tensor{'s' if len(missing) > 1 else ''} {shown}")
        extra = sorted(n for n in names if re.match(r"layers\.(\d+)\.", n) and int(n.split(".")[1]) >= len(arch["hidden"]))
        if extra:
            raise ExportError(f"{path}: tensor {extra[0]} does not fit the architecture {widths_text(arch)} in its metadata")
        tensors = {}
        for name, shape in expected.items():
            try:
                value = f.get_tensor(name)
            except Exception as e:
                raise ExportError(f"{path}: cannot read tensor {name} ({one_line(e)})")
            if not np.issubdtype(value.dtype, np.floating):
                raise ExportError(f"{path}: tensor {name} has dtype {value.dtype}, expected a floating-point type")
            if tuple(value.shape) != shape:
                raise ExportError(f"{path}: tensor {name} has shape {list(value.shape)}, expected {list(shape)} "
                                  f"for the architecture {widths_text(arch)}")
            tensors[name] = value.astype(np.float64)
    return arch, metadata, tensors


def parse_architecture(path, metadata):
    text = metadata.get("architecture")
    if text is None:
        raise ExportError(f"{path}: metadata lacks 'architecture'")
    try:
        raw = json.loads(text)
        arch = {"input_width": int(raw["input_width"]), "hidden": [int(w) for w in raw["hidden"]],
                "class_count": int(raw["class_count"])}
    except (ValueError, TypeError, KeyError) as e:
        raise ExportError(f"{path}: metadata 'architecture' is not valid ({one_line(e)}): {one_line(text)}")
    if arch["input_width"] <= 0 or arch["class_count"] <= 1 or not arch["hidden"] or min(arch["hidden"]) <= 0:
        raise ExportError(f"{path}: metadata 'architecture' describes an impossible network ({widths_text(arch)})")
    return arch


def widths_text(arch):
    return "-".join(str(w) for w in [arch["input_width"], *arch["hidden"], arch["class_count"]])


def expected_shapes(arch):
    """The checkpoint tensor names the export needs, with their shapes, in network order."""
    shapes = {}
    fan_in = arch["input_width"]
    for i, width in enumerate(arch["hidden"]):
        shapes[f"layers.{i}.dense.weight"] = (fan_in, width)
        shapes[f"layers.{i}.dense.bias"] = (width,)
        for part in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"layers.{i}.bn.{part}"] = (width,)
        fan_in = width
    shapes["head.weight"] = (fan_in, arch["class_count"])
    shapes["head.bias"] = (arch["class_count"],)
    return shapes


# MARK: - The notebook's layout


def layer_numbers(arch, metadata):
    """(numbers of the hidden blocks, number of the head, note or None) in the notebook's naming."""
    model = metadata.get("model")
    hidden = arch["hidden"]
    if model in PRESETS:
        preset_hidden, blocks, head = PRESETS[model]
        if hidden == preset_hidden:
            return blocks, head, None
        why = (f"hidden widths {'-'.join(map(str, hidden))} differ from Model {model}'s "
               f"{'-'.join(map(str, preset_hidden))}")
    else:
        why = f"the checkpoint names no seed preset (model {model!r})"
    count = len(hidden)
    note = (f"note: {why}; keys numbered generically: l1..l{count}/bn1..bn{count} for the hidden blocks, "
            f"l{count + 1} for the head")
    return list(range(1, count + 1)), count + 1, note


def notebook_dict(arch, metadata, tensors):
    """The notebook's pickle dict (plus *_running keys) from the checkpoint tensors."""
    blocks, head, note = layer_numbers(arch, metadata)
    data = {}
    for i, n in enumerate(blocks):
        data[f"l{n}"] = (tensors[f"layers.{i}.dense.weight"], tensors[f"layers.{i}.dense.bias"].reshape(1, -1))
        data[f"bn{n}"] = (tensors[f"layers.{i}.bn.weight"].reshape(1, -1), tensors[f"layers.{i}.bn.bias"].reshape(1, -1))
    data[f"l{head}"] = (tensors["head.weight"], tensors["head.bias"].reshape(1, -1))
    for i, n in enumerate(blocks):
        data[f"bn{n}_running"] = (tensors[f"layers.{i}.bn.running_mean"].reshape(1, -1),
                                  tensors[f"layers.{i}.bn.running_var"].reshape(1, -1))
    data["input_transform"] = input_transform(arch, metadata)
    return data, note


def input_transform(arch, metadata):
    """(shift, scale) as float64 (1, D) arrays: the checkpoint's, or 1/255 for a file of a version
    that did not record it (its data was Fashion-MNIST's bytes)."""
    import numpy as np

    width = arch["input_width"]
    if "input_transform" in metadata:
        t = json.loads(metadata["input_transform"])
        shift, scale = np.array(t["shift"], dtype=np.float32), np.array(t["scale"], dtype=np.float32)
    else:
        shift, scale = np.zeros(width, dtype=np.float32), np.full(width, np.float32(1) / np.float32(255))
    return shift.astype(np.float64).reshape(1, -1), scale.astype(np.float64).reshape(1, -1)


def write_pickle(data, out):
    """Writes atomically: a temporary file next to OUT, then renamed over it."""
    directory = os.path.dirname(os.path.abspath(out))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".export_pickle-", dir=directory)
    except OSError as e:
        raise ExportError(f"cannot write {out}: {e.strerror or e}")
    try:
        with os.fdopen(fd, "wb") as f:
            pickle.dump(data, f, protocol=PICKLE_PROTOCOL)
        os.replace(tmp, out)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise ExportError(f"cannot write {out}: {e.strerror or e}")


def export(checkpoint, out):
    """Exports CHECKPOINT to OUT; returns the summary line."""
    import numpy as np

    arch, metadata, tensors = read_checkpoint(checkpoint)
    data, note = notebook_dict(arch, metadata, tensors)
    if note:
        print(f"{PROG}: {note}", file=sys.stderr)
    bad = [k for k, pair in data.items() if not all(np.isfinite(a).all() for a in pair)]
    if bad:
        print(f"{PROG}: warning: non-finite values in {', '.join(bad)} (exported as they are)", file=sys.stderr)
    write_pickle(data, out)
    layers = [k for k in data if not k.endswith("_running") and k != "input_transform"]
    params = sum(a.size for k in layers for a in data[k])
    kind = metadata.get("kind", "?")
    origin = f"{kind} checkpoint"
    if "epoch" in metadata:
        origin += f", lr {metadata.get('lr', '?')} epoch {metadata['epoch']}"
    if "val_macro_f1" in metadata:
        try:
            origin += f", val macro-F1 {float(metadata['val_macro_f1']):.4f}"
        except ValueError:
            pass
    preset = f"Model {metadata['model']}" if note is None else "generic"
    running = [k for k in data if k.endswith("_running")]
    return (f"wrote {out}: {widths_text(arch)} ({origin}); {preset} keys {' '.join(layers)} "
            f"+ {' '.join(running)}; {params} parameters, float64")


# MARK: - The notebook's inference forward, from the pickle


def layer_order(data):
    """[(n, has_bn)] for the dense layers of a notebook dict, in network order."""
    dense = sorted(int(m.group(1)) for m in (re.fullmatch(r"l(\d+)", k) for k in data) if m)
    if not dense:
        raise ExportError("the pickle has no dense layers ('l1', 'l2', ...)")
    for k in data:
        m = re.fullmatch(r"bn(\d+)(_running)?", k)
        if m and int(m.group(1)) not in dense:
            raise ExportError(f"the pickle has '{k}' but no dense layer 'l{m.group(1)}' before it")
        if not m and not re.fullmatch(r"l(\d+)", k) and k != "input_transform":
            raise ExportError(f"the pickle has an unexpected key {k!r}")
    order = [(n, f"bn{n}" in data) for n in dense]
    for n, has_bn in order[:-1]:
        if not has_bn:
            raise ExportError(f"dense layer 'l{n}' has no BatchNorm 'bn{n}' but is not the last layer")
    if order[-1][1]:
        raise ExportError(f"the last dense layer 'l{order[-1][0]}' is followed by 'bn{order[-1][0]}'; no head")
    return order


def forward(data, x):
    """The notebook's inference forward (float64, running statistics, no dropout) from a pickle
    dict as written by this script: for each hidden block Dense -> ReLU -> BatchNorm, then the
    Dense head. `x` is [samples, input_width] (pixels / 255); returns the logits [samples, classes]."""
    import numpy as np

    h = np.asarray(x, dtype=np.float64)
    for n, has_bn in layer_order(data):
        w, b = (np.asarray(a, dtype=np.float64) for a in data[f"l{n}"])
        if h.shape[1] != w.shape[0]:
            raise ExportError(f"layer 'l{n}' takes {w.shape[0]} inputs, it gets {h.shape[1]}")
        h = h @ w + b
        if has_bn:
            h = np.maximum(h, 0.0)
            gamma, beta = (np.asarray(a, dtype=np.float64) for a in data[f"bn{n}"])
            if f"bn{n}_running" not in data:
                raise ExportError(f"the pickle lacks 'bn{n}_running' (running statistics); export it with this script")
            mean, var = (np.asarray(a, dtype=np.float64) for a in data[f"bn{n}_running"])
            h = gamma * (h - mean) / np.sqrt(var + EPSILON) + beta
    return h


def read_idx_images(path):
    """Images of an IDX file (gzipped or plain) as uint8 [count, rows * cols]."""
    import numpy as np

    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError) as e:
        raise ExportError(f"cannot read {path}: {getattr(e, 'strerror', None) or one_line(e)}")
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ExportError(f"{path}: not an IDX file of unsigned bytes")
    ndim = raw[3]
    if ndim < 2:
        raise ExportError(f"{path}: an IDX file with {ndim} dimension(s) holds labels, not images")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ExportError(f"{path}: truncated IDX header")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    count, width = dims[0], 1
    for d in dims[1:]:
        width *= d
    if len(raw) != header + count * width:
        raise ExportError(f"{path}: IDX header says {'x'.join(map(str, dims))} bytes, the file holds {len(raw) - header}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(count, width)


def run_forward(pickle_path, images_path, out):
    import numpy as np

    try:
        with open(pickle_path, "rb") as f:
            data = pickle.load(f)
    except OSError as e:
        raise ExportError(f"cannot read {pickle_path}: {e.strerror or e}")
    except Exception as e:
        raise ExportError(f"{pickle_path}: not a readable pickle ({one_line(e)})")
    if not isinstance(data, dict):
        raise ExportError(f"{pickle_path}: expected a dict of layers, found {type(data).__name__}")
    x = read_idx_images(images_path).astype(np.float64)
    if "input_transform" in data:
        shift, scale = (np.asarray(a, dtype=np.float64) for a in data["input_transform"])
        x = (x - shift) * scale
    else:
        x = x / 255.0
    logits = forward(data, x)
    try:
        np.save(out, logits.astype(np.float32))
    except OSError as e:
        raise ExportError(f"cannot write {out}: {e.strerror or e}")
    return (f"wrote {out}: {logits.shape[0]} x {logits.shape[1]} float32 logits from {pickle_path} "
            f"(layers {' '.join(f'l{n}' + (f' bn{n}' if bn else '') for n, bn in layer_order(data))})")


# MARK: - Command line


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Export a dist-trainer checkpoint (.safetensors) to the seed notebook's pickle layout "
                    "(FNN.load_model), with BatchNorm running statistics under extra '*_running' keys; "
                    "or run the notebook's inference forward from such a pickle.",
        epilog="examples:\n"
               "  python3 scripts/export_pickle.py runs/x/best.safetensors model.pkl\n"
               "  python3 scripts/export_pickle.py --forward model.pkl "
               "--images data/t10k-images-idx3-ubyte.gz --out logits.npy",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", nargs="?", help="dist-trainer checkpoint (best.safetensors or last.safetensors)")
    parser.add_argument("output", nargs="?", help="pickle file to write")
    parser.add_argument("--forward", metavar="PICKLE", help="run the inference forward from this exported pickle")
    parser.add_argument("--images", metavar="IDXFILE", help="with --forward: IDX image file (.gz or plain)")
    parser.add_argument("--out", metavar="LOGITS.npy", help="with --forward: where to save the logits (float32 .npy)")
    args = parser.parse_args(argv)
    if args.forward is not None:
        if args.checkpoint is not None:
            parser.error("--forward takes no CHECKPOINT/OUTPUT arguments")
        if args.images is None or args.out is None:
            parser.error("--forward needs --images IDXFILE and --out LOGITS.npy")
    else:
        if args.checkpoint is None or args.output is None:
            parser.error("expected CHECKPOINT.safetensors OUT.pkl (or --forward PICKLE --images IDXFILE --out LOGITS.npy)")
        if args.images is not None or args.out is not None:
            parser.error("--images and --out go with --forward")
    try:
        import numpy  # noqa: F401
    except ImportError:
        print(f"{PROG}: error: the Python package 'numpy' is missing (python3 -m pip install safetensors numpy)",
              file=sys.stderr)
        return 1
    try:
        if args.forward is not None:
            summary = run_forward(args.forward, args.images, args.out)
        else:
            summary = export(args.checkpoint, args.output)
    except ExportError as e:
        print(f"{PROG}: error: {one_line(e)}", file=sys.stderr)
        return 1
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
