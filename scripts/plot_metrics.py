#!/usr/bin/env python3
"""Plot a dist-trainer run directory or sweep directory as PNG files.

    python3 scripts/plot_metrics.py DIR [--out OUTDIR]

DIR is either a run directory (from `dist-trainer train --run-dir DIR`: it holds metrics.jsonl) or
a sweep directory (from scripts/sweep.sh: one run directory per grid point, each holding
metrics.jsonl, plus the sweep's summary.json). Written into OUTDIR (default DIR/plots):

  train_loss.png, train_accuracy.png, val_loss.png, val_accuracy.png, val_macro_f1.png
      the metric against epoch, one line per learning rate (as the notebook's
      plot_combined_graphs); for a sweep one line per run, labelled by the run name (which
      encodes model, batch size and learning rate), and per learning rate within a run that
      trained several.
  confusion_test.png, confusion_val.png
      heatmaps of summary.json's test and validation confusion matrices (rows: true class,
      columns: predicted), with the counts written in the cells. For a sweep, the test matrix is
      the sweep summary's (the global best model on the test set) and the validation matrix is
      the best run's. A run still in progress (no summary.json yet) gets the metric plots only.

Prints one line per file written. Exits 1 with one line on stderr when DIR holds no metrics or a
file is malformed.
"""
import argparse
import json
import math
import os
import sys

PROG = "plot_metrics.py"

METRICS = [
    # (key, axis label, title wording)
    ("train_loss", "Training loss", "Training loss"),
    ("train_accuracy", "Training accuracy", "Training accuracy"),
    ("val_loss", "Validation loss", "Validation loss"),
    ("val_accuracy", "Validation accuracy", "Validation accuracy"),
    ("val_macro_f1", "Validation macro-F1", "Validation macro-F1"),
]

CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


class PlotError(Exception):
    """A problem with the input, reported as one line on stderr (exit 1)."""


# MARK: - Reading

def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def read_metrics(path):
    """The records of a metrics.jsonl file, validated: each line a JSON object with a numeric
    epoch and numeric (or null) metric values. Blank lines are ignored."""
    records = []
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
    except (OSError, UnicodeDecodeError) as e:
        raise PlotError(f"{path}: cannot read ({e.strerror if isinstance(e, OSError) else e})")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise PlotError(f"{path}:{number}: malformed metrics line (not valid JSON: {e.msg})")
        if not isinstance(record, dict):
            raise PlotError(f"{path}:{number}: malformed metrics line (expected a JSON object)")
        if not is_number(record.get("epoch")):
            raise PlotError(f"{path}:{number}: malformed metrics line (no numeric 'epoch')")
        if "lr" in record and not is_number(record["lr"]):
            raise PlotError(f"{path}:{number}: malformed metrics line ('lr' is not a number)")
        for key, _, _ in METRICS:
            value = record.get(key)
            if value is not None and not is_number(value):
                raise PlotError(f"{path}:{number}: malformed metrics line ('{key}' is not a number)")
        records.append(record)
    return records


def read_json_object(path):
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except OSError as e:
        raise PlotError(f"{path}: cannot read ({e.strerror})")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PlotError(f"{path}: malformed JSON ({e})")
    if not isinstance(value, dict):
        raise PlotError(f"{path}: malformed (expected a JSON object)")
    return value


def confusion_matrix(summary, key, path):
    """summary[key]['confusion_matrix'] as a square list of integer rows, or None if absent."""
    section = summary.get(key)
    if not isinstance(section, dict) or "confusion_matrix" not in section:
        return None
    matrix = section["confusion_matrix"]
    ok = (isinstance(matrix, list) and matrix
          and all(isinstance(row, list) and len(row) == len(matrix) for row in matrix)
          and all(is_number(v) for row in matrix for v in row))
    if not ok:
        raise PlotError(f"{path}: malformed {key}.confusion_matrix (expected a square matrix of counts)")
    return [[int(v) for v in row] for row in matrix]


