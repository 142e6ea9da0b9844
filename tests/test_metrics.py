"""Metrics against brute-force references written straight from the definitions (paper §2.2)."""

import math

import pytest
import torch

from minimult_ml.metrics import (
    alignment_counts,
    alignment_from_counts,
    mean_pool,
    multilinguality_score,
    perplexity,
    retrieval_scores,
)


def alignment_scores(src: torch.Tensor, tgt: torch.Tensor, lengths: torch.Tensor,
                     inverted: bool = False) -> dict[str, float]:
    """The evaluation's way (counts per batch, then scores), on one batch."""
    return alignment_from_counts(alignment_counts(src, tgt, lengths, inverted))


# ---------------------------------------------------------------- brute-force references


def cos(u: list[float], v: list[float]) -> float:
    dot = sum(a * b for a, b in zip(u, v, strict=True))
    return dot / (math.sqrt(sum(a * a for a in u)) * math.sqrt(sum(b * b for b in v)))


def first_argmax(xs: list[float]) -> int:
    return max(range(len(xs)), key=xs.__getitem__)  # max() keeps the first of equal keys


def prf(predicted: int, correct: int, gold: int) -> tuple[float, float, float]:
    p = correct / predicted if predicted else 0.0
    r = correct / gold if gold else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def ref_alignment(src: torch.Tensor, tgt: torch.Tensor, lengths: list[int],
                  inverted: bool) -> dict[str, float]:
    counts = {"forward": [0, 0], "backward": [0, 0], "intersection": [0, 0]}
    gold_total = 0
    for b, n in enumerate(lengths):
        e, f = src[b].tolist()[:n], tgt[b].tolist()[:n]
        S = [[cos(e[i], f[j]) for j in range(n)] for i in range(n)]
        gold = {(i, n - 1 - i if inverted else i) for i in range(n)}
        fwd = {(i, first_argmax(S[i])) for i in range(n)}
        bwd = {(first_argmax([S[i][j] for i in range(n)]), j) for j in range(n)}
        for name, edges in (("forward", fwd), ("backward", bwd), ("intersection", fwd & bwd)):
            counts[name][0] += len(edges)
            counts[name][1] += len(edges & gold)
        gold_total += len(gold)
    scores = {}
    for name, (predicted, correct) in counts.items():
        p, r, f1 = prf(predicted, correct, gold_total)
        scores |= {f"{name}_precision": p, f"{name}_recall": r, f"{name}_f1": f1}
    return scores


def ref_retrieval(src: torch.Tensor, tgt: torch.Tensor, ks: tuple[int, ...]) -> dict[str, float]:
    e, f = src.tolist(), tgt.tolist()
    m = len(e)
    S = [[cos(e[i], f[j]) for j in range(m)] for i in range(m)]
    scores = {}
    for k in ks:
        hits = {"src2tgt": 0, "tgt2src": 0}
        for i in range(m):
            for name, sims in (("src2tgt", S[i]), ("tgt2src", [S[j][i] for j in range(m)])):
                # Sort by similarity, the gold after any candidate it ties with.
                ranked = sorted(range(m), key=lambda j, s=sims, i=i: (-s[j], j == i))
                hits[name] += i in ranked[:k]
        s2t, t2s = hits["src2tgt"] / m, hits["tgt2src"] / m
        scores |= {f"p{k}_src2tgt": s2t, f"p{k}_tgt2src": t2s, f"p{k}": (s2t + t2s) / 2}
    return scores


# ---------------------------------------------------------------- data with known structure


def parallel_batch(seed: int, B: int = 8, L: int = 12, d: int = 16, noise: float = 0.8):
    """Sentence pairs whose targets are noisy, partly shuffled copies of the sources."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, L + 1, (B,), generator=g)
    lengths[0] = L
    src = torch.randn(B, L, d, generator=g)
    tgt = src + noise * torch.randn(B, L, d, generator=g)
    for b in range(B):  # swap a few tokens so that not everything is on the diagonal
        n = int(lengths[b])
        idx = torch.randperm(n, generator=g)[: n // 3]
        tgt[b, idx] = tgt[b, idx.roll(1)]
    for x in (src, tgt):  # garbage padding: huge random vectors
        x[torch.arange(L)[None] >= lengths[:, None]] = 1e6 * torch.randn(
            int((L - lengths).sum()), d, generator=g)
    return src, tgt, lengths


def flip_sentences(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse the real tokens of each sentence, leaving its padding in place."""
    x = x.clone()
    for b, n in enumerate(lengths.tolist()):
        x[b, :n] = x[b, :n].flip(0)
    return x


