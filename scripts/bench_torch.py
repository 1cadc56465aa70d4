#!/usr/bin/env python3
"""bench_torch.py: the seed's Model 2 recipe in PyTorch on this machine's CPU, as the baseline that
dist-trainer's speed is compared with in the same run (scripts/bench.sh).

The same network (Linear -> ReLU -> BatchNorm1d -> Dropout blocks, 784-512-128-64-10, dropout 0.5
after blocks 1 and 2), softmax cross-entropy, Adam (lr 0.001), global batch 128, the last partial
batch dropped, on the real Fashion-MNIST training split (48 000 images), in float32. Two modes:

  bench_torch.py --threads 2           one process, torch.set_num_threads(2)
  bench_torch.py --ddp 2               DistributedDataParallel over gloo, 2 processes of 1 thread,
                                       64 samples each per step (SyncBatchNorm off: DDP's default)

Prints one line: "torch <mode> <median seconds per epoch over epochs 2..N> ...". Not a test and not
a reference implementation of the math (scripts/numpy_reference.py is); only a stopwatch.
"""
import argparse
import gzip
import os
import statistics
import sys
import time

import numpy as np


def load_images(directory):
    def read(name):
        for path in (os.path.join(directory, name + ".gz"), os.path.join(directory, name)):
            if os.path.exists(path):
                opener = gzip.open if path.endswith(".gz") else open
                with opener(path, "rb") as f:
                    return f.read()
        sys.exit(f"bench_torch.py: {name} not found in {directory}")
    images = np.frombuffer(read("train-images-idx3-ubyte"), dtype=np.uint8, offset=16).reshape(-1, 784)
    labels = np.frombuffer(read("train-labels-idx1-ubyte"), dtype=np.uint8, offset=8)
    return images[:48000].astype(np.float32) / 255.0, labels[:48000].astype(np.int64)


def model(torch):
    nn = torch.nn
    return nn.Sequential(
        nn.Linear(784, 512), nn.ReLU(), nn.BatchNorm1d(512), nn.Dropout(0.5),
        nn.Linear(512, 128), nn.ReLU(), nn.BatchNorm1d(128), nn.Dropout(0.5),
        nn.Linear(128, 64), nn.ReLU(), nn.BatchNorm1d(64),
        nn.Linear(64, 10))


def epochs(torch, net, x, y, batch, count, rank=0, ranks=1):
    """Trains `count` epochs; returns the seconds of each (training steps only)."""
    optimizer = torch.optim.Adam(net.parameters(), lr=0.001)
    loss_fn = torch.nn.CrossEntropyLoss()
    steps = len(x) // (batch * ranks)
    times = []
    generator = torch.Generator().manual_seed(12)
    for _ in range(count):
        order = torch.randperm(len(x), generator=generator)
        start = time.perf_counter()
        for s in range(steps):
            base = s * batch * ranks + rank * batch
            index = order[base:base + batch]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(net(x[index]), y[index])
            loss.backward()
            optimizer.step()
        times.append(time.perf_counter() - start)
    return times


def ddp_worker(rank, ranks, directory, count, port, queue):
    import torch
    import torch.distributed as dist
    torch.set_num_threads(1)
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=ranks)
    x, y = load_images(directory)
    torch.manual_seed(12)
    net = torch.nn.parallel.DistributedDataParallel(model(torch))
    times = epochs(torch, net, torch.from_numpy(x), torch.from_numpy(y), 128 // ranks, count, rank, ranks)
    if rank == 0:
        queue.put(times)
    dist.destroy_process_group()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--ddp", type=int, default=0, help="processes of a DDP run (0: one process)")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    import torch
    if args.ddp:
        import torch.multiprocessing as mp
        queue = mp.get_context("spawn").SimpleQueue()
        port = 29500 + os.getpid() % 1000
        mp.spawn(ddp_worker, args=(args.ddp, args.data_dir, args.epochs, port, queue), nprocs=args.ddp)
        times, mode = queue.get(), f"ddp={args.ddp}"
    else:
        torch.set_num_threads(args.threads)
        torch.manual_seed(12)
        x, y = load_images(args.data_dir)
        times, mode = epochs(torch, model(torch), torch.from_numpy(x), torch.from_numpy(y), 128, args.epochs), f"threads={args.threads}"
    later = times[1:] or times
    print(f"torch {mode} {statistics.median(later):.3f} s/epoch (median of epochs 2..{len(times)}; torch {torch.__version__})")


if __name__ == "__main__":
    main()