def lr_text(lr):
    return f"{lr:g}"


def series_of(records, prefix):
    """Split one run's records into one series per learning rate: a list of
    (label, [records sorted by epoch]). `prefix` (the run name in a sweep) leads each label."""
    groups = {}
    for record in records:
        key = (record.get("lr_index", 0) if is_number(record.get("lr_index")) else 0, record.get("lr"))
        groups.setdefault(key, {})[record["epoch"]] = record  # a repeated epoch: the later line wins
    keys = sorted(groups, key=lambda k: (k[0], k[1] if k[1] is not None else 0))
    result = []
    for key in keys:
        lr = key[1]
        rows = [groups[key][e] for e in sorted(groups[key])]
        if prefix is None:
            label = f"lr={lr_text(lr)}" if lr is not None else "run"
        elif len(keys) > 1 and lr is not None:
            label = f"{prefix} (lr={lr_text(lr)})"
        else:
            label = prefix
        result.append((label, rows))
    return result


def load(directory):
    """(kind, series, confusion plots) for a run or sweep directory; kind is 'run' or 'sweep'.
    confusion plots: list of (file stem, title, matrix)."""
    if not os.path.isdir(directory):
        raise PlotError(f"{directory}: no such directory (expected a run directory with metrics.jsonl, "
                        "or a sweep directory of run directories)")
    name = os.path.basename(os.path.normpath(os.path.abspath(directory)))
    confusions = []
    own = os.path.join(directory, "metrics.jsonl")
    if os.path.isfile(own):
        records = read_metrics(own)
        if not records:
            raise PlotError(f"{own}: no epochs recorded yet (the file is empty)")
        series = series_of(records, None)
        summary_path = os.path.join(directory, "summary.json")
        if os.path.isfile(summary_path):
            summary = read_json_object(summary_path)
            for key, stem, what in (("test", "confusion_test", "Test"), ("validation", "confusion_val", "Validation")):
                matrix = confusion_matrix(summary, key, summary_path)
                if matrix is not None:
                    confusions.append((stem, f"{what} confusion matrix — {name}", matrix, accuracy(summary, key)))
        return "run", series, confusions

    runs = sorted(entry for entry in os.listdir(directory)
                  if os.path.isfile(os.path.join(directory, entry, "metrics.jsonl")))
    if not runs:
        raise PlotError(f"{directory}: no metrics.jsonl found (expected a run directory containing metrics.jsonl, "
                        "or a sweep directory whose run subdirectories contain one)")
    series = []
    for run in runs:
        records = read_metrics(os.path.join(directory, run, "metrics.jsonl"))
        series.extend(series_of(records, run))  # a run that has not finished an epoch adds no line
    if not series:
        raise PlotError(f"{directory}: no epochs recorded yet in any run's metrics.jsonl")
    summary_path = os.path.join(directory, "summary.json")
    if os.path.isfile(summary_path):
        summary = read_json_object(summary_path)
        best = summary.get("best_run") if isinstance(summary.get("best_run"), str) else None
        suffix = f"{name}, best run {best}" if best else name
        matrix = confusion_matrix(summary, "test", summary_path)
        if matrix is not None:
            confusions.append(("confusion_test", f"Test confusion matrix — {suffix}", matrix, accuracy(summary, "test")))
        matrix = confusion_matrix(summary, "validation", summary_path)
        if matrix is not None:
            confusions.append(("confusion_val", f"Validation confusion matrix — {suffix}", matrix,
                               accuracy(summary, "validation")))
        elif best:
            best_summary_path = os.path.join(directory, best, "summary.json")
            if os.path.isfile(best_summary_path):
                best_summary = read_json_object(best_summary_path)
                matrix = confusion_matrix(best_summary, "validation", best_summary_path)
                if matrix is not None:
                    confusions.append(("confusion_val", f"Validation confusion matrix — {suffix}", matrix,
                                       accuracy(best_summary, "validation")))
    return "sweep", series, confusions


