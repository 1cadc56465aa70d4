#!/usr/bin/env python3
"""An independent NumPy (float64) reference of the seed notebook's training math.

The seed notebook (Fashion-MNIST, fully-connected network) defines DenseLayer, RelU, BatchNorm,
Dropout, Loss (softmax cross-entropy) and Adam as classes with cached state. This file restates the
same math as small pure functions, in float64, so that the Swift trainer (Sources/Core) can be
checked against it: from the same initial weights, batch and dropout masks, both must agree on the
loss, every gradient, the running statistics, one Adam step (both variants) and the inference-mode
logits after that step.

Network (as in the seed's FNN): hidden blocks Dense -> ReLU -> BatchNorm -> (Dropout), then a Dense
head producing logits; the loss is softmax cross-entropy averaged over the batch.

Usage
  python3 scripts/numpy_reference.py --case DIR   read DIR/case.json and its tensors, write results
  python3 scripts/numpy_reference.py --self-test  finite-difference check of this file's backward pass

Case format (DIR/case.json, all keys required unless marked optional)
  {
    "architecture": {"input_width": 20, "hidden": [16, 8], "dropout_after": [true, false],
                     "classes": 10},
    "batch": 32,                       rows in the batch
    "keep": 0.5,                       dropout keep probability (masks must be 0 or 1/keep)
    "lr": 0.005,                       Adam learning rate
    "variants": ["adam", "adam-seed"], optional; Adam variants to apply (default: both)
    "tensors": {NAME: {"file": "x.bin", "dtype": "float32", "shape": [32, 20]}, ...}
  }
  Every tensor is a raw little-endian, row-major file in DIR; dtype is float32, float64 or int32.
  Required tensors (l = hidden block index, 0-based):
    x                      [batch, input_width]      input batch
    labels                 [batch] int32             class indices
    dense{l}.w, dense{l}.b [fan_in, fan_out], [fan_out]  hidden Dense weight (seed's w) and bias
    bn{l}.w, bn{l}.b       [width]                   BatchNorm scale (gamma) and shift (beta)
    bn{l}.running_mean, bn{l}.running_var  [width]   running statistics before the step
    dropout{l}.mask        [batch, width]            only for blocks with dropout
    head.w, head.b         [last width, classes], [classes]
  Optional tensors:
    given_grad.PARAM       a gradient for every parameter PARAM (all or none): Adam is then also
                           applied to these (e.g. the Swift side's float32 gradients), to check the
                           optimiser on identical inputs (see "given." results)
  The seed's constants are fixed here on purpose (not read from the case), so that a change on the
  Swift side shows up as a disagreement: BatchNorm momentum 0.9 and epsilon 1e-7, Adam beta1 0.9,
  beta2 0.999, epsilon 1e-8.

Results (written into DIR): result.json
  {"loss": float, "tensors": {NAME: {"file": "ref.NAME.bin", "dtype": "float64", "shape": [...]}}}
  with tensors
    logits                          training-mode logits (batch statistics, the given masks)
    grad.PARAM                      gradient of the batch-mean loss for every parameter PARAM
    after.bn{l}.running_mean/_var   running statistics after the training forward pass
    VARIANT.PARAM                   every parameter after one Adam step of VARIANT from zero moments
    VARIANT.logits_inference        inference-mode logits (running statistics, no dropout) of the
                                    same batch with VARIANT's updated parameters
    given.VARIANT.PARAM             (with given_grad) every parameter after one Adam step of VARIANT
                                    from the given gradients
    given.VARIANT.logits_inference  (with given_grad) inference-mode logits with those parameters
  Other files in DIR are ignored (the Swift test also leaves its own results there, swift.*.bin with
  a manifest swift.json, so that a kept failing case can be inspected).
"""

import argparse
import json
import os
import sys

import numpy as np

# The seed's constants.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-7
ADAM_BETA1 = 0.9
ADAM_BETA2 = 0.999
ADAM_EPSILON = 1e-8
VARIANTS = ("adam", "adam-seed")


# ----------------------------------------------------------------------------------------------
# Layers (pure functions; whatever the backward pass needs is returned as a cache)
# ----------------------------------------------------------------------------------------------

def dense_forward(x, w, b):
    """y = x @ w + b with w of shape [fan_in, fan_out], as the seed's DenseLayer."""
    return x @ w + b


def dense_backward(x, w, dout):
    """Returns (dW, db, dx) for y = x @ w + b."""
    dw = x.T @ dout
    db = np.sum(dout, axis=0)
    dx = dout @ w.T
    return dw, db, dx


