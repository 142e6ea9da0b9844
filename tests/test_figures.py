"""The figures as a reader sees them, checked through matplotlib's own API on the drawn
figures: every axis labelled, titles clear of colour bars and axes, legends off the data, the
curves of several exps overlaid on shared scales with the mean and band of a plain
recomputation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.transforms import Bbox
from PIL import Image

from analysis.report import CURVES, PERPLEXITIES
from minimult_ml import figures, tasks


def boxes(fig: Figure) -> tuple[list[Bbox], list[Bbox], list[Bbox]]:
    """Window extents of the data areas of the axes (colour bars apart), of the colour bars,
    and of every legend, after a full draw."""
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    plots = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    legends = [*fig.legends, *(ax.get_legend() for ax in plots if ax.get_legend())]
    return ([ax.get_window_extent(renderer) for ax in plots],
            [ax.get_tightbbox(renderer) for ax in bars],
            [legend.get_window_extent(renderer) for legend in legends])


def assert_labelled_and_clear(fig: Figure, path: Path) -> None:
    """Every plot has both axis labels; the title overlaps no axes nor colour bar; no legend
    overlaps a plot's data area; the PNG exists and is an image."""
    plots, bars, legends = boxes(fig)
    for ax in (ax for ax in fig.axes if ax.get_label() != "<colorbar>"):
        assert ax.get_xlabel() and ax.get_ylabel(), ax.get_title()
    title = fig._suptitle
    if title is not None:
        extent = title.get_window_extent(fig.canvas.get_renderer())  # Agg since boxes()
        assert not any(extent.overlaps(box) for box in plots + bars)
    for legend in legends:
        assert not any(legend.overlaps(box) for box in plots)
    with Image.open(path) as image:
        assert image.format == "PNG" and min(image.size) > 200


