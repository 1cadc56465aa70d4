#!/usr/bin/env python3
"""bench_numpy.py: seconds per epoch of the seed notebook's math in NumPy, on this machine.

A baseline for scripts/bench.sh measured in the same run: one epoch of Model 2 (375 steps of 128)
with the seed's arithmetic — float64 parameters, the seed's BatchNorm backward, inverted dropout,
Adam — using the independent NumPy implementation in numpy_reference.py (not the notebook's code).
NumPy uses its own BLAS with its default threads, as the notebook did. Data values do not affect
the speed, so the batches are random. Prints one line: "numpy-seed s/epoch <seconds>".
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy_reference as ref  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50, help="steps per timing (scaled to 375 per epoch)")
    parser.add_argument("--repeats", type=int, default=3, help="timings; the median is printed")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    arch = ref.Arch(784, [512, 128, 64], [True, True, False], 10)
    params = {}
    for name, shape in arch.param_shapes():
        if name.endswith(".w") and name.startswith(("dense", "head")):
            params[name] = rng.standard_normal(shape) * np.sqrt(2.0 / shape[0])
        elif name.startswith("bn") and name.endswith(".w"):
            params[name] = np.ones(shape)
        else:
            params[name] = np.zeros(shape)
    running = {}
    for l, w in enumerate(arch.hidden):
        running[f"bn{l}.running_mean"] = np.zeros(w)
        running[f"bn{l}.running_var"] = np.ones(w)
    moments = {n: (np.zeros_like(p), np.zeros_like(p)) for n, p in params.items()}
    batch = 128

    def step(t):
        x = rng.random((batch, 784), dtype=np.float32)  # the seed's inputs are float32
        labels = rng.integers(0, 10, batch)
        masks = {l: (rng.random((batch, w)) < 0.5) / 0.5 for l, w in enumerate(arch.hidden) if arch.dropout_after[l]}
        logits, caches, new_running = ref.forward_train(arch, params, running, x, masks)
        running.update(new_running)
        _, dlogits = ref.softmax_cross_entropy(logits, labels)
        grads, _ = ref.backward(arch, params, caches, dlogits)
        for name in params:
            m, v = moments[name]
            params[name], m, v = ref.adam_update(params[name], grads[name], m, v, t, 0.005, "adam-seed")
            moments[name] = (m, v)

    for t in range(1, 6):
        step(t)
    timings = []
    t = 6
    for _ in range(args.repeats):
        start = time.perf_counter()
        for _ in range(args.steps):
            step(t)
            t += 1
        timings.append((time.perf_counter() - start) / args.steps * 375)
    print(f"numpy-seed s/epoch {sorted(timings)[len(timings) // 2]:.3f}")


if __name__ == "__main__":
    main()