def relu_forward(z):
    return np.maximum(0.0, z)


def relu_backward(z, dout):
    """The seed's RelU.backward: the gradient passes where the *input* was positive."""
    return dout * (z > 0)


def batchnorm_forward_train(x, gamma, beta, eps=BN_EPSILON):
    """Training-mode BatchNorm with batch statistics (biased variance), as the seed's forward.

    Returns (out, cache, mu, var); mu and var are the batch statistics for the running update.
    """
    mu = np.mean(x, axis=0)
    xmu = x - mu
    var = np.mean(xmu ** 2, axis=0)
    sqrtvar = np.sqrt(var + eps)
    ivar = 1.0 / sqrtvar
    xhat = xmu * ivar
    out = gamma * xhat + beta
    cache = (xhat, xmu, ivar, var, gamma, eps)
    return out, cache, mu, var


def batchnorm_backward(dout, cache):
    """The seed's BatchNorm.backward: the explicit dvar / dmu chain (not the simplified formula).

    Returns (dgamma, dbeta, dx).
    """
    xhat, xmu, ivar, var, gamma, eps = cache
    n = dout.shape[0]
    dbeta = np.sum(dout, axis=0)
    dgamma = np.sum(dout * xhat, axis=0)
    dxhat = dout * gamma
    # dL/dvar = sum dxhat * (x - mu) * -1/2 * (var + eps)^(-3/2)
    dvar = np.sum(dxhat * xmu, axis=0) * -0.5 * (var + eps) ** -1.5
    # dL/dmu = sum dxhat * -ivar + dL/dvar * sum(-2 (x - mu)) / N
    dmu = np.sum(dxhat * -ivar, axis=0) + dvar * np.sum(-2.0 * xmu, axis=0) / n
    dx = dxhat * ivar + dvar * 2.0 * xmu / n + dmu / n
    return dgamma, dbeta, dx


def batchnorm_update_running(running_mean, running_var, mu, var, momentum=BN_MOMENTUM):
    """r <- momentum * r + (1 - momentum) * batch statistic (the biased batch variance)."""
    new_mean = momentum * running_mean + (1.0 - momentum) * mu
    new_var = momentum * running_var + (1.0 - momentum) * var
    return new_mean, new_var


def batchnorm_forward_inference(x, gamma, beta, running_mean, running_var, eps=BN_EPSILON):
    xhat = (x - running_mean) / np.sqrt(running_var + eps)
    return gamma * xhat + beta


def dropout_forward(x, mask):
    """Inverted dropout with a given mask (0 or 1/keep). The seed draws the mask as
    (rand < p) / p with p the keep probability; here it comes from the caller (the Swift side draws
    it from its counter-based generator)."""
    return x * mask


def dropout_backward(dout, mask):
    return dout * mask


