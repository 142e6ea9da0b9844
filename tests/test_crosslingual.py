"""The static cross-lingual space: fastText, unsupervised VecMap, nearest neighbours."""

import random

import pytest
import torch

from minimult_ml.crosslingual import (
    _induce_dictionary,
    dictionary_precision,
    nearest_neighbours,
    train_fasttext,
    vecmap_unsupervised,
    word_vectors,
)


def clustered_space(n: int, d: int, generator: torch.Generator) -> torch.Tensor:
    """Words around a few topic centres with a decaying spectrum: the uneven similarity
    distributions that VecMap's initialisation relies on (isotropic noise would give none)."""
    centres = torch.randn(12, d, generator=generator)
    topic = torch.randint(len(centres), (n,), generator=generator)
    return centres[topic] + torch.randn(n, d, generator=generator) * torch.logspace(0, -1, d)


def rotated_copy(x: torch.Tensor, noise: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(z, gold): x rotated by a random orthogonal matrix, noised, rows shuffled; gold[i] is the
    row of z that holds word i."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(x.shape[1], x.shape[1], generator=g))
    perm = torch.randperm(len(x), generator=g)
    z = ((x + noise * torch.randn(x.shape, generator=g)) @ q)[perm]
    return z, torch.argsort(perm)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Small tensors on a shared machine: two OpenMP threads wait on each other at every op
    # (measured 91 s against 12 s for this file on 2 busy cores).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def space() -> torch.Tensor:
    return clustered_space(600, 32, torch.Generator().manual_seed(0))


def orthogonality_error(w: torch.Tensor) -> float:
    return (w.T @ w - torch.eye(len(w))).abs().max().item()


def test_vecmap_recovers_a_noisy_rotation_of_shuffled_rows(space):
    z, gold = rotated_copy(space, noise=0.05, seed=1)
    result = vecmap_unsupervised(space, z)
    assert dictionary_precision(nearest_neighbours(result.xw, result.zw, 1), gold) >= 0.99
    # Every phase of stochastic induction (keep 0.1 … 1.0) lasts more than 50 iterations.
    assert result.iterations > 5 * 50
    assert 0.99 < result.objective <= 1.0
    assert result.xw.shape == space.shape and result.wx.shape == (32, 32)


def test_vecmap_is_deterministic_for_a_seed(space):
    z, _ = rotated_copy(space, noise=0.05, seed=2)
    kw = dict(stochastic_interval=5)
    a, b = vecmap_unsupervised(space, z, **kw), vecmap_unsupervised(space, z, **kw)
    assert torch.equal(a.xw, b.xw) and torch.equal(a.zw, b.zw)
    assert a.iterations == b.iterations and a.objective == b.objective


def test_vecmap_reports_each_stage_of_its_stochastic_schedule(space):
    z, _ = rotated_copy(space, noise=0.05, seed=3)
    stages = []
    result = vecmap_unsupervised(space, z, stochastic_interval=5,
                                 on_stage=lambda *stage: stages.append(stage))
    assert [keep for _, keep, _ in stages] == [0.1, 0.2, 0.4, 0.8, 1.0]
    iterations = [it for it, _, _ in stages]
    assert iterations == sorted(iterations) and iterations[-1] == result.iterations
    objectives = [obj for _, _, obj in stages]
    assert objectives == sorted(objectives)  # the best so far never falls


def test_the_mapped_spaces_are_the_inputs_times_the_maps(space):
    z, _ = rotated_copy(space, noise=0.05, seed=3)
    result = vecmap_unsupervised(space, z, stochastic_interval=5)
    # The maps act on the normalised inputs: unit length, centred, unit length.
    x = torch.nn.functional.normalize(space, dim=1)
    x = torch.nn.functional.normalize(x - x.mean(0), dim=1)
    torch.testing.assert_close(result.xw, x @ result.wx)


def test_final_maps_are_orthogonal_without_reweighting(space):
    z, _ = rotated_copy(space, noise=0.05, seed=4)
    for whiten in (False, True):  # de-whitening undoes whitening when nothing is re-weighted
        result = vecmap_unsupervised(space, z, stochastic_interval=5, whiten=whiten,
                                     src_reweight=0.0, trg_reweight=0.0)
        assert orthogonality_error(result.wx) < 1e-4
        assert orthogonality_error(result.wz) < 1e-4


def test_reweighting_scales_both_sides_alike(space):
    # With noise the whitened cross-covariance has singular values s < 1: the default re-weighted
    # maps are not orthogonal, but both scale volumes by prod(s)^0.5.
    z, _ = rotated_copy(space, noise=0.05, seed=5)
    result = vecmap_unsupervised(space, z, stochastic_interval=5)
    det_x, det_z = result.wx.double().det().abs(), result.wz.double().det().abs()
    assert orthogonality_error(result.wx) > 1e-2
    assert det_x < 0.99
    torch.testing.assert_close(det_x, det_z, rtol=1e-4, atol=0)


def test_isometric_spaces_map_orthogonally_onto_each_other(space):
    # Without noise every singular value is 1: re-weighting is the identity, the maps are
    # rotations, and each word lands on its translation.
    z, gold = rotated_copy(space, noise=0.0, seed=6)
    result = vecmap_unsupervised(space, z, stochastic_interval=5)
    assert orthogonality_error(result.wx) < 1e-4 and orthogonality_error(result.wz) < 1e-4
    torch.testing.assert_close(result.xw, result.zw[gold], atol=1e-4, rtol=0)


def csls_dictionary_by_loops(a: torch.Tensor, b: torch.Tensor, k: int):
    """VecMap's dictionary induction without dropout, one similarity at a time."""
    sim = [[float(a[i] @ b[j]) for j in range(len(b))] for i in range(len(a))]
    columns = [[row[j] for row in sim] for j in range(len(b))]
    r_a = [sum(sorted(row, reverse=True)[:k]) / k for row in sim]
    r_b = [sum(sorted(col, reverse=True)[:k]) / k for col in columns]

    def csls(i: int, j: int) -> float:
        return 2 * sim[i][j] - r_a[i] - r_b[j]

    forward = [max(range(len(b)), key=lambda j: csls(i, j)) for i in range(len(a))]
    backward = [max(range(len(a)), key=lambda i: csls(i, j)) for j in range(len(b))]
    objective = (sum(map(max, sim)) / len(a) + sum(map(max, columns)) / len(b)) / 2
    return list(range(len(a))) + backward, forward + list(range(len(b))), objective


@pytest.mark.parametrize("chunk_size", [4096, 7])  # one matrix; chunks of rows both ways
def test_dictionary_induction_matches_a_loop_over_every_pair(chunk_size):
    g = torch.Generator().manual_seed(3)
    a = torch.nn.functional.normalize(torch.randn(20, 8, generator=g), dim=1)
    b = torch.nn.functional.normalize(torch.randn(23, 8, generator=g), dim=1)
    src, trg, objective = _induce_dictionary(a, b, 3, 1.0, g, chunk_size)
    want_src, want_trg, want_objective = csls_dictionary_by_loops(a, b, 3)
    assert src.tolist() == want_src and trg.tolist() == want_trg
    assert objective == pytest.approx(want_objective, abs=1e-6)


def test_dictionary_dropout_is_seeded_and_keeps_only_what_it_draws():
    g = torch.Generator().manual_seed(4)
    a = torch.nn.functional.normalize(torch.randn(30, 8, generator=g), dim=1)
    b = torch.nn.functional.normalize(torch.randn(30, 8, generator=g), dim=1)
    runs = [_induce_dictionary(a, b, 3, 0.3, torch.Generator().manual_seed(5), 4096)
            for _ in range(2)]
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
    full = _induce_dictionary(a, b, 3, 1.0, g, 4096)
    assert not torch.equal(runs[0][1], full[1])  # 70 % of the similarities dropped changes it
    assert runs[0][2] == full[2]  # the objective is taken before dropout


def test_nearest_neighbours_match_a_brute_force_loop():
    g = torch.Generator().manual_seed(0)
    src, tgt = torch.randn(23, 8, generator=g), torch.randn(31, 8, generator=g) * 3
    got = nearest_neighbours(src, tgt, k=4, chunk_size=5)
    for i, s in enumerate(src):
        cos = [float(s @ t / (s.norm() * t.norm())) for t in tgt]
        assert got[i].tolist() == sorted(range(len(tgt)), key=lambda j: -cos[j])[:4]


def test_dictionary_precision_counts_first_neighbours():
    neighbours = torch.tensor([[0, 1], [2, 1], [2, 0], [0, 3]])
    gold = torch.tensor([0, 1, 2, 3])
    assert dictionary_precision(neighbours, gold) == 0.5
    assert dictionary_precision(neighbours, gold, torch.tensor([0, 2])) == 1.0


def toy_corpus(n: int) -> list[list[str]]:
    rng = random.Random(0)
    subjects, verbs, objects = ["he", "she", "they", "Jesus"], ["saw", "ate", "took"], [
        "bread", "fish", "wine", "the", "##s"]
    return [[rng.choice(subjects), rng.choice(verbs), rng.choice(objects), "."] for _ in range(n)]


def test_fasttext_is_deterministic_with_one_thread():
    corpus, words = toy_corpus(300), ["he", "bread", ".", "unseen-token"]
    # A small model: its input matrix comes from reused heap memory, which this fastText build
    # leaves partly uninitialised unless train_fasttext zero-fills it (vectors of 1e24 or NaN).
    kw = dict(dim=16, epoch=3, bucket=1000)
    a, b = (word_vectors(train_fasttext(corpus, **kw), words) for _ in range(2))
    c = word_vectors(train_fasttext(corpus, seed=1, **kw), words)
    assert a.shape == (4, 16) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert a.abs().max() < 1
    assert not torch.equal(a, c)  # seeds 0 and 1 differ (fastText itself conflates them)
    assert a[3].norm() > 0  # a token absent from the corpus still has its subword vector


def test_fasttext_rejects_unknown_arguments_and_empty_corpora():
    with pytest.raises(TypeError, match="min_cont"):
        train_fasttext(toy_corpus(10), min_cont=1)
    with pytest.raises(ValueError, match="no tokens"):
        train_fasttext([[], []])
