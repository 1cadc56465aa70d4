#!/usr/bin/env python3
"""Export a dist-trainer checkpoint to ONNX, for serving the model with ONNX Runtime or any other
ONNX consumer.

    python3 scripts/export_onnx.py CHECKPOINT.safetensors OUT.onnx

The graph has one input, `input`, float32 [N, D]: the raw values exactly as they are in the data
file (pixel values 0-255, unstandardised columns). It applies the checkpoint's input transform
(x - shift) * scale (1/255 for images; the training split's mean and standard deviation for
real-valued features), then every block as dist-trainer computes it in inference mode:
Dense (x @ W + b) -> ReLU -> BatchNorm with the running statistics (epsilon 1e-7) -> (dropout is
the identity at inference), then the Dense head. Two outputs: `logits` [N, classes] and
`probabilities` [N, classes] (softmax). The class names are in the model's metadata
(`class_names`, JSON), with the architecture and the checkpoint's configuration.

Needs numpy and onnx (`python3 -m pip install numpy onnx`); it reads the safetensors file itself
(no other package). The model is checked with onnx.checker before it is written. A problem with the
checkpoint is one line on stderr and exit status 1; a misused command line exits 2.
"""

import argparse
import json
import struct
import sys

import numpy as np


def fail(message):
    print(f"export_onnx.py: {message}", file=sys.stderr)
    sys.exit(1)


def read_checkpoint(path):
    """The tensors (float32 arrays by name) and the string metadata of a safetensors file."""
    try:
        raw = open(path, "rb").read()
    except OSError as e:
        fail(f"{path}: {e.strerror}")
    if len(raw) < 8:
        fail(f"{path}: not a safetensors file (shorter than its 8-byte header length)")
    n = struct.unpack("<Q", raw[:8])[0]
    if 8 + n > len(raw):
        fail(f"{path}: header length {n} runs past the end of the file ({len(raw)} bytes)")
    try:
        header = json.loads(raw[8:8 + n])
    except ValueError as e:
        fail(f"{path}: header is not JSON ({e})")
    metadata = header.pop("__metadata__", {}) or {}
    body = raw[8 + n:]
    tensors = {}
    for name, t in header.items():
        if t.get("dtype") != "F32":
            fail(f"{path}: tensor {name} is {t.get('dtype')}, expected F32")
        begin, end = t["data_offsets"]
        tensors[name] = np.frombuffer(body[begin:end], dtype="<f4").reshape(t["shape"])
    if metadata.get("format") != "dist-trainer":
        fail(f"{path}: not a dist-trainer checkpoint (metadata format {metadata.get('format')!r})")
    return tensors, metadata


def tensor(tensors, name, shape, path):
    if name not in tensors:
        fail(f"{path}: missing tensor {name}")
    t = tensors[name]
    if list(t.shape) != list(shape):
        fail(f"{path}: tensor {name} has shape {list(t.shape)}, expected {list(shape)}")
    return t


def build(tensors, metadata, path):
    from onnx import TensorProto, checker, helper, numpy_helper

    arch = json.loads(metadata["architecture"])
    width, classes, hidden = arch["input_width"], arch["class_count"], arch["hidden"]
    if "input_transform" in metadata:
        transform = json.loads(metadata["input_transform"])
        shift, scale = np.array(transform["shift"], "f4"), np.array(transform["scale"], "f4")
    else:  # checkpoints of dist-trainer 0.8 and before: Fashion-MNIST bytes
        shift, scale = np.zeros(width, "f4"), np.full(width, np.float32(1.0) / np.float32(255.0), "f4")
    names = json.loads(metadata["class_names"]) if "class_names" in metadata else [str(k) for k in range(classes)]

    initializers, nodes = [], []

    def constant(name, value):
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(value, dtype=np.float32), name))
        return name

    nodes.append(helper.make_node("Sub", ["input", constant("input.shift", shift)], ["shifted"]))
    nodes.append(helper.make_node("Mul", ["shifted", constant("input.scale", scale)], ["x0"]))
    x, fan_in = "x0", width
    for i, w in enumerate(hidden):
        p = f"layers.{i}"
        nodes.append(helper.make_node("MatMul", [x, constant(f"{p}.dense.weight", tensor(tensors, f"{p}.dense.weight", [fan_in, w], path))], [f"{p}.matmul"]))
        nodes.append(helper.make_node("Add", [f"{p}.matmul", constant(f"{p}.dense.bias", tensor(tensors, f"{p}.dense.bias", [w], path))], [f"{p}.dense"]))
        nodes.append(helper.make_node("Relu", [f"{p}.dense"], [f"{p}.relu"]))
        stats = [constant(f"{p}.bn.{k}", tensor(tensors, f"{p}.bn.{k}", [w], path)) for k in ("weight", "bias", "running_mean", "running_var")]
        nodes.append(helper.make_node("BatchNormalization", [f"{p}.relu"] + stats, [f"{p}.out"], epsilon=1e-7))
        x, fan_in = f"{p}.out", w
    nodes.append(helper.make_node("MatMul", [x, constant("head.weight", tensor(tensors, "head.weight", [fan_in, classes], path))], ["head.matmul"]))
    nodes.append(helper.make_node("Add", ["head.matmul", constant("head.bias", tensor(tensors, "head.bias", [classes], path))], ["logits"]))
    nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1))

    graph = helper.make_graph(
        nodes, "dist-trainer",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", width])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes]),
         helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", classes])],
        initializers)
    model = helper.make_model(graph, producer_name="dist-trainer", opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7  # what ONNX Runtime 1.x and every opset-13 consumer reads
    for key, value in (("class_names", json.dumps(names)), ("architecture", metadata["architecture"]),
                       ("config", metadata.get("config", "{}")), ("source_checkpoint", path)):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    checker.check_model(model)
    return model, names


def main(argv=None):
    parser = argparse.ArgumentParser(description="Export a dist-trainer checkpoint to ONNX (raw features in; logits and probabilities out).")
    parser.add_argument("checkpoint", help="best.safetensors or last.safetensors (its current model)")
    parser.add_argument("out", help="the .onnx file to write")
    args = parser.parse_args(argv)
    try:
        import onnx
    except ImportError:
        fail("needs the onnx package: python3 -m pip install onnx")
    tensors, metadata = read_checkpoint(args.checkpoint)
    try:
        model, names = build(tensors, metadata, args.checkpoint)
    except (KeyError, ValueError) as e:
        fail(f"{args.checkpoint}: metadata does not describe a model ({e})")
    onnx.save(model, args.out)
    arch = json.loads(metadata["architecture"])
    print(f"wrote {args.out}: input float32 [N, {arch['input_width']}] (raw values), outputs logits and probabilities over "
          f"{len(names)} classes ({', '.join(names[:5])}{', ...' if len(names) > 5 else ''})")


if __name__ == "__main__":
    main()