def softmax(z):
    e = np.exp(z - np.max(z, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


def softmax_cross_entropy(logits, labels):
    """Batch-mean softmax cross-entropy and its gradient (softmax - onehot) / N.

    The loss is the exact log-sum-exp form, log sum_c exp(z_c) - z_y, as the Swift code computes it,
    not the seed's -log(softmax + 1e-8); the two differ only where a probability nears 1e-8 (the
    seed's loss saturates near 18.4 there). The gradient is the seed's Loss.backward either way.
    """
    n = logits.shape[0]
    zmax = np.max(logits, axis=1, keepdims=True)
    lse = np.log(np.sum(np.exp(logits - zmax), axis=1)) + zmax[:, 0]
    rows = np.arange(n)
    loss = np.mean(lse - logits[rows, labels])
    onehot = np.zeros_like(logits)
    onehot[rows, labels] = 1.0
    dlogits = (softmax(logits) - onehot) / n
    return loss, dlogits


def adam_update(p, g, m, v, t, lr, variant):
    """One Adam update at step t (1-based) from moments m, v; returns (p', m', v').

    adam:      bias-corrected (Kingma & Ba): p - lr * mhat / (sqrt(vhat) + eps)
    adam-seed: the seed's Adam.update, no bias correction: p - lr * m / (sqrt(v) + eps)
    """
    m = ADAM_BETA1 * m + (1.0 - ADAM_BETA1) * g
    v = ADAM_BETA2 * v + (1.0 - ADAM_BETA2) * g ** 2
    if variant == "adam":
        mhat = m / (1.0 - ADAM_BETA1 ** t)
        vhat = v / (1.0 - ADAM_BETA2 ** t)
        p = p - lr * mhat / (np.sqrt(vhat) + ADAM_EPSILON)
    elif variant == "adam-seed":
        p = p - lr * m / (np.sqrt(v) + ADAM_EPSILON)
    else:
        raise ValueError(f"unknown Adam variant {variant!r}")
    return p, m, v


# ----------------------------------------------------------------------------------------------
# Network
# ----------------------------------------------------------------------------------------------

class Arch:
    def __init__(self, input_width, hidden, dropout_after, classes):
        if len(hidden) != len(dropout_after):
            raise ValueError("hidden and dropout_after differ in length")
        self.input_width = int(input_width)
        self.hidden = [int(h) for h in hidden]
        self.dropout_after = [bool(d) for d in dropout_after]
        self.classes = int(classes)

    @property
    def blocks(self):
        return len(self.hidden)

    def fan_in(self, l):
        return self.input_width if l == 0 else self.hidden[l - 1]

    def param_shapes(self):
        """Parameter names and shapes, in the order the Swift ParameterLayout stores them."""
        shapes = []
        for l, width in enumerate(self.hidden):
            shapes += [(f"dense{l}.w", (self.fan_in(l), width)), (f"dense{l}.b", (width,)),
                       (f"bn{l}.w", (width,)), (f"bn{l}.b", (width,))]
        last = self.hidden[-1] if self.hidden else self.input_width
        shapes += [("head.w", (last, self.classes)), ("head.b", (self.classes,))]
        return shapes


def forward_train(arch, params, running, x, masks):
    """Training-mode forward pass. Returns (logits, caches, new running statistics)."""
    caches = []
    new_running = {}
    h = x
    for l in range(arch.blocks):
        z = dense_forward(h, params[f"dense{l}.w"], params[f"dense{l}.b"])
        a = relu_forward(z)
        out, bn_cache, mu, var = batchnorm_forward_train(a, params[f"bn{l}.w"], params[f"bn{l}.b"])
        rm, rv = batchnorm_update_running(running[f"bn{l}.running_mean"], running[f"bn{l}.running_var"], mu, var)
        new_running[f"bn{l}.running_mean"] = rm
        new_running[f"bn{l}.running_var"] = rv
        mask = masks.get(l)
        if mask is not None:
            out = dropout_forward(out, mask)
        caches.append((h, z, bn_cache, mask))
        h = out
    logits = dense_forward(h, params["head.w"], params["head.b"])
    caches.append(h)
    return logits, caches, new_running


def backward(arch, params, caches, dlogits):
    """Backward pass from the logit gradient; returns (gradients by parameter name, dx)."""
    grads = {}
    head_in = caches[-1]
    grads["head.w"], grads["head.b"], d = dense_backward(head_in, params["head.w"], dlogits)
    for l in reversed(range(arch.blocks)):
        h, z, bn_cache, mask = caches[l]
        if mask is not None:
            d = dropout_backward(d, mask)
        grads[f"bn{l}.w"], grads[f"bn{l}.b"], d = batchnorm_backward(d, bn_cache)
        d = relu_backward(z, d)
        grads[f"dense{l}.w"], grads[f"dense{l}.b"], d = dense_backward(h, params[f"dense{l}.w"], d)
    return grads, d


def forward_inference(arch, params, running, x):
    h = x
    for l in range(arch.blocks):
        a = relu_forward(dense_forward(h, params[f"dense{l}.w"], params[f"dense{l}.b"]))
        h = batchnorm_forward_inference(a, params[f"bn{l}.w"], params[f"bn{l}.b"],
                                        running[f"bn{l}.running_mean"], running[f"bn{l}.running_var"])
    return dense_forward(h, params["head.w"], params["head.b"])


def first_adam_step(arch, params, grads, lr, variant):
    """One Adam update (t = 1, zero initial moments) of every parameter."""
    new_params = {}
    for name, _ in arch.param_shapes():
        zero = np.zeros_like(params[name])
        new_params[name], _, _ = adam_update(params[name], grads[name], zero, zero, 1, lr, variant)
    return new_params


def training_step(arch, params, running, x, labels, masks, lr, variants):
    """Everything the Swift side is compared on, for one batch."""
    logits, caches, new_running = forward_train(arch, params, running, x, masks)
    loss, dlogits = softmax_cross_entropy(logits, labels)
    grads, _ = backward(arch, params, caches, dlogits)
    updated = {}
    inference = {}
    for variant in variants:
        updated[variant] = first_adam_step(arch, params, grads, lr, variant)
        inference[variant] = forward_inference(arch, updated[variant], new_running, x)
    return loss, logits, grads, new_running, updated, inference


# ----------------------------------------------------------------------------------------------
# Case files
# ----------------------------------------------------------------------------------------------

DTYPES = {"float32": "<f4", "float64": "<f8", "int32": "<i4"}


class CaseError(Exception):
    pass


def read_tensor(directory, tensors, name, shape, dtype=None):
    if name not in tensors:
        raise CaseError(f"case.json: missing tensor {name!r}")
    spec = tensors[name]
    kind = spec.get("dtype", "float32")
    if kind not in DTYPES:
        raise CaseError(f"tensor {name!r}: unknown dtype {kind!r}")
    if dtype is not None and kind not in dtype:
        raise CaseError(f"tensor {name!r}: dtype {kind!r}, expected one of {dtype}")
    if [int(s) for s in spec.get("shape", [])] != list(shape):
        raise CaseError(f"tensor {name!r}: shape {spec.get('shape')} in case.json, expected {list(shape)}")
    path = os.path.join(directory, spec["file"])
    data = np.fromfile(path, dtype=DTYPES[kind])
    if data.size != int(np.prod(shape)):
        raise CaseError(f"tensor {name!r}: {path} holds {data.size} values, expected {int(np.prod(shape))}")
    data = data.reshape(shape)
    if kind == "int32":
        return data.astype(np.int64)
    if not np.all(np.isfinite(data)):
        raise CaseError(f"tensor {name!r}: non-finite values")
    return data.astype(np.float64)


def run_case(directory):
    with open(os.path.join(directory, "case.json")) as f:
        case = json.load(f)
    try:
        a = case["architecture"]
        arch = Arch(a["input_width"], a["hidden"], a["dropout_after"], a["classes"])
        n = int(case["batch"])
        keep = float(case["keep"])
        lr = float(case["lr"])
        tensors = case["tensors"]
    except (KeyError, TypeError, ValueError) as e:
        raise CaseError(f"case.json: {e!r}")
    variants = case.get("variants", list(VARIANTS))
    for variant in variants:
        if variant not in VARIANTS:
            raise CaseError(f"case.json: unknown Adam variant {variant!r}")

    x = read_tensor(directory, tensors, "x", (n, arch.input_width), dtype=("float32", "float64"))
    labels = read_tensor(directory, tensors, "labels", (n,), dtype=("int32",))
    if labels.min() < 0 or labels.max() >= arch.classes:
        raise CaseError(f"labels outside 0..<{arch.classes}")
    params = {name: read_tensor(directory, tensors, name, shape) for name, shape in arch.param_shapes()}
    running = {}
    masks = {}
    for l, width in enumerate(arch.hidden):
        for stat in ("running_mean", "running_var"):
            running[f"bn{l}.{stat}"] = read_tensor(directory, tensors, f"bn{l}.{stat}", (width,))
        if arch.dropout_after[l]:
            mask = read_tensor(directory, tensors, f"dropout{l}.mask", (n, width))
            # The seed's mask is (u < keep) / keep: every entry is 0 or 1/keep.
            bad = ~((mask == 0) | np.isclose(mask, 1.0 / keep, rtol=1e-6, atol=0))
            if np.any(bad):
                raise CaseError(f"dropout{l}.mask: {int(bad.sum())} entries are neither 0 nor 1/keep = {1 / keep}")
            masks[l] = mask
        elif f"dropout{l}.mask" in tensors:
            raise CaseError(f"dropout{l}.mask given but block {l} has no dropout")

    given = None
    given_names = [name for name in tensors if name.startswith("given_grad.")]
    if given_names:
        given = {name: read_tensor(directory, tensors, f"given_grad.{name}", shape)
                 for name, shape in arch.param_shapes()}
        if len(given_names) != len(given):
            raise CaseError("given_grad: unexpected tensors " +
                            str(sorted(set(given_names) - {f"given_grad.{n}" for n in given})))

    loss, logits, grads, new_running, updated, inference = training_step(
        arch, params, running, x, labels, masks, lr, variants)

    out = {"logits": logits}
    for name, _ in arch.param_shapes():
        out[f"grad.{name}"] = grads[name]
    for name, value in new_running.items():
        out[f"after.{name}"] = value
    for variant in variants:
        for name, _ in arch.param_shapes():
            out[f"{variant}.{name}"] = updated[variant][name]
        out[f"{variant}.logits_inference"] = inference[variant]
        if given is not None:
            stepped = first_adam_step(arch, params, given, lr, variant)
            for name, _ in arch.param_shapes():
                out[f"given.{variant}.{name}"] = stepped[name]
            out[f"given.{variant}.logits_inference"] = forward_inference(arch, stepped, new_running, x)

    manifest = {}
    for name, value in out.items():
        value = np.ascontiguousarray(value, dtype="<f8")
        file = f"ref.{name}.bin"
        value.tofile(os.path.join(directory, file))
        manifest[name] = {"file": file, "dtype": "float64", "shape": list(value.shape)}
    result = {"loss": float(loss), "tensors": manifest}
    tmp = os.path.join(directory, "result.json.tmp")
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, os.path.join(directory, "result.json"))
    print(f"numpy_reference: {directory}: loss {loss:.8f}, {len(out)} tensors written")


# ----------------------------------------------------------------------------------------------
# Self-test
# ----------------------------------------------------------------------------------------------

def rel_err(a, b):
    """max|a - b| / max(max|b|, 1e-6), the measure the Swift test uses too."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-6)) if b.size else 0.0


def random_case(rng, arch, n, keep):
    params = {}
    for name, shape in arch.param_shapes():
        if name.endswith(".w") and name.startswith(("dense", "head")):
            params[name] = rng.standard_normal(shape) * np.sqrt(2.0 / shape[0])
        elif name.startswith("bn") and name.endswith(".w"):
            params[name] = 1.0 + 0.3 * rng.standard_normal(shape)  # not all ones: exercise gamma
        else:
            params[name] = 0.1 * rng.standard_normal(shape)
    running = {}
    for l, width in enumerate(arch.hidden):
        running[f"bn{l}.running_mean"] = 0.1 * rng.standard_normal(width)
        running[f"bn{l}.running_var"] = 1.0 + 0.1 * rng.random(width)
    x = rng.random((n, arch.input_width))
    labels = rng.integers(0, arch.classes, size=n)
    masks = {l: (rng.random((n, w)) < keep) / keep
             for l, w in enumerate(arch.hidden) if arch.dropout_after[l]}
    return params, running, x, labels, masks


def self_test():
    failures = []

    def check(label, err, tol):
        status = "ok" if err <= tol else "FAIL"
        print(f"  {status:4} {label}: {err:.3e} (tolerance {tol:.0e})")
        if err > tol:
            failures.append(label)

    rng = np.random.default_rng(20240501)
    archs = [("model1-like", Arch(6, [5, 4], [True, False], 3)),
             ("model3-like", Arch(5, [6, 4, 3], [True, True, True], 4))]
    h = 1e-6
    for label, arch in archs:
        print(f"finite differences, {label} {[arch.input_width] + arch.hidden + [arch.classes]}:")
        n = 7
        params, running, x, labels, masks = random_case(rng, arch, n, keep=0.6)

        def loss_of(p, xin=x):
            logits, _, _ = forward_train(arch, p, running, xin, masks)
            return softmax_cross_entropy(logits, labels)[0]

        logits, caches, _ = forward_train(arch, params, running, x, masks)
        _, dlogits = softmax_cross_entropy(logits, labels)
        grads, dx = backward(arch, params, caches, dlogits)
        for name, _ in arch.param_shapes():
            numeric = np.zeros_like(params[name])
            for idx in np.ndindex(params[name].shape):
                plus = {k: v.copy() for k, v in params.items()}
                minus = {k: v.copy() for k, v in params.items()}
                plus[name][idx] += h
                minus[name][idx] -= h
                numeric[idx] = (loss_of(plus) - loss_of(minus)) / (2 * h)
            check(f"d loss / d {name}", rel_err(grads[name], numeric), 1e-6)
        numeric = np.zeros_like(x)
        for idx in np.ndindex(x.shape):
            xp, xm = x.copy(), x.copy()
            xp[idx] += h
            xm[idx] -= h
            numeric[idx] = (loss_of(params, xp) - loss_of(params, xm)) / (2 * h)
        check("d loss / d x", rel_err(dx, numeric), 1e-6)

    print("consistency checks:")
    # The seed's dvar/dmu chain equals the simplified closed form the Swift code uses.
    a = rng.random((9, 5)) * 3
    gamma = 1 + rng.standard_normal(5) * 0.2
    dout = rng.standard_normal((9, 5))
    _, cache, _, _ = batchnorm_forward_train(a, gamma, np.zeros(5))
    _, _, dx = batchnorm_backward(dout, cache)
    xhat, ivar = cache[0], cache[2]
    closed = gamma * ivar * (dout - dout.mean(0) - xhat * (dout * xhat).mean(0))
    check("BatchNorm backward: seed chain vs closed form", rel_err(dx, closed), 1e-12)
    # Exact log-sum-exp loss: equals -log softmax for moderate logits, stays finite for huge ones.
    z = rng.standard_normal((4, 6)) * 3
    y = rng.integers(0, 6, size=4)
    naive = -np.mean(np.log(softmax(z)[np.arange(4), y]))
    check("loss vs -log softmax", abs(softmax_cross_entropy(z, y)[0] - naive) / naive, 1e-12)
    big_loss, big_grad = softmax_cross_entropy(np.array([[1e4, -1e4, 0.0]]), np.array([1]))
    check("loss of logits +-1e4 is 2e4", abs(big_loss - 2e4) / 2e4, 1e-12)
    check("gradient rows sum to 0", float(np.max(np.abs(big_grad.sum(1)))), 1e-12)
    # Inference with running stats equal to the batch stats and no dropout = training forward.
    arch = Arch(4, [5, 3], [False, False], 3)
    params, _, x, _, _ = random_case(rng, arch, 8, keep=1.0)
    train_logits, caches, _ = forward_train(arch, params, {f"bn{l}.running_{s}": np.zeros(w) + (s == "var")
                                                            for l, w in enumerate(arch.hidden)
                                                            for s in ("mean", "var")}, x, {})
    stats = {}
    hcur = x
    for l in range(arch.blocks):
        a = relu_forward(dense_forward(hcur, params[f"dense{l}.w"], params[f"dense{l}.b"]))
        stats[f"bn{l}.running_mean"], stats[f"bn{l}.running_var"] = a.mean(0), a.var(0)
        hcur = batchnorm_forward_inference(a, params[f"bn{l}.w"], params[f"bn{l}.b"],
                                           a.mean(0), a.var(0))
    check("inference with batch stats = training forward",
          rel_err(forward_inference(arch, params, stats, x), train_logits), 1e-12)
    # Running statistics: r <- 0.9 r + 0.1 batch statistic.
    rm, rv = batchnorm_update_running(np.array([1.0]), np.array([2.0]), np.array([3.0]), np.array([4.0]))
    check("running update", abs(rm[0] - 1.2) + abs(rv[0] - 2.2), 1e-15)
    # Adam, first step from zero moments.
    g = np.array([0.3, -2e-3, 0.0, 5e-9])
    p = np.zeros(4)
    lr = 0.01
    std, _, _ = adam_update(p, g, 0 * g, 0 * g, 1, lr, "adam")
    seed, _, _ = adam_update(p, g, 0 * g, 0 * g, 1, lr, "adam-seed")
    check("adam step 1 = -lr g / (|g| + eps)", rel_err(std, -lr * g / (np.abs(g) + ADAM_EPSILON)), 1e-12)
    expected = -lr * 0.1 * g / (np.sqrt(0.001) * np.abs(g) + ADAM_EPSILON)
    check("adam-seed step 1 = -lr 0.1 g / (sqrt(0.001)|g| + eps)", rel_err(seed, expected), 1e-12)
    # Second step of the bias-corrected variant with a constant gradient is again -lr sign(g).
    p1, m1, v1 = adam_update(np.zeros(1), np.array([0.5]), np.zeros(1), np.zeros(1), 1, lr, "adam")
    p2, _, _ = adam_update(p1, np.array([0.5]), m1, v1, 2, lr, "adam")
    check("adam step 2, constant gradient", abs((p2[0] - p1[0]) + lr) / lr, 1e-6)

    if failures:
        print(f"self-test FAILED: {', '.join(failures)}")
        return 1
    print("self-test passed")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--case", metavar="DIR", help="read DIR/case.json and write DIR/result.json")
    group.add_argument("--self-test", action="store_true", help="check this file's backward pass")
    args = parser.parse_args(argv)
    if args.self_test:
        return self_test()
    try:
        run_case(args.case)
    except (CaseError, OSError, json.JSONDecodeError) as e:
        print(f"numpy_reference: {args.case}: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
