"""Word order of parallel sentences and its correlation with zero-shot transfer (paper App. B.2).

For each sentence pair (English ↔ another language): word vectors are the mean of their subword
vectors; words are aligned with SimAlign's Match method (maximum-weight bipartite matching on the
cosine similarity matrix); the aligned target positions, read in source order, form a permutation;
Birch & Osborne's Kendall's tau distance scores it, 1 for the same order and 0 for fully inverted.
The per-language mean is then correlated (Pearson) with a transfer task's zero-shot accuracy
(Table 4; the paper's task is XNLI).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from scipy.stats import pearsonr

from minimult_ml.errors import InputError
from minimult_ml.threads import single_threaded

if TYPE_CHECKING:  # representations imports this module
    from minimult_ml.representations import Encoder


def word_vectors(subword_vectors: torch.Tensor, word_ids: Sequence[int | None]) -> torch.Tensor:
    """(T, d) subword vectors → (W, d) word vectors, each the mean of its word's subwords.

    `word_ids` is a fast tokenizer's `encoding.word_ids()`: the word index of every subword, None
    for special tokens (which are dropped). Rows come out in word order; a word id that never
    occurs gets no row, so the result indexes the words that actually have subwords.
    """
    if len(word_ids) != subword_vectors.shape[0]:
        raise ValueError(f"{len(word_ids)} word ids for {subword_vectors.shape[0]} subword vectors")
    keep = [i for i, w in enumerate(word_ids) if w is not None]
    if not keep:
        return subword_vectors.new_zeros((0, subword_vectors.shape[1]))
    ids = torch.tensor([word_ids[i] for i in keep], device=subword_vectors.device)
    words, slot = torch.unique(ids, sorted=True, return_inverse=True)
    vectors = subword_vectors[keep]
    sums = vectors.new_zeros((len(words), vectors.shape[1])).index_add_(0, slot, vectors)
    counts = torch.bincount(slot, minlength=len(words)).to(vectors.dtype)
    return sums / counts[:, None]


def match_alignment(src: torch.Tensor, tgt: torch.Tensor) -> list[tuple[int, int]]:
    """SimAlign's Match (`mwmf`): the maximum-weight bipartite matching of (m, d) and (n, d) words.

    Returns min(m, n) edges (source position, target position), sorted by source position.
    SimAlign weighs edges by (cos + 1) / 2 and asks for a maximum-cardinality matching. Every such
    matching has min(m, n) edges, so its weight is (its cosine sum + min(m, n)) / 2: the same
    order as plain cosine sums, hence the same best matching.
    """
    sim = F.normalize(src.double(), dim=-1) @ F.normalize(tgt.double(), dim=-1).T
    rows, cols = linear_sum_assignment(sim.cpu().numpy(), maximize=True)
    return sorted(zip(rows.tolist(), cols.tolist(), strict=True))


def alignment_permutation(edges: Iterable[tuple[int, int]]) -> list[int]:
    """Aligned target positions in source order, as ranks: [(0, 5), (1, 2), (2, 7)] → [1, 0, 2].

    Unaligned words leave gaps in the target positions; ranking closes them, so the result is a
    permutation of 0..k-1 for k edges.
    """
    targets = [t for _, t in sorted(edges)]
    rank = {t: r for r, t in enumerate(sorted(targets))}
    return [rank[t] for t in targets]


def kendall_tau_distance(perm: Sequence[int]) -> float:
    """Birch & Osborne (2011): 1 − sqrt(discordant pairs / (n(n−1)/2)).

    1 for the same order, 0 for the fully inverted one. A pair i < j is discordant when
    perm[i] > perm[j]; the O(n²) comparison is vectorised, and sentences are short.
    """
    p = np.asarray(perm)
    n = len(p)
    if n < 2:
        raise ValueError(f"Kendall's tau distance needs at least two positions, got {n}")
    discordant = np.triu(p[:, None] > p[None, :], k=1).sum()
    return float(1.0 - np.sqrt(discordant / (n * (n - 1) / 2)))


def sentence_taus(pairs: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> tuple[list[float], int]:
    """Kendall's tau distance of each (source words, target words) pair of word-vector tensors.

    Pairs with fewer than two aligned words have no word order to measure: they are skipped, and
    their number is returned beside the scores.
    """
    scores, skipped = [], 0
    for src, tgt in pairs:
        edges = match_alignment(src, tgt)
        if len(edges) < 2:
            skipped += 1
            continue
        scores.append(kendall_tau_distance(alignment_permutation(edges)))
    return scores, skipped


class Correlation(NamedTuple):
    r: float
    p_value: float
    n: int  # number of languages


def correlation(tau: dict[str, float], accuracy: dict[str, float],
                exclude: tuple[str, ...] = ()) -> Correlation:
    """Pearson r between tau and accuracy over the languages both have, minus `exclude`."""
    langs = sorted((tau.keys() & accuracy.keys()) - set(exclude))
    if len(langs) < 3:
        raise ValueError(f"a correlation needs at least 3 languages with both a Kendall's tau and "
                         f"an accuracy; got {langs or 'none'}")
    for name, values in (("accuracy", accuracy), ("Kendall's tau", tau)):
        if len({values[lang] for lang in langs}) == 1:  # Pearson's r is undefined (0 / 0)
            raise ValueError(f"no correlation: every language has the same {name} "
                             f"({values[langs[0]]:g}), so Pearson's r is undefined")
    r, p = pearsonr([tau[lang] for lang in langs], [accuracy[lang] for lang in langs])
    return Correlation(float(r), float(p), len(langs))


PEARSON = {"with_en": (), "without_en": ("en",)}  # the paper's two figures: languages left out


def correlations(tau: dict[str, float], accuracy: dict[str, float]) -> dict[str, Correlation | str]:
    """The paper's two figures, with English (`with_en`) and without it (`without_en`): each a
    Correlation, or why there is none (fewer than 3 languages with both numbers)."""
    found: dict[str, Correlation | str] = {}
    for name, exclude in PEARSON.items():
        try:
            found[name] = correlation(tau, accuracy, exclude)
        except ValueError as err:
            found[name] = str(err)
    return found


# --- Table 4 of an encoder ------------------------------------------------------------------

def pair_tau(src: torch.Tensor, tgt: torch.Tensor) -> float | None:
    """One sentence pair's score; None when it has fewer than two aligned words (skipped)."""
    taus, _ = sentence_taus([(src, tgt)])
    return taus[0] if taus else None


