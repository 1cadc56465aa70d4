#!/usr/bin/env python3
"""Train dist-trainer and scikit-learn's MLPClassifier on the same split of a real data set that
scikit-learn ships, and print both test accuracies.

    python3 scripts/compare_sklearn.py digits --bin .build/release/dist-trainer --np 2 --dir runs/digits
    python3 scripts/compare_sklearn.py breast_cancer --bin .build/release/dist-trainer --np 2 --dir runs/cancer

Data sets:
  digits         8x8 images of handwritten digits, 10 classes, 1797 samples: written as a .npz of
                 uint8 images (the 0-16 intensities scaled to 0-255), the way Keras ships MNIST.
  breast_cancer  30 real-valued features, 2 classes ("malignant", "benign"), 569 samples: written as
                 two CSV files with a header and a string label column.
Both are split 75/25 into train and test with a fixed seed (stratified); dist-trainer holds out 20 %
of the training part for validation and keeps the best epoch by validation macro-F1, as it always
does. MLPClassifier gets the same hidden layers (128, 64), Adam with the same learning rate, batch
size and epochs, on features scaled the same way (pixels / 255; standardised columns), and its own
early stopping on the same 20 % validation fraction. One JSON line of results goes to --dir/comparison.json.

Needs numpy and scikit-learn (`python3 -m pip install numpy scikit-learn`) and the dist-trainer binary.
"""

import argparse
import csv
import json
import os
import re
import subprocess
import sys

import numpy as np

RECIPES = {
    # name: (dist-trainer flags, MLPClassifier settings)
    "digits": (["--model", "1", "--lr", "0.005", "--epochs", "40", "--batch-size", "64"],
               dict(learning_rate_init=0.005, max_iter=40, batch_size=64)),
    "breast_cancer": (["--model", "1", "--lr", "0.002", "--epochs", "40", "--batch-size", "32"],
                      dict(learning_rate_init=0.002, max_iter=40, batch_size=32)),
}


def write_data(name, out):
    """Writes the data set's files into `out`; returns (dist-trainer --data flags, x_train, y_train,
    x_test, y_test) with x already scaled as dist-trainer scales it (for MLPClassifier)."""
    from sklearn.datasets import load_breast_cancer, load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    if name == "digits":
        d = load_digits()
        x = np.rint(d.images * (255 / 16)).astype(np.uint8)
        xtr, xte, ytr, yte = train_test_split(x, d.target, test_size=0.25, random_state=0, stratify=d.target)
        path = os.path.join(out, "digits.npz")
        np.savez(path, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
        flatten = lambda a: a.reshape(len(a), -1).astype(np.float32) / np.float32(255)
        return ["--data", path], flatten(xtr), ytr, flatten(xte), yte
    d = load_breast_cancer()
    labels = np.where(d.target == 0, "malignant", "benign")
    xtr, xte, ytr, yte = train_test_split(d.data, labels, test_size=0.25, random_state=0, stratify=labels)
    columns = [re.sub(r"\W+", "_", c) for c in d.feature_names]
    paths = []
    for part, x, y in (("train", xtr, ytr), ("test", xte, yte)):
        path = os.path.join(out, f"breast_cancer_{part}.csv")
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(columns + ["label"])
            for row, label in zip(x, y):
                w.writerow([repr(float(v)) for v in row] + [label])
        paths.append(path)
    scaler = StandardScaler().fit(xtr)
    return ["--data", paths[0], "--test-data", paths[1]], scaler.transform(xtr), ytr, scaler.transform(xte), yte


def main(argv=None):
    parser = argparse.ArgumentParser(description="dist-trainer against scikit-learn's MLPClassifier on a real data set.")
    parser.add_argument("dataset", choices=sorted(RECIPES))
    parser.add_argument("--bin", required=True, help="the dist-trainer binary")
    parser.add_argument("--np", type=int, default=2, help="mpirun ranks (1: a single process)")
    parser.add_argument("--dir", required=True, help="where the data files and the run go")
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args(argv)
    from sklearn.metrics import accuracy_score
    from sklearn.neural_network import MLPClassifier

    os.makedirs(args.dir, exist_ok=True)
    data_flags, xtr, ytr, xte, yte = write_data(args.dataset, args.dir)
    flags, mlp_settings = RECIPES[args.dataset]
    run = os.path.join(args.dir, "run")
    command = [args.bin, "train", *data_flags, *flags, "--seed", str(args.seed), "--run-dir", run, "--overwrite", "--threads", "1"]
    if args.np > 1:
        command = ["mpirun", "--oversubscribe", "-np", str(args.np), *command]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        print(f"compare_sklearn.py: dist-trainer failed ({result.returncode}): {result.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return 1
    ours = json.load(open(os.path.join(run, "summary.json")))["test"]["accuracy"]
    mlp = MLPClassifier(hidden_layer_sizes=(128, 64), solver="adam", early_stopping=True, validation_fraction=0.2,
                        n_iter_no_change=40, random_state=args.seed, **mlp_settings)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "maximum iterations reached": the same epochs as ours, on purpose
        mlp.fit(xtr, ytr)
    theirs = accuracy_score(yte, mlp.predict(xte))
    line = {"dataset": args.dataset, "ranks": args.np, "test_samples": int(len(yte)), "dist_trainer_test_accuracy": ours,
            "mlpclassifier_test_accuracy": float(theirs), "dist_trainer_flags": flags,
            "mlpclassifier": {"hidden_layer_sizes": [128, 64], "solver": "adam", "early_stopping": True, **mlp_settings}}
    with open(os.path.join(args.dir, "comparison.json"), "w") as f:
        json.dump(line, f)
    print(f"{args.dataset}: dist-trainer (mpirun -np {args.np}) test accuracy {ours:.4f}, "
          f"scikit-learn MLPClassifier {theirs:.4f} ({len(yte)} test samples)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