def accuracy(summary, key):
    value = summary.get(key, {}).get("accuracy") if isinstance(summary.get(key), dict) else None
    return value if is_number(value) else None


# MARK: - Plotting

def value_of(record, key):
    value = record.get(key)
    return float(value) if is_number(value) else math.nan


def plot_metric(plt, series, key, label, title, kind, path):
    from matplotlib.ticker import MaxNLocator
    fig, ax = plt.subplots(figsize=(10, 6))
    longest = max(len(rows) for _, rows in series)
    marker = "o" if longest <= 30 else None
    drawn = 0
    for name, rows in series:
        xs = [row["epoch"] for row in rows]
        ys = [value_of(row, key) for row in rows]
        if all(math.isnan(y) for y in ys):
            continue
        ax.plot(xs, ys, label=name, marker=marker, markersize=4, linewidth=1.8)
        drawn += 1
    ax.set_xlabel("Epoch")
    ax.set_ylabel(label)
    per = "run" if kind == "sweep" else "learning rate"
    ax.set_title(f"{title} vs epoch, one line per {per}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.4)
    if drawn:
        if drawn > 8:
            ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
        else:
            ax.legend(fontsize="medium", loc="best")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def plot_confusion(plt, matrix, title, acc, path):
    import numpy as np
    counts = np.array(matrix, dtype=np.int64)
    n = counts.shape[0]
    names = CLASS_NAMES if n == len(CLASS_NAMES) else [f"class {i}" for i in range(n)]
    size = max(6.0, 0.8 * n + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(counts, cmap="Blues", interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="count")
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xticklabels(names, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticklabels(names)
    ax.set_xlabel("Predicted class")
    ax.set_ylabel("True class")
    if acc is not None:
        title += f"\naccuracy {acc:.4f}, {int(counts.sum())} samples"
    ax.set_title(title)
    threshold = counts.max() / 2.0 if counts.size else 0
    fontsize = 9 if n <= 10 else 7
    for i in range(n):
        for j in range(n):
            value = counts[i, j]
            ax.text(j, i, str(value), ha="center", va="center", fontsize=fontsize,
                    color="white" if value > threshold else "black")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Plot a dist-trainer run or sweep directory: one PNG per metric (train_loss, "
                    "train_accuracy, val_loss, val_accuracy, val_macro_f1) against epoch with one line "
                    "per learning rate (per run for a sweep), and confusion-matrix heatmaps "
                    "(confusion_test.png, confusion_val.png) from summary.json.",
        epilog="A run directory holds metrics.jsonl; a sweep directory (scripts/sweep.sh) holds one run "
               "directory per grid point and the sweep's summary.json. A run still in progress (no "
               "summary.json yet) gets the metric plots only.")
    parser.add_argument("directory", metavar="DIR", help="a run directory or a sweep directory")
    parser.add_argument("--out", metavar="OUTDIR", help="where the PNG files go (default: DIR/plots)")
    args = parser.parse_args(argv)

    try:
        kind, series, confusions = load(args.directory)
        out = args.out or os.path.join(args.directory, "plots")
        try:
            os.makedirs(out, exist_ok=True)
        except OSError as e:
            raise PlotError(f"{out}: cannot create the output directory ({e.strerror})")
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise PlotError("matplotlib is not installed (python3 -m pip install matplotlib)")
        for key, label, title in METRICS:
            path = os.path.join(out, key + ".png")
            plot_metric(plt, series, key, label, title, kind, path)
            print(f"wrote {path}", flush=True)
        for stem, title, matrix, acc in confusions:
            path = os.path.join(out, stem + ".png")
            plot_confusion(plt, matrix, title, acc, path)
            print(f"wrote {path}", flush=True)
    except PlotError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"{PROG}: {e.filename or args.directory}: {e.strerror}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
