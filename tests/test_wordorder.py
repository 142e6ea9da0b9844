"""Word order: word vectors, Match alignment, Kendall's tau distance, correlation, plots."""

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.stats import kendalltau

from minimult_ml.figures import histogram_plot, scatter_plot
from minimult_ml.paper import PAPER_TAU, PAPER_XNLI_ACC
from minimult_ml.wordorder import (
    alignment_permutation,
    correlation,
    correlations,
    kendall_tau_distance,
    match_alignment,
    sentence_taus,
    word_vectors,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def brute_force_distance(perm):
    n = len(perm)
    discordant = sum(perm[i] > perm[j] for i in range(n) for j in range(i + 1, n))
    return 1 - math.sqrt(discordant / (n * (n - 1) / 2))


# --- Kendall's tau distance -------------------------------------------------------------------

@pytest.mark.parametrize("n", [2, 3, 7, 40])
def test_identity_is_one_and_reversal_is_zero(n):
    assert kendall_tau_distance(list(range(n))) == 1.0
    assert kendall_tau_distance(list(range(n))[::-1]) == 0.0


def test_one_adjacent_swap():
    assert kendall_tau_distance([0, 2, 1, 3]) == pytest.approx(1 - math.sqrt(1 / 6))


def test_random_permutations_match_brute_force_and_scipy():
    rng = np.random.default_rng(0)
    for _ in range(200):
        perm = rng.permutation(int(rng.integers(2, 30))).tolist()
        expected = brute_force_distance(perm)
        assert kendall_tau_distance(perm) == pytest.approx(expected, abs=1e-12)
        # Without ties, discordant / (n(n−1)/2) = (1 − τ_b) / 2.
        tau_b = kendalltau(range(len(perm)), perm).statistic
        assert kendall_tau_distance(perm) == pytest.approx(1 - math.sqrt((1 - tau_b) / 2),
                                                           abs=1e-9)


def test_too_short_permutation_is_an_error():
    with pytest.raises(ValueError):
        kendall_tau_distance([0])


# --- permutations from alignments -------------------------------------------------------------

def test_alignment_permutation_ranks_targets_in_source_order():
    assert alignment_permutation([(2, 7), (0, 5), (1, 2)]) == [1, 0, 2]
    assert alignment_permutation([(0, 0), (1, 1), (2, 2)]) == [0, 1, 2]
    assert alignment_permutation([]) == []


# --- Match ------------------------------------------------------------------------------------

def brute_force_best_weight(sim):
    m, n = sim.shape
    if m <= n:
        return max(sum(sim[i, cols[i]] for i in range(m))
                   for cols in itertools.permutations(range(n), m))
    return brute_force_best_weight(sim.T)


def cosine(src, tgt):
    src = src / src.norm(dim=1, keepdim=True)
    tgt = tgt / tgt.norm(dim=1, keepdim=True)
    return (src.double() @ tgt.double().T).numpy()


@pytest.mark.parametrize("shape", [(1, 1), (3, 3), (4, 6), (6, 4), (7, 7), (5, 7)])
def test_match_is_a_maximum_weight_matching(shape):
    gen = torch.Generator().manual_seed(sum(shape))
    for _ in range(5):
        src = torch.randn(shape[0], 8, generator=gen)
        tgt = torch.randn(shape[1], 8, generator=gen)
        edges = match_alignment(src, tgt)
        sim = cosine(src, tgt)
        assert len(edges) == min(shape)
        assert len({i for i, _ in edges}) == len({j for _, j in edges}) == len(edges)
        assert edges == sorted(edges)
        assert sum(sim[i, j] for i, j in edges) == pytest.approx(brute_force_best_weight(sim))


def test_match_recovers_a_known_permutation():
    gen = torch.Generator().manual_seed(1)
    src = torch.randn(9, 32, generator=gen)
    perm = torch.randperm(9, generator=gen)
    # target word j is source word perm[j], slightly scaled and perturbed
    tgt = 2.0 * src[perm] + 0.01 * torch.randn(9, 32, generator=gen)
    edges = match_alignment(src, tgt)
    assert edges == sorted((int(perm[j]), j) for j in range(9))
    expected_order = torch.argsort(perm).tolist()  # target positions in source order
    assert alignment_permutation(edges) == expected_order


# --- sentence scores --------------------------------------------------------------------------

def test_sentence_taus_scores_and_skips_short_sentences():
    gen = torch.Generator().manual_seed(2)
    words = torch.randn(6, 16, generator=gen)
    pairs = [
        (words, words),  # same order → 1
        (words, words.flip(0)),  # reversed → 0
        (words[:1], words),  # one word: a single edge, nothing to order
        (words, words[:0]),  # nothing on the target side
        (words[:2], words[:2].flip(0)),  # two words swapped → 0
    ]
    scores, skipped = sentence_taus(pairs)
    assert scores == pytest.approx([1.0, 0.0, 0.0])
    assert skipped == 2


# --- word vectors -----------------------------------------------------------------------------

def test_word_vectors_are_means_of_subwords():
    gen = torch.Generator().manual_seed(3)
    word_ids = [None, 0, 1, 1, 1, 2, 3, 3, None, None]  # [CLS] … [SEP] [PAD]
    sub = torch.randn(len(word_ids), 5, generator=gen)
    out = word_vectors(sub, word_ids)
    expected = []
    for w in range(4):
        rows = [sub[t] for t, wid in enumerate(word_ids) if wid == w]
        expected.append(sum(rows) / len(rows))
    torch.testing.assert_close(out, torch.stack(expected))


def test_word_vectors_edge_cases():
    sub = torch.arange(12.0).reshape(3, 4)
    assert word_vectors(sub, [None, None, None]).shape == (0, 4)
    # a word id with no subword gets no row: words 0 and 2 only
    torch.testing.assert_close(word_vectors(sub, [0, 2, 2]), torch.stack([sub[0], sub[1:].mean(0)]))
    with pytest.raises(ValueError):
        word_vectors(sub, [0, 1])


# --- correlation ------------------------------------------------------------------------------

def test_correlation_against_hand_computed_pearson():
    tau = {"en": 1.0, "de": 0.7, "fr": 0.8, "tr": 0.5, "xx": 0.9}
    acc = {"en": 0.8, "de": 0.7, "fr": 0.75, "tr": 0.6, "yy": 0.1}
    langs = ["de", "en", "fr", "tr"]  # the languages both have
    x = np.array([tau[k] for k in langs])
    y = np.array([acc[k] for k in langs])
    dx, dy = x - x.mean(), y - y.mean()
    r = (dx * dy).sum() / math.sqrt((dx**2).sum() * (dy**2).sum())
    result = correlation(tau, acc)
    assert result.r == pytest.approx(r)
    assert result.n == 4
    assert 0.0 <= result.p_value <= 1.0
    r_no_en, _, n_no_en = correlation(tau, acc, exclude=("en",))  # unpacks as a plain tuple too
    assert r_no_en == pytest.approx(np.corrcoef(x[[0, 2, 3]], y[[0, 2, 3]])[0, 1])
    assert n_no_en == 3
    with pytest.raises(ValueError):
        correlation(tau, acc, exclude=("en", "de"))


def test_constant_accuracies_have_no_correlation_and_say_why():
    """A model at chance in every language (the same accuracy everywhere): r is 0 / 0."""
    tau = {"en": 1.0, "de": 0.7, "hi": 0.5}
    both = correlations(tau, {"en": 26.0, "de": 26.0, "hi": 26.0})
    assert both["with_en"] == ("no correlation: every language has the same accuracy (26), so "
                               "Pearson's r is undefined")
    assert "at least 3 languages" in both["without_en"]


def test_correlation_on_the_papers_table4():
    # Appendix B.2: 0.64 with English, 0.46 without.
    both = correlations(PAPER_TAU, PAPER_XNLI_ACC)
    assert round(both["with_en"].r, 2) == 0.64
    assert both["with_en"].n == 15
    assert round(both["without_en"].r, 2) == 0.46
    assert both["without_en"].n == 14


# --- plots ------------------------------------------------------------------------------------

def assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 5_000
    assert not list(path.parent.glob("*.tmp"))


def test_scatter_plot_writes_a_png(tmp_path):
    path = tmp_path / "tau_vs_acc.png"
    scatter_plot(PAPER_TAU, PAPER_XNLI_ACC, path)
    assert_png(path)


def test_histogram_plot_writes_a_png(tmp_path):
    path = tmp_path / "de.png"
    scores = np.random.default_rng(0).beta(5, 2, size=300).tolist()
    histogram_plot(scores, path, "en–de")
    assert_png(path)
