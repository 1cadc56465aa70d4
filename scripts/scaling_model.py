#!/usr/bin/env python3
"""scaling_model.py: a model of dist-trainer's step time on N nodes, from measured compute and a
measured latency-bandwidth (alpha-beta) network cost; validated against the emulated 2- and 3-host
runs of scripts/bench_hosts.sh, then extrapolated to clusters of 1-256 nodes at 10, 25 and 100
Gbit/s.

  scripts/scaling_model.py BENCH_HOSTS_JSON [--plot docs/scaling.png] [--markdown]

The model (one rank per node, Model 2: P = 477 898 parameters, a global batch B split into shards
of r = B / N rows):

  step(N) = C(r) + RS(N) + AG(N) + k * S(N)                     exact float32 (the default)
  step(N) = C(r) + 2 (N-1) (alpha + 2P / (N beta)) + k * S(N)   --grad-compression bf16|fp16

  C(r)    compute of one rank's step outside collectives (products, BatchNorm, Adam on its 1/N of
          the parameters), linear in the shard, C(r) = c0 + c1 r, fitted to one-node runs
  RS, AG  the ring reduce-scatter of the weight gradients and the allgather of the parameters:
          (N-1) (alpha + 4P / (N beta)) each
  S(N)    one latency-bound allreduce of a few KB (BatchNorm statistics, the Double sums): the
          measured small-allreduce time, or ceil(log2 N) alpha' beyond the measured sizes
  k       7 per step with SyncBatchNorm (3 forward, 3 backward, 1 for the Double sums), 1 with
          --bn local

and, as the bound of what hiding communication behind compute could give ("with overlap"), the
gradient traffic overlapped with the backward pass (2/3 of C) except the first layer's gradient,
84 % of all gradients, which is produced last:

  step_overlap(N) = C + k S + AG + max(0.84 RS, RS - (2/3) C)

alpha and beta are the latency and bandwidth `dist-trainer check --network` measures between
ranks; for the extrapolation, 20 us TCP latency at 10 and 25 Gbit/s and 5 us (RDMA-class) at 100
Gbit/s, and 90 % of the line rate. Not modelled: contention between several ranks of a node,
congestion in the fabric, stragglers.
"""
import argparse
import json
import math
import sys

P = 477_898          # Model 2's parameters
SAMPLES = 48_000     # training split
SMALL_ALLREDUCES = {"sync": 7, "local": 1}


def fit_compute(runs):
    """c0, c1 of C(r) = c0 + c1 r from one-node runs with one rank per core (np=1: r=128, np=2: r=64)."""
    points = []
    for name, rows in (("node np=1", 128), ("node np=2", 64)):
        run = runs.get(name)
        if run:
            points.append((rows, run["compute_seconds"] / run["steps"]))
    if len(points) < 2:
        sys.exit("scaling_model.py: need the 'node np=1' and 'node np=2' runs of bench_hosts.sh")
    (r1, t1), (r2, t2) = points
    c1 = (t1 - t2) / (r1 - r2)
    return t1 - c1 * r1, c1


def step_time(n, compute, alpha, beta, small, k, compression=False, overlap=False):
    """Seconds per step on n nodes; `small` is the time of one small allreduce at n."""
    if n == 1:
        return compute
    if compression:
        return compute + 2 * (n - 1) * (alpha + 2 * P / (n * beta)) + k * small
    rs = ag = (n - 1) * (alpha + 4 * P / (n * beta))
    if overlap:
        return compute + k * small + ag + max(0.84 * rs, rs - 2 / 3 * compute)
    return compute + rs + ag + k * small


def validate(data, c0, c1):
    """Predicted against measured epoch times of the emulated hosts."""
    rows = []
    for name, run in data["runs"].items():
        # Exact mode with one reduction per minibatch only (the model's formula).
        if not run or "hosts" not in name or "bf16" in name or "accumulate" in name:
            continue
        n = int(name.split()[0])
        rate = name.split()[2] if len(name.split()) > 2 else "none"
        net = data["network"].get(f"{n}-{rate}")
        node = data["runs"].get(f"node np={n}")
        if not net or not node:
            continue
        alpha = min(l["latency"] for l in net["links"])
        beta = min(l["bandwidth"] for l in net["links"])
        # The emulated hosts share this machine's cores: their compute is the one-node run's with
        # the same number of ranks (oversubscribed at 3), not the per-core fit.
        compute = node["compute_seconds"] / node["steps"]
        predicted = step_time(n, compute, alpha, beta, net["small_allreduce"], SMALL_ALLREDUCES["sync"]) * run["steps"]
        rows.append((name, run["epoch_seconds"], predicted, predicted / run["epoch_seconds"] - 1))
    return rows


