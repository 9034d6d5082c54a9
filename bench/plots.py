"""PNG plots for the benchmark report, drawn from the JSON each benchmark wrote.

    python -m bench.plots [--out bench/results/latest]

Each plot is drawn only when its benchmark's results are there.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt

from bench.harness import RESULTS


def _load(out: Path, name: str) -> dict[str, Any] | None:
    path = out / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def throughput(out: Path) -> str | None:
    inf, lam = _load(out, "inference"), _load(out, "lambda")
    if not inf and not lam:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    if inf:
        levels = sorted(inf["levels"], key=int)
        for name in inf["levels"][levels[0]]:
            axes[0].plot(
                [int(c) for c in levels],
                [inf["levels"][c][name]["rps"] for c in levels],
                marker="o",
                label=name,
            )
        axes[0].set(
            title="MiniLM embeddings (Lambda mode)",
            xlabel="concurrency",
            ylabel="requests/s",
            xscale="log",
        )
        axes[0].legend(fontsize=8)
    if lam:
        # Solid: wrk through the Invoke front; dashed: the emulator's own load (--feed).
        for key, style, suffix in (("levels", "-", ""), ("feed", "--", " (feed)")):
            if key not in lam:
                continue
            levels = sorted(lam[key], key=int)
            for n, name in enumerate(lam[key][levels[0]]):
                axes[1].plot(
                    [int(c) for c in levels],
                    [lam[key][c][name]["inv_per_s"] for c in levels],
                    marker="o",
                    linestyle=style,
                    color=f"C{n}",
                    label=name + suffix,
                )
        axes[1].set(
            title="No-op handler (Lambda mode)",
            xlabel="concurrency",
            ylabel="invocations/s",
            xscale="log",
        )
        axes[1].legend(fontsize=8)
    return _save(fig, out, "throughput_vs_concurrency.png")


def overload(out: Path) -> str | None:
    data = _load(out, "overload")
    if not data:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    share_ax = ax.twinx()
    for name, conf in data["configs"].items():
        levels = list(conf["levels"])
        x = [float(level) for level in levels]
        ax.plot(
            x,
            [conf["levels"][lv]["accepted_p99_ms"] for lv in levels],
            marker="o",
            label=f"accepted p99, {name}",
        )
        share_ax.plot(
            x,
            [100 * conf["levels"][lv]["throttled_share"] for lv in levels],
            linestyle="--",
            marker="x",
            label=f"429 share, {name}",
        )
    ax.set(
        title="Overload: p99 and 429s vs offered load",
        xlabel="offered load (x capacity)",
        ylabel="accepted p99 (ms)",
    )
    share_ax.set_ylabel("429 share (%)")
    lines = ax.get_legend_handles_labels()
    more = share_ax.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="upper left")
    return _save(fig, out, "overload.png")


def memory(out: Path) -> str | None:
    inf = _load(out, "inference")
    if not inf:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    levels = sorted(inf["levels"], key=int)
    for name in inf["levels"][levels[0]]:
        ax.plot(
            [int(c) for c in levels],
            [inf["levels"][c][name]["pss_mb"] for c in levels],
            marker="o",
            label=name,
        )
    ax.set(
        title="Total memory (PSS) with MiniLM loaded",
        xlabel="concurrency",
        ylabel="PSS of the runtime's processes (MB)",
        xscale="log",
        yscale="log",
    )
    ax.legend(fontsize=8)
    return _save(fig, out, "memory_vs_concurrency.png")


def batch_sizes(out: Path) -> str | None:
    scen = _load(out, "scenarios")
    if not scen or not scen.get("batch_sizes"):
        return None
    models = scen["batch_sizes"]
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / len(models)
    for i, (model, buckets) in enumerate(models.items()):
        labels = list(buckets)
        ax.bar(
            [j + i * width for j in range(len(labels))], list(buckets.values()), width, label=model
        )
        ax.set_xticks(range(len(labels)), [f"≤{lb}" for lb in labels], rotation=45, fontsize=8)
    ax.set(title="Batch sizes (EmbedUser scenario)", xlabel="items per batch", ylabel="batches")
    ax.legend()
    return _save(fig, out, "batch_sizes.png")


def sprinters(out: Path) -> str | None:
    data = _load(out, "lanes")
    if not data:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    names = list(data["configs"])
    phases = ["alone", "with flood"]
    for i, phase in enumerate(phases):
        ax.bar(
            [j + i * 0.4 for j in range(len(names))],
            [data["configs"][n][phase]["p99_ms"] for n in names],
            0.4,
            label=f"sprinters {phase}",
        )
    ax.set_xticks([j + 0.2 for j in range(len(names))], names)
    ax.set(title="Sprinter p99 with and without a marathon flood", ylabel="p99 (ms)", yscale="log")
    ax.legend()
    return _save(fig, out, "sprinter_p99.png")


def _save(fig: Any, out: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(out / name, dpi=110)
    plt.close(fig)
    return name


def main(argv: list[str] | None = None) -> list[str]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=str(RESULTS))
    out = Path(ap.parse_args(argv).out)
    made = [
        p for p in (f(out) for f in (throughput, overload, memory, batch_sizes, sprinters)) if p
    ]
    print(f"[plots] {', '.join(made) or 'none'}")
    return made


if __name__ == "__main__":
    main()
