#!/usr/bin/python3
"""Draws the plots of `switchyard study` from the summary it writes (src/train/study.h).

Usage: /usr/bin/python3 tools/plot_study.py SUMMARY.json OUT_DIR

Per variant V (e8k2, e32k8) it writes, into OUT_DIR:
  val_loss_V.png   validation loss vs tokens, every router of the variant and the dense baseline
  maxvio_V.png     training MaxVio (mean over MoE layers) vs tokens, log scale
  load_V.png       final load per expert per layer (one heatmap panel per router, tokens as a
                   fraction of the layer's total so every panel shares one colour scale)
  remoe_V.png      ReMoE's sparsity (with its target 1 - K/E) and L1 coefficient lambda
and prints the name of each PNG it wrote, one per line (the study links exactly those). Every
file is written to a temporary name and renamed into place (atomic). Needs matplotlib (Debian
python3-matplotlib)."""
import json
import math
import os
import sys
import tempfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

DENSE = "dense_ffn"


def save(fig, out_dir, name):
    fd, tmp = tempfile.mkstemp(prefix="." + name + ".", suffix=".png", dir=out_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format="png", dpi=110, bbox_inches="tight")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, os.path.join(out_dir, name))
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    finally:
        plt.close(fig)
    print(name)


def finite(points):
    return [(p[1], p[2]) for p in points if p[2] is not None and math.isfinite(p[2])]


def label(run):
    name = run["router"]
    if not run.get("causal", True):
        name += " (non-causal)"
    if not run.get("stable", True):
        name += " (unstable)"
    return name


def line_plot(runs, key, title, ylabel, out_dir, name, log_y=False):
    fig, ax = plt.subplots(figsize=(8, 5))
    drawn = 0
    for i, run in enumerate(runs):
        pts = finite(run.get(key, []))
        if log_y:
            pts = [(x, y) for x, y in pts if y > 0]
        if not pts:
            continue
        xs, ys = zip(*pts)
        style = "--" if run["router"] == DENSE else "-"
        ax.plot([x / 1e6 for x in xs], ys, style, label=label(run),
                color=plt.cm.tab20(i % 20), marker="o" if len(xs) < 30 else None, markersize=3)
        drawn += 1
    if drawn == 0:
        plt.close(fig)
        return
    ax.set_xlabel("tokens (millions)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if log_y:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    save(fig, out_dir, name)


def load_heatmaps(runs, variant, out_dir):
    runs = [r for r in runs if r.get("final_load")]
    if not runs:
        return
    cols = min(4, len(runs))
    rows = (len(runs) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.2 * rows + 0.6), squeeze=False)
    image = None
    vmax = 0.0
    tables = []
    for run in runs:
        table = []
        for layer in run["final_load"]:
            total = float(sum(layer)) or 1.0
            table.append([c / total for c in layer])
        tables.append(table)
        vmax = max(vmax, max(max(row) for row in table))
    for idx, ax in enumerate(axes.flat):
        if idx >= len(runs):
            ax.axis("off")
            continue
        image = ax.imshow(tables[idx], aspect="auto", cmap="viridis", vmin=0.0, vmax=vmax,
                          interpolation="nearest")
        ax.set_title(label(runs[idx]), fontsize=8)
        ax.set_xlabel("expert", fontsize=7)
        ax.set_ylabel("layer", fontsize=7)
        ax.set_yticks(range(len(tables[idx])))
        experts = len(tables[idx][0]) if tables[idx] else 0
        ax.set_xticks(range(0, experts, 1 if experts <= 16 else 4))
        ax.tick_params(labelsize=6)
    fig.suptitle(f"{variant['name']}: final load per expert (share of the layer's slots)")
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8)
    save(fig, out_dir, f"load_{variant['name']}.png")


def remoe_plot(runs, variant, out_dir):
    run = next((r for r in runs if r["router"] == "remoe"), None)
    if run is None:
        return
    sparsity = finite(run.get("sparsity_curve", []))
    lam = [(x, y) for x, y in finite(run.get("lambda_curve", [])) if y > 0]
    if not sparsity and not lam:
        return
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    if sparsity:
        xs, ys = zip(*sparsity)
        a.plot([x / 1e6 for x in xs], ys, label="sparsity")
        target = 1.0 - variant["top_k"] / variant["experts"]
        a.axhline(target, color="gray", linestyle="--", label=f"target 1 - K/E = {target:.3f}")
        a.set_xlabel("tokens (millions)")
        a.set_ylabel("sparsity 1 - active/E")
        a.set_title("ReMoE sparsity (mean over layers)")
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    if lam:
        xs, ys = zip(*lam)
        b.plot([x / 1e6 for x in xs], ys, color="tab:red")
        b.set_yscale("log")
        b.set_xlabel("tokens (millions)")
        b.set_ylabel("lambda")
        b.set_title("ReMoE L1 coefficient (mean over layers)")
        b.grid(alpha=0.3)
    fig.suptitle(f"{variant['name']}: ReMoE")
    save(fig, out_dir, f"remoe_{variant['name']}.png")


def main():
    if len(sys.argv) != 3:
        print("usage: plot_study.py SUMMARY.json OUT_DIR", file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        summary = json.load(f)
    out_dir = sys.argv[2]
    dense = [r for r in summary["runs"] if r["router"] == DENSE]
    for variant in summary["variants"]:
        v = variant["name"]
        runs = [r for r in summary["runs"] if r["variant"] == v]
        title = f"{v}: {variant['experts']} experts top-{variant['top_k']}"
        line_plot(runs + dense, "val_curve", f"{title}: validation loss", "validation loss",
                  out_dir, f"val_loss_{v}.png")
        line_plot(runs, "max_vio_curve", f"{title}: MaxVio during training",
                  "MaxVio (mean over layers)", out_dir, f"maxvio_{v}.png", log_y=True)
        load_heatmaps(runs, variant, out_dir)
        remoe_plot(runs, variant, out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