def extrapolate(c0, c1):
    """Epoch seconds for 1..256 nodes at 10/25/100 Gbit/s, strong (B=128) and weak (64 rows per rank)."""
    networks = {"10 Gbit/s": (20e-6, 0.9 * 10e9 / 8), "25 Gbit/s": (20e-6, 0.9 * 25e9 / 8), "100 Gbit/s": (5e-6, 0.9 * 100e9 / 8)}
    nodes = [1, 2, 4, 8, 16, 32, 64, 128, 256]
    table = {}
    for label, (alpha, beta) in networks.items():
        for scaling in ("strong", "weak"):
            for n in nodes:
                rows = 128 / n if scaling == "strong" else 64
                if rows < 1:
                    continue
                batch = rows * n
                steps = SAMPLES // batch
                small = math.ceil(math.log2(n)) * (alpha + 12_000 / beta) if n > 1 else 0
                compute = c0 + c1 * rows
                for mode, kw in (("exact", {}), ("overlap", {"overlap": True}), ("bf16", {"compression": True})):
                    t = step_time(n, compute, alpha, beta, small, SMALL_ALLREDUCES["sync"], **kw)
                    table[(label, scaling, n, mode)] = (t * steps, t, compute)
    return nodes, networks, table


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("bench_hosts_json")
    parser.add_argument("--plot", help="write the 1-256 node plot to this PNG")
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown (for the README)")
    args = parser.parse_args()
    data = json.load(open(args.bench_hosts_json))
    c0, c1 = fit_compute(data["runs"])
    print(f"compute per step: C(r) = {c0 * 1e3:.3f} ms + {c1 * 1e6:.2f} us x rows  (one-node fit)")

    print("\nvalidation on the emulated hosts (measured vs modelled epoch, exact float32):")
    print("| configuration | measured s/epoch | model s/epoch | error |\n| --- | --- | --- | --- |")
    for name, measured, predicted, error in validate(data, c0, c1):
        print(f"| {name} | {measured:.3f} | {predicted:.3f} | {100 * error:+.0f} % |")

    nodes, networks, table = extrapolate(c0, c1)
    for scaling, title in (("strong", "strong scaling, global batch 128 (one epoch of 48 000 samples)"),
                           ("weak", "weak scaling, 64 rows per rank (global batch 64 N)")):
        print(f"\n{title}: seconds per epoch, exact / with ideal overlap / bf16 gradients")
        header = "| nodes | " + " | ".join(networks) + " |"
        print(header + "\n|" + " --- |" * (len(networks) + 1))
        for n in nodes:
            cells = []
            for label in networks:
                if (label, scaling, n, "exact") not in table:
                    cells.append("—")
                    continue
                e, o, b = (table[(label, scaling, n, m)][0] for m in ("exact", "overlap", "bf16"))
                cells.append(f"{e:.2f} / {o:.2f} / {b:.2f}")
            print(f"| {n} | " + " | ".join(cells) + " |")
    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
        for ax, scaling in zip(axes, ("strong", "weak")):
            for label, color in zip(networks, ("tab:red", "tab:orange", "tab:green")):
                xs = [n for n in nodes if (label, scaling, n, "exact") in table]
                for mode, style in (("exact", "-"), ("bf16", ":")):
                    epoch = [table[(label, scaling, n, mode)][0] for n in xs]
                    base = table[(label, scaling, 1, "exact")][0]
                    # Throughput relative to one node: samples per second at N nodes over one node's.
                    ax.plot(xs, [base / e for e in epoch], style, color=color, marker="o", ms=3,
                            label=f"{label}{' bf16 gradients' if mode == 'bf16' else ''}")
            ax.plot(nodes, nodes, color="gray", lw=0.8, ls="--", label="linear")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log", base=2)
            ax.set_xlabel("nodes (one rank each)")
            ax.set_ylabel("throughput / one node")
            ax.set_title("strong scaling, global batch 128" if scaling == "strong" else "weak scaling, 64 rows per rank")
            ax.grid(True, which="both", alpha=0.3)
        axes[1].legend(fontsize=7)
        fig.suptitle("dist-trainer Model 2: modelled throughput (compute measured here, alpha-beta network)")
        fig.tight_layout()
        fig.savefig(args.plot, dpi=110)
        print(f"\nwrote {args.plot}")


if __name__ == "__main__":
    main()
