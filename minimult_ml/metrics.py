"""Multilinguality metrics (paper §2.2, DESIGN §6): word alignment, retrieval / translation
precision@k, the multilinguality score μ and perplexity.

Pure tensor maths on whatever device the inputs are on; one host sync per call, at the end.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

EDGE_SETS = ("forward", "backward", "intersection")


def alignment_counts(src: Tensor, tgt: Tensor, lengths: Tensor, inverted: bool = False) -> Tensor:
    """Edge counts of B parallel sentence pairs ([B, L, d] each, `lengths` [B]).

    Returns int64 [3, 3]: rows forward / backward / intersection (Sabet et al.'s Argmax), columns
    (predicted, correct, gold). Integers, so counts of chunks sum exactly to those of the corpus.
    Gold is the identity, or under `inverted` the flipped identity i -> n-1-i. Ties in an argmax go
    to the lowest index (torch.argmax).
    """
    if src.size(0) != tgt.size(0) or src.size(0) != lengths.size(0) or src.size(2) != tgt.size(2):
        raise ValueError(f"shape mismatch: src {tuple(src.shape)}, tgt {tuple(tgt.shape)}, "
                         f"lengths {tuple(lengths.shape)}")
    n = lengths.to(src.device).long()[:, None]  # [B, 1]
    i = torch.arange(src.size(1), device=src.device)[None]  # source positions [1, Ls]
    j = torch.arange(tgt.size(1), device=src.device)[None]  # target positions [1, Lt]
    row_ok, col_ok = i < n, j < n  # [B, Ls], [B, Lt]: real tokens, not padding
    sim = torch.bmm(F.normalize(src.float(), dim=-1), F.normalize(tgt.float(), dim=-1).mT)
    # Padding must never win an argmax: cosine ignores magnitude, so masking is the only guard.
    sim = sim.masked_fill(~(row_ok[:, :, None] & col_ok[:, None, :]), -math.inf)
    fwd = sim.argmax(2)  # [B, Ls] best target of each source
    bwd = sim.argmax(1)  # [B, Lt] best source of each target
    # The gold is an involution (identity or flip), so one formula serves both sides.
    fwd_hit = row_ok & (fwd == (n - 1 - i if inverted else i))
    bwd_hit = col_ok & (bwd == (n - 1 - j if inverted else j))
    mutual = row_ok & (bwd.gather(1, fwd) == i)  # source i's best target points back at i
    predicted = torch.stack([row_ok.sum(), col_ok.sum(), mutual.sum()])
    correct = torch.stack([fwd_hit.sum(), bwd_hit.sum(), (mutual & fwd_hit).sum()])
    return torch.stack([predicted, correct, n.sum().expand(3)], dim=1)


def alignment_from_counts(counts: Tensor) -> dict[str, float]:
    """Precision / recall / F1 of each edge set from (summed) `alignment_counts`."""
    scores = {}
    for name, (predicted, correct, gold) in zip(EDGE_SETS, counts.tolist(), strict=True):
        p = correct / predicted if predicted else 0.0
        r = correct / gold if gold else 0.0
        scores[f"{name}_precision"] = p
        scores[f"{name}_recall"] = r
        scores[f"{name}_f1"] = 2 * p * r / (p + r) if p + r else 0.0
    return scores


def mean_pool(hidden: Tensor, mask: Tensor) -> Tensor:
    """Mean of the vectors where `mask` is True: [B, L, d], [B, L] -> float32 [B, d].

    Empty rows give zero vectors.
    """
    # masked_fill, not multiply: inf or NaN in padding must not leak in (inf * 0 = NaN).
    total = hidden.float().masked_fill(~mask[..., None], 0.0).sum(1)
    return total / mask.sum(1, keepdim=True).clamp(min=1)


def _gold_ranks(queries: Tensor, keys: Tensor, chunk_size: int) -> Tensor:
    """Rank of key i for query i among all keys, chunked over queries ([m, d] unit vectors)."""
    ranks = []
    for start in range(0, queries.size(0), chunk_size):
        sim = queries[start:start + chunk_size] @ keys.T  # [c, m]
        rows = torch.arange(sim.size(0), device=sim.device)
        gold = sim[rows, start + rows][:, None]  # from the same product, so exact ties stay ties
        # Count keys not strictly below the gold (gold included): ties and NaN count against it.
        ranks.append((~(sim < gold)).sum(1))
    return torch.cat(ranks)


def retrieval_scores(src: Tensor, tgt: Tensor, ks: tuple[int, ...] = (1, 5, 10),
                     chunk_size: int = 4096) -> dict[str, float]:
    """Precision@k of finding row i of `tgt` for row i of `src` by cosine, and the reverse.

    Tie rule: the gold is found at k iff fewer than k other candidates have similarity >= its own
    (ties are broken against the gold), so a collapsed model scores 0, not 1 or 1/m.
    Keys `p{k}_src2tgt`, `p{k}_tgt2src` and their mean `p{k}` (p1 is ρ or τ).
    """
    if src.shape != tgt.shape or src.dim() != 2:
        raise ValueError(f"need two [m, d] matrices, got {tuple(src.shape)}, {tuple(tgt.shape)}")
    src, tgt = F.normalize(src.float(), dim=-1), F.normalize(tgt.float(), dim=-1)
    ranks = torch.stack([_gold_ranks(src, tgt, chunk_size), _gold_ranks(tgt, src, chunk_size)])
    k = torch.tensor(ks, device=ranks.device)
    found = (ranks[:, :, None] <= k).double().mean(1)  # [2 directions, len(ks)]
    scores = {}
    for kk, (s2t, t2s) in zip(ks, found.T.tolist(), strict=True):
        scores[f"p{kk}_src2tgt"] = s2t
        scores[f"p{kk}_tgt2src"] = t2s
        scores[f"p{kk}"] = (s2t + t2s) / 2
    return scores


def multilinguality_score(tau0: float, tau8: float, rho0: float, rho8: float) -> float:
    """μ = (τ₀ + τ₈ + ρ₀ + ρ₈) / 4."""
    return (tau0 + tau8 + rho0 + rho8) / 4


def perplexity(nll_sum: float, count: int) -> float:
    """exp of the mean negative log-likelihood (base e); inf when that overflows."""
    if count <= 0:
        raise ValueError(f"perplexity of {count} tokens")
    try:
        return math.exp(nll_sum / count)
    except OverflowError:  # a diverged model: report inf rather than crash the evaluation
        return math.inf