def test_pca_has_labelled_components_and_a_legend_off_the_points(tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(0)
    english = torch.randn(300, 16, generator=generator) * torch.linspace(3, 0.1, 16)
    fake = english + torch.tensor([4.0] + [0.0] * 15)  # the second language shifted along PC 1
    path = tmp_path / "pca.png"
    fig = figures.embedding_pca(torch.cat([english, fake]), ["en", "fake-en"], path,
                                "Layer 0: 8-lang-pos+shift-special+no-random-s42, step 1000")
    (ax,) = fig.axes
    # The explained-variance shares in the labels equal a plain eigen-decomposition's.
    x = torch.cat([english, fake]).double()
    eigen = torch.linalg.eigvalsh(torch.cov(x.T)).flip(0)
    share = (eigen / eigen.sum()).numpy()
    assert ax.get_xlabel() == f"principal component 1 ({share[0]:.0%} of the variance)"
    assert ax.get_ylabel() == f"principal component 2 ({share[1]:.0%} of the variance)"
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["en", "fake-en"]
    assert_labelled_and_clear(fig, path)


@pytest.mark.parametrize("title", ["Position embeddings: 0-original-s42, step 100",
                                   "Position embeddings: 8-lang-pos+shift-special+no-random-s42"
                                   ", step 12000"])
def test_position_similarity_title_clears_the_colour_bar(tmp_path: Path, title: str) -> None:
    positions = torch.randn(256, 64, generator=torch.Generator().manual_seed(1))
    path = tmp_path / "positions.png"
    fig = figures.position_similarity(positions, path, title)
    ax, bar = fig.axes
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("position id", "position id")
    assert bar.get_ylabel() == "cosine similarity"
    assert fig._suptitle.get_text().replace("\n", " ") == title
    assert_labelled_and_clear(fig, path)


def test_confusion_matrix_and_word_order_plots_are_labelled(tmp_path: Path) -> None:
    counts = np.array([[50, 3, 7], [4, 40, 9], [6, 8, 44]])
    fig = figures.confusion_matrix(counts, ["entailment", "neutral", "contradiction"],
                                   tmp_path / "c.png", "XNLI de: accuracy 0.784", "sentence pairs")
    assert_labelled_and_clear(fig, tmp_path / "c.png")
    # The canon's eight divisions: the colour bar counts verses, and no two class names touch.
    genre = tasks.task("bible-genre")
    fig = figures.confusion_matrix(np.arange(64).reshape(8, 8), genre.labels, tmp_path / "g.png",
                                   "Bible genre de (zero-shot from en): accuracy 0.321",
                                   genre.examples)
    assert_labelled_and_clear(fig, tmp_path / "g.png")
    renderer = FigureCanvasAgg(fig).get_renderer()
    matrix, colour_bar = fig.axes
    assert colour_bar.get_ylabel() == "verses"
    for ticks in (matrix.get_xticklabels(), matrix.get_yticklabels()):
        assert [t.get_text() for t in ticks] == list(genre.labels)
        extents = [t.get_window_extent(renderer) for t in ticks]
        assert not any(a.overlaps(b) for i, a in enumerate(extents) for b in extents[i + 1:])
    tau = {"en": 0.95, "de": 0.80, "hi": 0.55, "ar": 0.70}
    accuracy = {"en": 81.4, "de": 70.5, "hi": 59.7, "ar": 64.9}
    fig = figures.scatter_plot(tau, accuracy, tmp_path / "s.png", "Bible genre")
    assert fig.legends  # the fitted line's r, below the plot
    assert fig.axes[0].get_ylabel() == "Bible genre zero-shot accuracy (%)"  # the task plotted
    assert_labelled_and_clear(fig, tmp_path / "s.png")
    # A model that learnt nothing: languages tie on one accuracy at nearly the same tau. Every
    # point keeps its label (one for the two that coincide), and no label covers another.
    tau = {"en": 0.30, "de": 0.31, "fr": 0.305, "es": 0.31, "ru": 0.33, "hi": 0.50}
    accuracy = {"en": 40.0, "de": 8.5, "fr": 8.5, "es": 8.5, "ru": 8.5, "hi": 17.8}
    fig = figures.scatter_plot(tau, accuracy, tmp_path / "tied.png", "Bible genre")
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    labels = fig.axes[0].texts
    assert sorted(label.get_text() for label in labels) == ["de, es", "en", "fr", "hi", "ru"]
    extents = [Text.get_window_extent(label, renderer) for label in labels]  # leader lines apart
    assert not any(a.overlaps(b) for i, a in enumerate(extents) for b in extents[i + 1:])
    fig = figures.histogram_plot([0.1, 0.5, 0.52, 0.9], tmp_path / "h.png", "en → de")
    assert_labelled_and_clear(fig, tmp_path / "h.png")


def test_training_curves_overlay_the_exps_on_shared_scales(tmp_path: Path) -> None:
    """Three exps, two of them with three seeds that were evaluated at different steps."""
    rng = np.random.default_rng(0)

    def seed_history(steps: list[int], level: float) -> dict[int, float]:
        return {s: float(np.clip(level * s / steps[-1] + rng.normal(0, 0.03), 0, 1))
                for s in steps}

    exps = {"0 original (3 seeds)": ([100, 200, 300], 0.7, 3),
            "8 lang-pos;shift-special;no-random (3 seeds)": ([100, 200, 300], 0.2, 3),
            "30 knn-replace (1 seed)": ([100, 200], 0.8, 1)}
    histories = {exp: [seed_history(steps, level) for _ in range(n)]
                 for exp, (steps, level, n) in exps.items()}
    histories["0 original (3 seeds)"][2].pop(300)  # a seed without its last evaluation
    titles = [title for title, _ in CURVES.values()]
    logged = [CURVES[key][0] for key in PERPLEXITIES]
    panels = {title: {exp: ([{s: 20 + 400 * v for s, v in h.items()} for h in seeds]
                            if title in logged else seeds)
                      for exp, seeds in histories.items()} for title in titles}
    path = tmp_path / "curves.png"
    fig = figures.training_curves(panels, path, "Multilinguality and perplexity over training",
                                  {title: ylabel for title, ylabel in CURVES.values()}, logged)
    assert [ax.get_title() for ax in fig.axes] == titles
    colours = None
    for ax in fig.axes:
        assert ax.get_xlabel() == "training step"
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert list(lines) == list(exps)  # every exp in every panel
        # One colour per exp, the same in every panel.
        found = [line.get_color() for line in lines.values()]
        assert len(set(map(str, found))) == len(exps)
        colours = colours or found
        assert found == colours
        if ax.get_title() in logged:
            assert ax.get_yscale() == "log"
        else:
            assert ax.get_ylim() == (0, 1)
        # The line is the mean over the seeds that have each step (a plain recomputation).
        for exp, line in lines.items():
            seeds = panels[ax.get_title()][exp]
            steps = sorted({s for h in seeds for s in h})
            assert list(line.get_xdata()) == steps
            assert np.allclose(line.get_ydata(),
                               [sum(h[s] for h in seeds if s in h) / sum(s in h for h in seeds)
                                for s in steps])
    # The perplexity panels share one scale; all score panels span 0 to 1.
    train, dev = (ax for ax in fig.axes if ax.get_title() in logged)
    assert train.get_ylim() == dev.get_ylim()
    # The band: mean ± the sample std (ddof 1) over the seeds.
    band = fig.axes[0].collections[0].get_paths()[0].vertices
    at_100 = [h[100] for h in panels[titles[0]]["0 original (3 seeds)"]]
    mean, std = np.mean(at_100), np.std(at_100, ddof=1)
    for y in (mean - std, mean + std):
        assert any(np.allclose(vertex, (100, y)) for vertex in band)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == list(exps)
    assert_labelled_and_clear(fig, path)