def pad_with_copies(src: torch.Tensor, tgt: torch.Tensor, lengths: torch.Tensor):
    """Padding that an unmasked argmax would pick: exact (scaled) copies of the other side."""
    src, tgt = src.clone(), tgt.clone()
    for b, n in enumerate(lengths.tolist()):
        pad = src.size(1) - n
        tgt[b, n:] = 1e6 * src[b, :n][torch.arange(pad) % n]
        src[b, n:] = 1e6 * tgt[b, :n][torch.arange(pad) % n]
    return src, tgt


# ---------------------------------------------------------------- alignment

KEYS = {f"{s}_{m}" for s in ("forward", "backward", "intersection")
        for m in ("precision", "recall", "f1")}


@pytest.mark.parametrize("inverted", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_alignment_matches_reference(seed: int, inverted: bool):
    src, tgt, lengths = parallel_batch(seed)
    if inverted:  # flip each target sentence so that the flipped gold is mostly right
        tgt = flip_sentences(tgt, lengths)
    got = alignment_scores(src, tgt, lengths, inverted=inverted)
    want = ref_alignment(src, tgt, lengths.tolist(), inverted)
    assert set(got) == KEYS
    assert got == pytest.approx(want, rel=1e-12, abs=0)
    assert 0.2 < got["forward_f1"] < 0.95  # the structure is partial: the test can fail both ways


@pytest.mark.parametrize("inverted", [False, True])
def test_alignment_identical_is_perfect(inverted: bool):
    src, _, lengths = parallel_batch(3)
    tgt = src.clone()
    if inverted:
        tgt = flip_sentences(tgt, lengths)
    assert alignment_scores(src, tgt, lengths, inverted=inverted) == dict.fromkeys(KEYS, 1.0)


def test_alignment_wrong_gold_direction():
    src, _, lengths = parallel_batch(4, B=1, L=7)
    lengths[:] = 7
    got = alignment_scores(src, src.clone(), lengths, inverted=True)
    assert got == dict.fromkeys(KEYS, 1 / 7)  # only the middle token is its own mirror


def test_alignment_known_permutation():
    # Each target sentence is its source under a permutation with exactly `fixed` fixed points:
    # every edge set predicts the permutation, so p = r = F1 = fixed / n.
    g = torch.Generator().manual_seed(5)
    B, n, d, fixed = 6, 10, 16, 4
    src = torch.randn(B, n, d, generator=g)
    sigma = torch.cat([torch.arange(fixed), torch.arange(fixed, n).roll(1)])
    got = alignment_scores(src, src[:, sigma], torch.full((B,), n))
    assert got == pytest.approx(dict.fromkeys(KEYS, fixed / n), rel=1e-12)


def test_alignment_ignores_padding():
    src, tgt, lengths = parallel_batch(6, noise=1.5)
    trap_src, trap_tgt = pad_with_copies(src, tgt, lengths)
    got = alignment_scores(trap_src, trap_tgt, lengths)
    assert got == alignment_scores(src, tgt, lengths)
    assert got == pytest.approx(ref_alignment(src, tgt, lengths.tolist(), False), rel=1e-12)
    # The trap is real: treated as tokens, the copies would win the argmaxes.
    full = torch.full_like(lengths, src.size(1))
    assert alignment_scores(trap_src, trap_tgt, full)["forward_f1"] < got["forward_f1"]


def test_alignment_ties_go_to_lowest_index():
    # All tokens identical: every argmax is position 0, so the only mutual edge is (0, 0).
    B, n = 3, 5
    x = torch.zeros(B, n, 4)
    x[..., 0] = 1.0
    counts = alignment_counts(x, x.clone(), torch.full((B,), n))
    # rows forward / backward / intersection; columns predicted, correct, gold
    assert counts.tolist() == [[B * n, B, B * n], [B * n, B, B * n], [B, B, B * n]]


def test_alignment_random_near_chance():
    g = torch.Generator().manual_seed(7)
    B, n, d = 100, 20, 64
    got = alignment_scores(torch.randn(B, n, d, generator=g), torch.randn(B, n, d, generator=g),
                           torch.full((B,), n))
    assert abs(got["forward_precision"] - 1 / n) < 0.02  # chance is 1/n
    assert abs(got["backward_recall"] - 1 / n) < 0.02
    assert got["intersection_recall"] < 0.05


def test_alignment_counts_sum_over_chunks():
    src, tgt, lengths = parallel_batch(8, B=20)
    whole = alignment_counts(src, tgt, lengths)
    parts = []
    for a, b in ((0, 3), (3, 11), (11, 20)):
        w = int(lengths[a:b].max())  # each chunk padded only to its own longest pair
        parts.append(alignment_counts(src[a:b, :w], tgt[a:b, :w], lengths[a:b]))
    assert whole.dtype == torch.int64
    assert torch.equal(sum(parts), whole)
    assert alignment_from_counts(sum(parts)) == alignment_scores(src, tgt, lengths)


def test_alignment_from_counts_zero_division():
    assert alignment_from_counts(torch.zeros(3, 3, dtype=torch.long)) == dict.fromkeys(KEYS, 0.0)


# ---------------------------------------------------------------- retrieval


def structured_pairs(seed: int, m: int = 60, d: int = 12, noise: float = 0.6):
    g = torch.Generator().manual_seed(seed)
    src = torch.randn(m, d, generator=g)
    return src, src + noise * torch.randn(m, d, generator=g)


@pytest.mark.parametrize("chunk_size", [1, 7, 60, 4096])
@pytest.mark.parametrize("seed", [0, 1])
def test_retrieval_matches_reference(seed: int, chunk_size: int):
    src, tgt = structured_pairs(seed)
    got = retrieval_scores(src, tgt, ks=(1, 5, 10), chunk_size=chunk_size)
    want = ref_retrieval(src, tgt, (1, 5, 10))
    assert set(got) == {f"p{k}{s}" for k in (1, 5, 10) for s in ("", "_src2tgt", "_tgt2src")}
    assert got == pytest.approx(want, rel=1e-12, abs=0)
    assert 0.2 < got["p1"] < 0.95  # partial structure, so a wrong ranking shows


def test_retrieval_identical_is_perfect():
    src, _ = structured_pairs(2)
    assert set(retrieval_scores(src, src.clone(), chunk_size=16).values()) == {1.0}


@pytest.mark.parametrize("k", [2, 3, 9])
def test_retrieval_known_shuffle(k: int):
    # Rotate k of the m target rows among themselves: exactly those k queries miss at rank 1.
    m = 50
    src, _ = structured_pairs(3, m=m)
    rows = torch.randperm(m, generator=torch.Generator().manual_seed(k))[:k]
    tgt = src.clone()
    tgt[rows] = src[rows.roll(1)]
    got = retrieval_scores(src, tgt, ks=(1,), chunk_size=16)
    assert got == {"p1_src2tgt": (m - k) / m, "p1_tgt2src": (m - k) / m, "p1": (m - k) / m}


def test_retrieval_random_near_chance():
    g = torch.Generator().manual_seed(9)
    m = 2000
    got = retrieval_scores(torch.randn(m, 32, generator=g), torch.randn(m, 32, generator=g),
                           chunk_size=512)
    assert got["p1"] < 0.005  # chance is k / m
    assert abs(got["p10"] - 10 / m) < 0.004


def test_retrieval_ties_count_against_gold():
    src, _ = structured_pairs(4, m=20)
    src[5] = src[11]  # a duplicated row: its two queries tie between two candidates
    got = retrieval_scores(src, src.clone(), ks=(1, 2), chunk_size=8)
    assert got["p1"] == 18 / 20 and got["p2"] == 1.0
    collapsed = torch.ones(20, 8)  # every vector the same: nothing is ever found
    assert set(retrieval_scores(collapsed, collapsed.clone(), ks=(1, 5)).values()) == {0.0}


def test_retrieval_nan_is_a_miss():
    src, tgt = structured_pairs(5, m=20, noise=0.0)
    src[3] = math.nan
    got = retrieval_scores(src, tgt, ks=(1,))
    assert got["p1_src2tgt"] == 19 / 20  # the NaN query finds nothing
    assert got["p1_tgt2src"] == 0.0  # a NaN candidate ties with every gold: loud, not hidden


# ---------------------------------------------------------------- pooling, μ, perplexity


def test_mean_pool_matches_loop_and_ignores_padding():
    g = torch.Generator().manual_seed(10)
    B, L, d = 5, 9, 6
    hidden = torch.randn(B, L, d, generator=g)
    lengths = [9, 1, 4, 0, 7]
    mask = torch.arange(L)[None] < torch.tensor(lengths)[:, None]
    hidden[~mask] = math.inf  # padding that would poison a multiply-by-mask
    got = mean_pool(hidden, mask)
    for b, n in enumerate(lengths):
        rows = hidden[b, :n].tolist()
        want = [sum(r[c] for r in rows) / n if n else 0.0 for c in range(d)]
        assert got[b].tolist() == pytest.approx(want, rel=1e-6, abs=1e-6)


def test_multilinguality_score():
    assert multilinguality_score(0.2, 0.4, 0.6, 1.0) == pytest.approx(0.55)


def test_perplexity():
    vocab, n = 2048, 37
    assert perplexity(n * math.log(vocab), n) == pytest.approx(vocab)  # uniform guess
    assert perplexity(0.0, 5) == 1.0
    assert perplexity(1e6, 1) == math.inf
    with pytest.raises(ValueError):
        perplexity(1.0, 0)
