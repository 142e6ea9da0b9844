"""The static cross-lingual space behind knn-replace (paper §4, Appendix A.3).

Each language gets fastText skipgram vectors trained on its WordPiece tokens; unsupervised VecMap
(Artetxe et al., 2018, ACL: "A robust self-learning method for fully unsupervised cross-lingual
mappings of word embeddings") maps two such spaces into one without any dictionary; the nearest
neighbours there (cosine) are the knn-replace candidates.

VecMap, as its reference implementation runs it with `--unsupervised`:
  1. normalise each space: unit length, mean centring, unit length;
  2. initial dictionary from the similarity distributions: each word of the most frequent
     `init_vocabulary` is described by its sorted row of sqrt(X Xᵀ), which does not depend on how
     the space is rotated; those descriptions are matched across languages by CSLS;
  3. self-learning: orthogonal Procrustes map on the dictionary, then a new dictionary by CSLS
     over the most frequent `vocabulary_cutoff` words, forward and backward, taking the union;
     similarities are dropped at random (kept with `keep_prob`, starting at 0.1 and doubled each
     time the objective stalls for `stochastic_interval` iterations) so early mistakes do not
     lock in; stop when it stalls with everything kept;
  4. a final map on the last dictionary: whitening, orthogonal mapping, re-weighting by the
     singular values, de-whitening.
Rows must be in frequency order (most frequent first): steps 2 and 3 look only at the head.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import fasttext
import numpy as np
import torch
import torch.nn.functional as F
from fasttext.FastText import _FastText, unsupervised_default
from torch import Tensor

from minimult_ml.data import TokenizedCorpus
from minimult_ml.errors import InputError, check_seed
from minimult_ml.languages import NUM_SPECIAL
from minimult_ml.prepare import Prepared
from minimult_ml.threads import single_threaded

# --------------------------------------------------------------------------------------------
# fastText

# fastText trains in a child process whose mallocs are zero-filled (glibc's MALLOC_PERTURB_=255
# fills each new block with 255 ^ 0xff = 0). fastText draws random values for only the first
# min(thread, 10)/10 of its input matrix; upstream the rest starts at zero, but this build
# (fasttext-numpy2 0.10.4) leaves it uninitialised. A matrix carved from reused heap memory (a
# small model, or a model trained after another in the same process) then starts from garbage:
# not reproducible, and it can diverge to NaN. A fresh 2.4 GB matrix is fresh zeroed pages, but
# the child makes every size safe. The Python wrapper also refuses fastText's `seed` argument,
# so the child sets it itself.
#
# The child dies with its parent (a `kill -9` of knn-space must not leave fastText running for
# minutes): on Linux the kernel sends it SIGKILL when the thread that started it ends
# (PR_SET_PDEATHSIG); checking the parent afterwards covers a parent that died before that.
_TRAIN_IN_CHILD = """
import ctypes, json, os, signal, sys
if sys.platform == "linux":
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() != int(sys.argv[3]):
        os._exit(1)
