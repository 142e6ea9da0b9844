"""Figures as PNG files: the paper's pictures (Figures 4, 5, 8) and the word-order plots.

Each is drawn on a matplotlib `Figure` without pyplot, so it renders with Agg and touches no
global backend state.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure


def save(fig: Figure, path: str | Path) -> None:
    """Write a PNG beside its target, then rename: a crash never leaves half a file behind."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    os.replace(tmp, path)


def scatter_plot(tau: dict[str, float], accuracy: dict[str, float], path: str | Path) -> None:
    """Tau against accuracy, one point per language labelled with its code, and the least-squares
    line over all plotted languages."""
    langs = sorted(tau.keys() & accuracy.keys())
    x = np.array([tau[lang] for lang in langs])
    y = np.array([accuracy[lang] for lang in langs])
    # A Figure without pyplot renders with Agg and touches no global backend state.
    fig = Figure(figsize=(5, 4))
    ax = fig.subplots()
    ax.scatter(x, y)
    for lang, xi, yi in zip(langs, x, y, strict=True):
        ax.annotate(lang, (xi, yi), textcoords="offset points", xytext=(4, 4))
    if len(langs) >= 2 and np.ptp(x) > 0:
        slope, intercept = np.polyfit(x, y, 1)
        xs = np.array([x.min(), x.max()])
        label = f"r = {np.corrcoef(x, y)[0, 1]:.2f} (n = {len(langs)})"
        ax.plot(xs, slope * xs + intercept, color="tab:red", label=label)
        ax.legend(loc="lower right")
    ax.set_xlabel("Kendall's tau distance")
    ax.set_ylabel("XNLI zero-shot accuracy")
    save(fig, path)


def histogram_plot(scores: Sequence[float], path: str | Path, title: str) -> None:
    """Histogram of per-sentence Kendall's tau distances over [0, 1]."""
    fig = Figure(figsize=(5, 3.5))
    ax = fig.subplots()
    ax.hist(scores, bins=20, range=(0.0, 1.0))
    ax.set_xlabel("Kendall's tau distance")
    ax.set_ylabel("sentences")
    ax.set_title(title)
    save(fig, path)


def embedding_pca(vectors: torch.Tensor, labels: Sequence[str], path: str | Path,
                  title: str) -> None:
    """Figure 4: the first two principal components of token vectors, one colour per language.

    `vectors` holds the languages' blocks one after another, `labels` one name per block.
    """
    x = vectors.float().cpu()
    x = x - x.mean(0)
    _, _, v = torch.linalg.svd(x, full_matrices=False)
    points = (x @ v[:2].T).numpy()
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    for block, label in zip(np.array_split(points, len(labels)), labels, strict=True):
        ax.scatter(block[:, 0], block[:, 1], s=3, alpha=0.5, label=label)
    ax.set_title(title)
    ax.legend(markerscale=4)
    save(fig, path)


def position_similarity(positions: torch.Tensor, path: str | Path, title: str) -> None:
    """Figures 5 and 8: cosine similarity between position embeddings (rows of `positions`)."""
    unit = F.normalize(positions.float().cpu(), dim=1)
    fig = Figure(figsize=(5, 4.4))
    ax = fig.subplots()
    image = ax.imshow((unit @ unit.T).numpy(), cmap="viridis", vmin=-1, vmax=1)
    fig.colorbar(image, ax=ax, label="cosine similarity")
    ax.set_xlabel("position")
    ax.set_ylabel("position")
    ax.set_title(title)
    save(fig, path)


def confusion_matrix(counts: np.ndarray, labels: Sequence[str], path: str | Path,
                     title: str) -> None:
    """A [gold, predicted] count matrix, each cell annotated with its count."""
    fig = Figure(figsize=(4.6, 4))
    ax = fig.subplots()
    image = ax.imshow(counts, cmap="Blues")
    fig.colorbar(image, ax=ax, label="pairs")
    for (i, j), n in np.ndenumerate(counts):
        ax.text(j, i, str(n), ha="center", va="center",
                color="white" if n > counts.max() / 2 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=30)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(title)
    save(fig, path)


def training_curves(panels: dict[str, dict[str, list[dict[int, float]]]], path: str | Path,
                    title: str, log_scale: Sequence[str] = ()) -> None:
    """Figures 6–7: one axes per panel; per series (one {step: value} per seed) the mean over
    the seeds that have each step, and a ± one standard deviation band (ddof 1) where two or
    more have it."""
    fig = Figure(figsize=(5.5 * len(panels), 4))
    for ax, (name, series) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels.items(),
                                  strict=True):
        for label, seeds in series.items():
            steps = sorted({step for seed in seeds for step in seed})
            values = [[seed[step] for seed in seeds if step in seed] for step in steps]
            mean = np.array([np.mean(v) for v in values])
            std = np.array([np.std(v, ddof=1) if len(v) > 1 else 0.0 for v in values])
            (line,) = ax.plot(steps, mean, marker="o", markersize=3, label=label)
            ax.fill_between(steps, mean - std, mean + std, color=line.get_color(), alpha=0.2)
        if name in log_scale:
            ax.set_yscale("log")
        ax.set_title(name)
        ax.set_xlabel("training step")
        ax.legend()
    fig.suptitle(title)
    save(fig, path)
