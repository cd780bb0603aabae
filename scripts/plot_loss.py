#!/usr/bin/env python3
"""Plots the loss curve(s) that `pali3 train` writes (DIR/loss.csv: step,loss,lr,grad_norm,ms,
examples_per_s) as a PNG: the loss per step (and a running mean), the learning rate on a second axis.

  python3 scripts/plot_loss.py run1/loss.csv [run2/loss.csv ...] loss.png [--title TEXT]

Needs matplotlib (Debian: python3-matplotlib), a documentation-only dependency."""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read(path):
    steps, loss, lr = [], [], []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            steps.append(int(row["step"]))
            loss.append(float(row["loss"]))
            lr.append(float(row["lr"]))
    return steps, loss, lr


def running_mean(v, k):
    out, s = [], 0.0
    for i, x in enumerate(v):
        s += x
        if i >= k:
            s -= v[i - k]
        out.append(s / min(i + 1, k))
    return out


def main(argv):
    title = None
    if "--title" in argv:
        i = argv.index("--title")
        title = argv[i + 1]
        argv = argv[:i] + argv[i + 2:]
    if len(argv) < 2:
        sys.exit(__doc__)
    *inputs, out = argv
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax2 = ax.twinx()
    for path in inputs:
        steps, loss, lr = read(path)
        ax.plot(steps, loss, alpha=0.3, linewidth=0.8)
        ax.plot(steps, running_mean(loss, max(1, len(loss) // 50)), label=f"{path} (running mean)")
        ax2.plot(steps, lr, linestyle=":", color="grey")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax2.set_ylabel("learning rate (dotted)")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(title or "pali3 train")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1:])
