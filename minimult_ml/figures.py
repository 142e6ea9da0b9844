"""Figures as PNG files: the paper's pictures (Figures 4–8), the word-order plots and XNLI's
confusion matrices.

Each is drawn on a matplotlib `Figure` without pyplot, so it renders with Agg and touches no
global backend state, and returned after its PNG is written, for callers that inspect what was
drawn. Every axis is labelled; titles sit over the whole figure (colour bar
included) and legends outside the axes, so neither covers data.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import ticker
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.transforms import Bbox

from minimult_ml.files import atomic_write


def save(fig: Figure, path: str | Path) -> None:
    """Write a PNG beside its target, then rename: a crash never leaves half a file behind."""
    with atomic_write(path, binary=True) as f:
        fig.savefig(f, format="png", dpi=120, bbox_inches="tight")


def scatter_plot(tau: dict[str, float], accuracy: dict[str, float], path: str | Path,
                 task: str = "XNLI") -> Figure:
    """Tau against the zero-shot accuracy of a transfer task (the paper's: XNLI), one point per
    language labelled with its code, and the least-squares line over all plotted languages."""
    langs = sorted(tau.keys() & accuracy.keys())
    x = np.array([tau[lang] for lang in langs])
    y = np.array([accuracy[lang] for lang in langs])
    fig = Figure(figsize=(5, 4.4), layout="constrained")
    ax = fig.subplots()
    ax.scatter(x, y)
    ax.margins(0.1)  # room for the labels of the outermost points
    if len(langs) >= 2 and np.ptp(x) > 0:
        slope, intercept = np.polyfit(x, y, 1)
        xs = np.array([x.min(), x.max()])
        label = f"r = {np.corrcoef(x, y)[0, 1]:.2f} (n = {len(langs)})"
        ax.plot(xs, slope * xs + intercept, color="tab:red", label=label)
        fig.legend(loc="outside lower center")  # off the points
    ax.set_xlabel("Kendall's tau distance")
    ax.set_ylabel(f"{task} zero-shot accuracy (%)")
    _label_points(fig, ax, langs, x, y)
    save(fig, path)
    return fig


def _label_points(fig: Figure, ax: Axes, labels: Sequence[str], x: np.ndarray,
                  y: np.ndarray) -> None:
    """Each point's label beside it (one label, comma-joined, for points that coincide), moved
    up a line at a time while it would cover a label already placed: languages tie on accuracy
    when a model is weak (a constant class), and their codes would print on top of each other."""
    points: dict[tuple[float, float], list[str]] = {}
    for label, xi, yi in zip(labels, x, y, strict=True):
        points.setdefault((float(xi), float(yi)), []).append(label)
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    # Keep this layout: the boxes below are where the labels will be drawn, not where a layout
    # made room for the labels would move them.
    fig.set_layout_engine("none")
    placed: list[Bbox] = []
    # Bottom to top, so that a label moved up goes where there is room.
    for (xi, yi), names in sorted(points.items(), key=lambda point: point[0][::-1]):
        label, rise = ", ".join(names), 4.0
        while True:
            probe = ax.annotate(label, (xi, yi), textcoords="offset points", xytext=(4, rise))
            box = probe.get_window_extent(renderer)
            probe.remove()
            if not any(box.overlaps(other) for other in placed):
                break
            rise += box.height * 72 / fig.dpi  # one label's height, in points
        leader = {"arrowstyle": "-", "lw": 0.5, "color": "grey"}  # a moved label names its point
        ax.annotate(label, (xi, yi), textcoords="offset points", xytext=(4, rise),
                    arrowprops=leader if rise > 4.0 else None)
        placed.append(box)


def histogram_plot(scores: Sequence[float], path: str | Path, title: str) -> Figure:
    """Histogram of per-sentence Kendall's tau distances over [0, 1]."""
    fig = Figure(figsize=(5, 3.5), layout="constrained")
    ax = fig.subplots()
    ax.hist(scores, bins=20, range=(0.0, 1.0))
    ax.yaxis.set_major_locator(ticker.MaxNLocator(integer=True))  # counts
    ax.set_xlabel("Kendall's tau distance")
    ax.set_ylabel("sentences")
    ax.set_title(title)
    save(fig, path)
    return fig


def _titled(fig: Figure, title: str) -> None:
    """The title over the whole figure, colour bar included, wrapped so that it never runs
    past the figure's edge."""
    width = int(fig.get_figwidth() * 11)  # characters that fit at the default font size
    fig.suptitle(textwrap.fill(title, width))


def embedding_pca(vectors: torch.Tensor, labels: Sequence[str], path: str | Path,
                  title: str) -> Figure:
    """Figure 4: the first two principal components of token vectors, one colour per language.

    `vectors` holds the languages' blocks one after another, `labels` one name per block.
    """
    x = vectors.float().cpu()
    x = x - x.mean(0)
    _, singular, v = torch.linalg.svd(x, full_matrices=False)
    points = (x @ v[:2].T).numpy()
    share = (singular ** 2 / (singular ** 2).sum()).numpy()
    fig = Figure(figsize=(5.5, 5.5), layout="constrained")
    ax = fig.subplots()
    for block, label in zip(np.array_split(points, len(labels)), labels, strict=True):
        ax.scatter(block[:, 0], block[:, 1], s=3, alpha=0.5, label=label)
    ax.set_xlabel(f"principal component 1 ({share[0]:.0%} of the variance)")
    ax.set_ylabel(f"principal component 2 ({share[1]:.0%} of the variance)")
    # Below the axes: the points fill every corner of the plot.
    fig.legend(loc="outside lower center", ncols=len(labels), markerscale=4)
    _titled(fig, title)
    save(fig, path)
    return fig


def position_similarity(positions: torch.Tensor, path: str | Path, title: str) -> Figure:
    """Figures 5 and 8: cosine similarity between position embeddings (rows of `positions`)."""
    unit = F.normalize(positions.float().cpu(), dim=1)
    fig = Figure(figsize=(5.5, 5), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow((unit @ unit.T).numpy(), cmap="viridis", vmin=-1, vmax=1)
    fig.colorbar(image, ax=ax, label="cosine similarity", shrink=0.85)
    ax.set_xlabel("position id")
    ax.set_ylabel("position id")
    _titled(fig, title)
    save(fig, path)
    return fig


def confusion_matrix(counts: np.ndarray, labels: Sequence[str], path: str | Path,
                     title: str, unit: str) -> Figure:
    """A [gold, predicted] count matrix of `unit` (what was classified: verses, sentence pairs),
    each cell annotated with its count; the predicted labels vertical, so that long class names
    (the canon's divisions) do not run into each other."""
    side = max(4.8, 1.6 + 0.6 * len(labels))
    fig = Figure(figsize=(side, side - 0.4), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(counts, cmap="Blues")
    fig.colorbar(image, ax=ax, label=unit)
    for (i, j), n in np.ndenumerate(counts):
        ax.text(j, i, str(n), ha="center", va="center",
                color="white" if n > counts.max() / 2 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=90)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    _titled(fig, title)
    save(fig, path)
    return fig


def training_curves(panels: dict[str, dict[str, list[dict[int, float]]]], path: str | Path,
                    title: str, ylabels: dict[str, str], log_scale: Sequence[str] = ()
                    ) -> Figure:
    """Figures 6–7: one axes per panel (a metric), one line per series (an exp) in every panel,
    in the same colour everywhere: per series the mean over the seeds ({step: value} each) that
    have each step, and a ± one standard deviation band (ddof 1) where two or more have it.

    Panels not in `log_scale` share the scale 0–1 (scores), those in it one logarithmic
    scale (perplexities); one legend for all, below the panels, off the data.
    """
    columns = min(3, len(panels))
    rows = -(-len(panels) // columns)
    fig = Figure(figsize=(4.6 * columns, 3.4 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    labels = list(dict.fromkeys(label for series in panels.values() for label in series))
    # tab10 up to ten exps, tab20 for a whole sweep's eighteen.
    cmap = matplotlib.colormaps["tab10" if len(labels) <= 10 else "tab20"]
    colour = {label: cmap(i % cmap.N) for i, label in enumerate(labels)}
    logged = [ax for ax, name in zip(axes, panels, strict=False) if name in log_scale]
    for ax, (name, series) in zip(axes, panels.items(), strict=False):
        for label, seeds in series.items():
            steps = sorted({step for seed in seeds for step in seed})
            if not steps:
                continue
            values = [[seed[step] for seed in seeds if step in seed] for step in steps]
            mean = np.array([np.mean(v) for v in values])
            std = np.array([np.std(v, ddof=1) if len(v) > 1 else 0.0 for v in values])
            ax.plot(steps, mean, marker="o", markersize=3, color=colour[label], label=label)
            ax.fill_between(steps, mean - std, mean + std, color=colour[label], alpha=0.2)
        if name in log_scale:
            if ax is not logged[0]:
                ax.sharey(logged[0])
            ax.set_yscale("log")
            # 200 and 300 rather than 2×10² and 3×10²
            ax.yaxis.set_major_formatter(ticker.LogFormatter())
            ax.yaxis.set_minor_formatter(ticker.LogFormatter(labelOnlyBase=False))
        else:
            ax.set_ylim(0, 1)
        ax.set_title(name)
        ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))  # steps are whole
        ax.set_xlabel("training step")
        ax.set_ylabel(ylabels[name])
        ax.grid(alpha=0.3)
    for ax in axes[len(panels):]:
        ax.remove()
    handles = [Line2D([], [], color=colour[label], marker="o", markersize=3, label=label)
               for label in labels]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(labels), 3))
    _titled(fig, title)
    save(fig, path)
    return fig