def sentence_scores(encoder: Encoder, texts: dict[str, list[str]],
                    layer: int) -> dict[str, list[float | None]]:
    """Kendall's tau distance of every sentence pair en → lang, index-parallel with the data."""
    english = encoder.word_vectors(texts["en"], "en", layer)
    scores = {}
    for lang, lines in texts.items():
        if lang != "en":
            target = encoder.word_vectors(lines, lang, layer)
            with single_threaded():
                scores[lang] = [pair_tau(s, t) for s, t in zip(english, target, strict=True)]
    return scores


def summarize(scores: dict[str, list[float | None]],
              accuracy: dict[str, float]) -> dict[str, dict]:
    """Table 4's rows: tau mean, std (over sentences, ddof 0), sentences, skipped, accuracy.

    English is 1.0 by definition: it is the source side of every pair.
    """
    table = {"en": {"tau": 1.0, "std": None, "sentences": None, "skipped": None,
                    "accuracy": accuracy.get("en")}}
    for lang, values in scores.items():
        kept = np.array([v for v in values if v is not None])
        if not len(kept):
            raise InputError(f"no en–{lang} sentence pair has two aligned words; check the "
                             f"{lang} sentences of the data")
        table[lang] = {"tau": float(kept.mean()), "std": float(kept.std()),
                       "sentences": len(kept), "skipped": len(values) - len(kept),
                       "accuracy": accuracy.get(lang)}
    return table


def table_correlations(table: dict[str, dict]) -> dict[str, Correlation | str]:
    """`correlations` of a `summarize` table's tau and accuracy columns."""
    return correlations({lang: row["tau"] for lang, row in table.items()},
                        {lang: row["accuracy"] for lang, row in table.items()
                         if row["accuracy"] is not None})