import fasttext_pybind
from fasttext.FastText import _FastText, _build_args
params = json.loads(sys.argv[1])
args = _build_args(params, set(params))
model = _FastText(args=args)
fasttext_pybind.train(model.f, args)
model.save_model(sys.argv[2])
"""


def train_fasttext(sentences: Iterable[Sequence[str]], dim: int = 300, epoch: int = 20,
                   seed: int = 0, threads: int = 1, **kw: float | int | str) -> _FastText:
    """A skipgram model of the token sequences; `kw` takes any other fastText argument by its
    fastText name (minn, maxn, bucket, lr, ...). Subword n-grams stay on: without them (maxn=0)
    two languages' spaces come out nearly identical and the knn-replace experiment degenerates.

    threads=1 is bit-for-bit reproducible; more threads train lock-free (Hogwild) and are not.
    """
    unknown = set(kw) - set(unsupervised_default)
    if unknown:
        raise TypeError(f"unknown fastText arguments {sorted(unknown)}")
    # minCount=1: every token of the corpus gets a vector of its own (fastText's default of 5
    # would leave rare WordPiece tokens with their n-grams only). fastText seeds minstd_rand
    # engines with the seed, and minstd_rand takes 0 for 1, so seeds 0 and 1 would coincide.
    params = {**unsupervised_default, "model": "skipgram", "dim": dim, "epoch": epoch,
              "thread": threads, "minCount": 1, "verbose": 0, **kw, "seed": seed + 1}
    with tempfile.TemporaryDirectory() as tmp:
        params["input"] = str(Path(tmp) / "corpus.txt")
        tokens = 0
        with open(params["input"], "w", encoding="utf-8") as f:  # streamed: corpora can be big
            for sentence in sentences:
                f.write(" ".join(sentence) + "\n")
                tokens += len(sentence)
        if not tokens:
            raise ValueError("train_fasttext: the corpus has no tokens")
        model_path = str(Path(tmp) / "model.bin")
        child = subprocess.run([sys.executable, "-c", _TRAIN_IN_CHILD, json.dumps(params),
                                model_path, str(os.getpid())], capture_output=True, text=True,
                               env={**os.environ, "MALLOC_PERTURB_": "255"})
        if child.returncode:
            raise RuntimeError(f"fastText training failed: {child.stderr.strip()[-2000:]}")
        return fasttext.load_model(model_path)


def word_vectors(model: _FastText, words: list[str]) -> Tensor:
    """[len(words), dim] float32, in the order given; words absent from the corpus get the sum of
    their n-gram vectors, so the whole vocabulary has a vector."""
    return torch.from_numpy(np.stack([model.get_word_vector(w) for w in words]))


# --------------------------------------------------------------------------------------------
# Unsupervised VecMap


@dataclass(frozen=True)
class VecMapResult:
    xw: Tensor  # the source space mapped: normalise(x) @ wx
    zw: Tensor  # the target space mapped: normalise(z) @ wz
    wx: Tensor  # [dim, dim]
    wz: Tensor  # [dim, dim]
    iterations: int  # self-learning iterations (dictionary inductions after the initial one)
    objective: float  # mean best cosine, both directions, at the last induction


def vecmap_unsupervised(x: Tensor, z: Tensor, *, init_vocabulary: int = 4000,
                        vocabulary_cutoff: int = 20000, csls_neighbourhood: int = 10,
                        threshold: float = 1e-6, stochastic_initial: float = 0.1,
                        stochastic_multiplier: float = 2.0, stochastic_interval: int = 50,
                        whiten: bool = True, src_reweight: float = 0.5,
                        trg_reweight: float = 0.5, chunk_size: int = 4096,
                        seed: int = 0,
                        on_stage: Callable[[int, float, float], None] = lambda *_: None
                        ) -> VecMapResult:
    """Map x [n, d] and z [m, d] (rows in frequency order) into one space, unsupervised.

    Defaults are the reference's `--unsupervised` recipe. Runs on the tensors' device; the
    similarity matrices are built `chunk_size` rows at a time. The final maps are orthogonal
    when src_reweight = trg_reweight = 0 (de-whitening then undoes the whitening exactly);
    re-weighting scales both sides by the singular values s of the whitened cross-covariance,
    so |det wx| = prod(s)^src_reweight and |det wz| = prod(s)^trg_reweight.
    `on_stage(iteration, keep_prob, best objective)` is called when a stage of the stochastic
    schedule ends (its number of iterations is not known in advance: minutes to hours on a CPU).
    """
    generator = torch.Generator(device=x.device).manual_seed(seed)
    x, z = _normalise(x), _normalise(z)

    def induce(a: Tensor, b: Tensor, keep_prob: float) -> tuple[Tensor, Tensor, float]:
        return _induce_dictionary(a, b, csls_neighbourhood, keep_prob, generator, chunk_size)

    head = min(len(x), len(z), init_vocabulary)
    src, trg, _ = induce(_similarity_distribution(x[:head]), _similarity_distribution(z[:head]),
                         1.0)

    keep_prob, best, last_improvement, it = stochastic_initial, -math.inf, 0, 1
    while True:
        if it - last_improvement > stochastic_interval:
            on_stage(it - 1, keep_prob, best)
            if keep_prob >= 1.0:
                break
            keep_prob = min(1.0, stochastic_multiplier * keep_prob)
            last_improvement = it
        w = _procrustes(x[src], z[trg])
        src, trg, objective = induce(x[:vocabulary_cutoff] @ w, z[:vocabulary_cutoff], keep_prob)
        if objective - best >= threshold:
            best, last_improvement = objective, it
        it += 1

    wx, wz = _reweighted_map(x[src], z[trg], whiten, src_reweight, trg_reweight)
    return VecMapResult(x @ wx, z @ wz, wx, wz, it - 1, objective)


def _normalise(m: Tensor) -> Tensor:
    m = F.normalize(m, dim=1)
    return F.normalize(m - m.mean(0), dim=1)


def _similarity_distribution(m: Tensor) -> Tensor:
    """Row i: the sorted similarities of word i to every word, normalised; sorting makes each
    row independent of which word is which. The similarities are those of sqrt(M Mᵀ), as in the
    reference, computed as M (MᵀM)^(-1/2) Mᵀ so that only a d×d matrix is decomposed."""
    root = m @ _gram_power(m, -0.5).to(m.dtype) @ m.T
    return _normalise(root.sort(dim=1).values)


def _chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def _dropout(sim: Tensor, keep_prob: float, generator: torch.Generator) -> Tensor:
    """`sim` with each entry kept with probability keep_prob (in place). As the reference,
    dropped similarities become 0, not -inf."""
    if keep_prob >= 1.0:
        return sim
    drop = torch.rand(sim.shape, generator=generator, device=sim.device) >= keep_prob
    return sim.masked_fill_(drop, 0.0)


SimilarityRows = Callable[[], Iterable[tuple[slice, Tensor]]]


def _induce_dictionary(a: Tensor, b: Tensor, k: int, keep_prob: float,
                       generator: torch.Generator, chunk_size: int
                       ) -> tuple[Tensor, Tensor, float]:
    """The union of the forward (each row of a → its CSLS-best row of b) and backward
    dictionaries, as (a indices, b indices), and the objective (mean best plain cosine of both
    directions). CSLS(i, j) = 2 cos(i, j) − r_a(i) − r_b(j), r the mean cosine to the k nearest
    rows of the other side; for an argmax over j only r_b matters, and over i only r_a.

    Every reduction runs along rows: PyTorch reduces a row-major matrix along its columns
    about 10× slower, so the backward direction reads the rows of b·aᵀ. When both sides fit in
    one chunk, a·bᵀ is computed once and b·aᵀ is its transposed copy (1.5–2.3× faster than
    column reductions at 5,000 words: bench/vecmap_induction.py); otherwise each direction's
    chunks of rows are computed twice, for the neighbourhoods and for the argmax, and never
    held whole."""
    if max(len(a), len(b)) <= chunk_size:
        ab = a @ b.T
        whole_ab, whole_ba = [(slice(0, len(a)), ab)], [(slice(0, len(b)), ab.T.contiguous())]
        forward_rows, backward_rows = (lambda: whole_ab), (lambda: whole_ba)
    else:
        forward_rows, backward_rows = _rows_of(a, b, chunk_size), _rows_of(b, a, chunk_size)
    r_a, best_a = _neighbourhood(forward_rows, len(a), k, a)
    r_b, best_b = _neighbourhood(backward_rows, len(b), k, a)
    forward = _csls_argmax(forward_rows, r_b, len(a), keep_prob, generator)  # in place: last
    backward = _csls_argmax(backward_rows, r_a, len(b), keep_prob, generator)
    src = torch.cat([torch.arange(len(a), device=a.device), backward])
    trg = torch.cat([forward, torch.arange(len(b), device=a.device)])
    return src, trg, (best_a.mean() + best_b.mean()).item() / 2


def _rows_of(x: Tensor, y: Tensor, chunk_size: int) -> SimilarityRows:
    """x·yᵀ, `chunk_size` rows at a time, computed anew on each pass."""
    return lambda: ((rows, x[rows] @ y.T) for rows in _chunks(len(x), chunk_size))


def _neighbourhood(similarity_rows: SimilarityRows, n: int, k: int, like: Tensor
                   ) -> tuple[Tensor, Tensor]:
    """Per row: the mean of its k largest similarities (0 when k = 0) and its largest."""
    r, best = like.new_zeros(n), like.new_empty(n)
    for rows, sim in similarity_rows():
        top = sim.topk(max(k, 1), dim=1).values
        best[rows] = top[:, 0]
        if k:
            r[rows] = top.mean(1)
    return r, best


def _csls_argmax(similarity_rows: SimilarityRows, r_other: Tensor, n: int, keep_prob: float,
                 generator: torch.Generator) -> Tensor:
    """Per row: the column of the best CSLS score, after dropout (overwrites the rows)."""
    best = torch.empty(n, dtype=torch.long, device=r_other.device)
    for rows, sim in similarity_rows():
        best[rows] = _dropout(sim.sub_(r_other / 2), keep_prob, generator).argmax(1)
    return best


def _svd(m: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """SVD of a d×d matrix, in float64. On the CPU in one thread: threads buy nothing at this
    size, and MKL's threaded LAPACK stalls when the cores are busy with other work (300×300:
    2.8 s with 2 threads against 15 ms with one, measured on a shared 2-core machine)."""
    with single_threaded() if m.device.type == "cpu" else contextlib.nullcontext():
        return torch.linalg.svd(m.double())


def _gram_power(m: Tensor, p: float) -> Tensor:
    """(mᵀm)^p in float64 for p = ±1/2, from the SVD of the d×d Gram matrix; directions that m
    does not span (a rank-deficient m) get 0."""
    _, s, vt = _svd(m.T @ m)
    spanned = s > s[0] * 1e-12
    return vt.T @ torch.diag(torch.where(spanned, s, 1.0).pow(p) * spanned) @ vt


def _procrustes(xd: Tensor, zd: Tensor) -> Tensor:
    """The orthogonal W minimising ‖xd W − zd‖."""
    u, _, vt = _svd(xd.T @ zd)
    return (u @ vt).to(xd.dtype)


def _reweighted_map(xd: Tensor, zd: Tensor, whiten: bool, src_reweight: float,
                    trg_reweight: float) -> tuple[Tensor, Tensor]:
    """The final maps (wx, wz) from the dictionary pairs xd[i] ↔ zd[i]: whiten each side, map
    both orthogonally onto the cross-covariance's singular directions, scale by s^reweight,
    de-whiten each side with its own whitening seen through its orthogonal map."""
    dtype, xd, zd = xd.dtype, xd.double(), zd.double()
    eye = torch.eye(xd.shape[1], dtype=xd.dtype, device=xd.device)
    wx1, wx1_inv = (_gram_power(xd, -0.5), _gram_power(xd, 0.5)) if whiten else (eye, eye)
    wz1, wz1_inv = (_gram_power(zd, -0.5), _gram_power(zd, 0.5)) if whiten else (eye, eye)
    u, s, vt = _svd((xd @ wx1).T @ (zd @ wz1))
    v = vt.T
    wx = wx1 @ u @ torch.diag(s**src_reweight) @ u.T @ wx1_inv @ u
    wz = wz1 @ v @ torch.diag(s**trg_reweight) @ v.T @ wz1_inv @ v
    return wx.to(dtype), wz.to(dtype)


# --------------------------------------------------------------------------------------------
# Neighbours and their quality


def nearest_neighbours(src: Tensor, tgt: Tensor, k: int, chunk_size: int = 4096) -> Tensor:
    """LongTensor [len(src), k]: for each src row, its k nearest tgt rows by cosine, nearest
    first."""
    src, tgt = F.normalize(src, dim=1), F.normalize(tgt, dim=1)
    out = torch.empty(len(src), k, dtype=torch.long, device=src.device)
    for rows in _chunks(len(src), chunk_size):
        out[rows] = (src[rows] @ tgt.T).topk(k, dim=1).indices
    return out


def dictionary_precision(neighbours: Tensor, gold: Tensor, rows: Tensor | None = None) -> float:
    """precision@1: the share of rows whose first neighbour is the gold index (over `rows` only,
    e.g. the 1,000 most frequent, when given)."""
    hits = neighbours[:, 0] == gold
    return (hits if rows is None else hits[rows]).float().mean().item()


# --------------------------------------------------------------------------------------------
# The knn-replace table of a prepared dataset


@dataclass(frozen=True)
class KnnSpaceConfig:
    """What the neighbour table depends on (besides the data); logged as params."""

    k: int = 1  # neighbours per token and language: 1 in the lab, 5 in the real track
    dim: int = 300  # paper Table 8
    epoch: int = 20  # fastText's default 5 leaves the spaces too noisy to map (DESIGN §5)
    bucket: int = 2_000_000  # fastText's default number of n-gram hash buckets
    seed: int = 0  # language i's fastText uses seed + i: independently trained spaces
    threads: int = 1  # per fastText model: 1 is bit-for-bit reproducible, more are faster

    def validate(self) -> None:
        check_seed(self.seed)
        for name in ("k", "dim", "epoch", "bucket", "threads"):
            if getattr(self, name) < 1:
                raise InputError(f"knn space: {name} must be ≥ 1, got {getattr(self, name)}")


def build_knn_table(corpora: list[Iterable[Sequence[str]]], vocabularies: list[list[str]],
                    offsets: list[int], config: KnnSpaceConfig, vocab_size: int,
                    num_special: int, codes: Sequence[str] = (),
                    log: Callable[[str], None] = lambda line: None) -> tuple[Tensor, dict]:
    """The neighbour table of knn-replace and a report of how it was built.

    Language i has a token corpus `corpora[i]` (read once, as it streams into fastText) and a
    vocabulary `vocabularies[i]` (its local ids in order; the first `num_special` are specials,
    never neighbours). Each pair of languages is
    mapped by its own VecMap run. Returns table [vocab_size, languages, k] of global ids:
    table[id, j] = the k nearest neighbours of token `id` among language j's tokens (rows of
    specials and of a token's own language point at the token itself: masking never uses them).
    `log` gets a line at each stage of each pair's VecMap, which names languages by `codes`.
    """
    config.validate()
    n_lang = len(corpora)
    table = torch.arange(vocab_size).view(-1, 1, 1).repeat(1, n_lang, config.k)
    with ThreadPoolExecutor(n_lang) as pool:  # one single-threaded fastText per language
        models = list(pool.map(
            lambda i: train_fasttext(corpora[i], dim=config.dim, epoch=config.epoch,
                                     seed=config.seed + i, bucket=config.bucket,
                                     threads=config.threads), range(n_lang)))
    spaces = []
    for vocab, model in zip(vocabularies, models, strict=True):
        # VecMap reads frequency order (fastText counted the corpus); ties, such as tokens never
        # seen, keep id order.
        counts = Counter(dict(zip(*model.get_words(include_freq=True), strict=True)))
        order = sorted(range(num_special, len(vocab)), key=lambda i: (-counts[vocab[i]], i))
        spaces.append((torch.tensor(order), word_vectors(model, [vocab[i] for i in order])))
    report: dict = {"pairs": {}}
    names = list(codes) or [str(i) for i in range(n_lang)]
    start = time.perf_counter()
    for i, j in itertools.combinations(range(n_lang), 2):
        (rows_i, x), (rows_j, z) = spaces[i], spaces[j]

        def on_stage(it: int, keep_prob: float, objective: float,
                     pair: str = f"{names[i]}-{names[j]}") -> None:
            log(f"VecMap {pair}: {it} iterations, stage keep_prob={keep_prob:g} done "
                f"(objective {objective:.4f}, {time.perf_counter() - start:.0f} s)")

        result = vecmap_unsupervised(x, z, seed=config.seed, on_stage=on_stage)
        for (a, rows_a, xa), (b, rows_b, xb) in (((i, rows_i, result.xw), (j, rows_j, result.zw)),
                                                 ((j, rows_j, result.zw), (i, rows_i, result.xw))):
            neighbours = nearest_neighbours(xa, xb, config.k)
            table[offsets[a] + rows_a, b] = offsets[b] + rows_b[neighbours]
        report["pairs"][f"{i}-{j}"] = {"iterations": result.iterations,
                                       "objective": result.objective}
    return table, report


def shift_precision(table: Tensor, size: int, offset: int, num_special: int,
                    frequent: Tensor) -> dict[str, float]:
    """The lab's quality figures: language 1 is language 0 shifted by `offset`, so the gold
    neighbour of English id i is i + offset. precision@1 over all non-special tokens and over
    `frequent` (local ids, e.g. the 1,000 most frequent)."""
    english = torch.arange(num_special, size)
    first = table[english, 1, 0] - offset  # nearest Fake-English neighbour, as a local id
    hits = first == english
    top = torch.isin(english, frequent)
    return {"knn_precision_p1": hits.float().mean().item(),
            "knn_precision_p1_top1000": hits[top].float().mean().item()}


def identical_spelling_precision(table: Tensor, vocabularies: list[list[str]],
                                 offsets: list[int], a: int, b: int,
                                 num_special: int) -> tuple[float, int]:
    """precision@1 of the induced dictionary a → b on the weak gold of real languages: the tokens
    spelled identically in both vocabularies (names such as Abraham, numbers, punctuation), whose
    gold translation is that same spelling. Unsupervised VecMap never sees this dictionary.
    Returns the precision and the number of such tokens."""
    target = {t: i for i, t in enumerate(vocabularies[b]) if i >= num_special}
    pairs = [(i, target[t]) for i, t in enumerate(vocabularies[a])
             if i >= num_special and t in target]
    if not pairs:
        return 0.0, 0
    src, gold = (torch.tensor(x) for x in zip(*pairs, strict=True))
    first = table[offsets[a] + src, b, 0] - offsets[b]
    return (first == gold).float().mean().item(), len(pairs)


def sample_neighbours(table: Tensor, vocabularies: list[list[str]], offsets: list[int],
                      a: int, b: int, tokens: list[int]) -> list[list]:
    """[token, its neighbours in language b, nearest first] for the local ids `tokens` of a."""
    rows = table[offsets[a] + torch.tensor(tokens, dtype=torch.long), b] - offsets[b]
    return [[vocabularies[a][t], [vocabularies[b][n] for n in row.tolist()]]
            for t, row in zip(tokens, rows, strict=True)]


def weak_gold_report(table: Tensor, vocabularies: list[list[str]], offsets: list[int],
                     codes: list[str], counts: list[np.ndarray], num_special: int,
                     samples: int = 8) -> dict:
    """For each pair of real languages, both directions: identical-spelling precision@1
    (`knn_weak_p1/en-de`, `knn_weak_pairs/en-de`) and sample neighbours of the most frequent
    whole words of the first language (report["samples"]["en-de"])."""
    report: dict = {"samples": {}}
    for a, b in itertools.permutations(range(len(codes)), 2):
        pair = f"{codes[a]}-{codes[b]}"
        p1, n = identical_spelling_precision(table, vocabularies, offsets, a, b, num_special)
        report[f"knn_weak_p1/{pair}"] = p1
        report[f"knn_weak_pairs/{pair}"] = float(n)
        frequent = [int(i) for i in np.argsort(-counts[a], kind="stable")
                    if i >= num_special and vocabularies[a][i].isalpha()][:samples]
        report["samples"][pair] = sample_neighbours(table, vocabularies, offsets, a, b, frequent)
    return report


def _token_sentences(corpus: TokenizedCorpus, words: np.ndarray) -> Iterator[list[str]]:
    """Each sentence's tokens without [CLS] and [SEP], one sentence at a time (a gigabyte of
    text never becomes one list of strings)."""
    for i in range(len(corpus)):
        yield words[corpus.ids[corpus.offsets[i] + 1:corpus.offsets[i + 1] - 1]].tolist()


def prepared_knn_table(data: Prepared, config: KnnSpaceConfig,
                       log: Callable[[str], None] = lambda line: None) -> tuple[Tensor, dict]:
    """Every language's tokens of its training sentences → the neighbour table and a report.

    In the lab both languages read the same English sentences, each through its own block of
    ids; in the real track each language has sentences of its own.
    """
    vocab = np.array(data.tokenizer.convert_ids_to_tokens(list(range(data.languages.vocab_size))))
    corpora, vocabularies = [], []
    for k, lang in enumerate(data.languages.languages):
        words = vocab[lang.offset:lang.offset + lang.size]
        corpora.append(_token_sentences(data.train.language(k), words))
        vocabularies.append(words.tolist())
    start = time.perf_counter()
    table, report = build_knn_table(corpora, vocabularies,
                                    [lang.offset for lang in data.languages.languages], config,
                                    data.languages.vocab_size, NUM_SPECIAL,
                                    data.languages.codes, log)
    report["seconds"] = time.perf_counter() - start
    offsets = [lang.offset for lang in data.languages.languages]
    if data.languages.is_lab:  # the gold dictionary is the shift
        counts = np.bincount(data.train.ids, minlength=data.languages.languages[0].size)
        counts[:NUM_SPECIAL] = -1
        frequent = torch.from_numpy(np.argsort(-counts, kind="stable")[:1000])
        report |= shift_precision(table, data.languages.languages[0].size,
                                  offsets[1], NUM_SPECIAL, frequent)
    else:  # no gold dictionary between real languages: the identically spelled tokens
        counts = [np.bincount(data.train.language(k).ids, minlength=lang.size)
                  for k, lang in enumerate(data.languages.languages)]
        spellings = [[w.removeprefix(lang.prefix) for w in words] for lang, words
                     in zip(data.languages.languages, vocabularies, strict=True)]
        report |= weak_gold_report(table, spellings, offsets, data.languages.codes, counts,
                                   NUM_SPECIAL)
    return table, report
