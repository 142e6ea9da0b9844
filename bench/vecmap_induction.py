"""How fast is one VecMap dictionary induction at the real track's vocabulary size?

Unsupervised VecMap runs hundreds to thousands of inductions per language pair, so on a CPU this
step is most of knn-space's time on real languages. Ours reduces along rows only (the backward
direction reads the transposed similarity matrix); the obvious alternative reduces the one
matrix along its columns for the backward direction. Both are timed in one run, in CPU-seconds
on one thread, with and without VecMap's dropout, and must induce the same dictionary.

    python bench/vecmap_induction.py [--words 5000] [--dim 300] [--repeats 3]
"""

import argparse
import time
from collections.abc import Callable

import torch

from minimult_ml.crosslingual import _induce_dictionary, _normalise


def by_columns(a: torch.Tensor, b: torch.Tensor, k: int, keep_prob: float,
               generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The alternative: one similarity matrix, the backward direction along its columns."""
    sim = a @ b.T
    r_a, r_b = sim.topk(k, dim=1).values.mean(1), sim.topk(k, dim=0).values.mean(0)

    def dropout(m: torch.Tensor) -> torch.Tensor:
        keep = torch.rand(m.shape, generator=generator) < keep_prob
        return m if keep_prob >= 1 else torch.where(keep, m, 0.0)

    forward = dropout(sim - r_b / 2).argmax(1)
    backward = dropout(sim - r_a[:, None] / 2).argmax(0)
    return (torch.cat([torch.arange(len(a)), backward]),
            torch.cat([forward, torch.arange(len(b))]))


def cpu_seconds(fn: Callable[[float], object], keep_prob: float, repeats: int) -> float:
    start = time.process_time()
    for _ in range(repeats):
        fn(keep_prob)
    return (time.process_time() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=5000, help="per language (real quick: 5000)")
    parser.add_argument("--dim", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    x = _normalise(torch.randn(args.words, args.dim, generator=g))
    z = _normalise(torch.randn(args.words, args.dim, generator=g))
    ours = _induce_dictionary(x, z, 10, 1.0, g, chunk_size=max(4096, args.words))
    theirs = by_columns(x, z, 10, 1.0, g)
    same = torch.equal(ours[0], theirs[0]) and torch.equal(ours[1], theirs[1])
    assert same, "the two inductions give different dictionaries"
    print(f"{args.words} words × {args.dim} dims, one thread, CPU-seconds per induction "
          f"(mean of {args.repeats}); same dictionary without dropout: yes")
    print(f"{'keep_prob':>9}  {'rows (ours)':>11}  {'columns':>8}  ratio")
    for keep_prob in (0.1, 1.0):
        rows = cpu_seconds(lambda p: _induce_dictionary(x, z, 10, p, g, max(4096, args.words)),
                           keep_prob, args.repeats)
        columns = cpu_seconds(lambda p: by_columns(x, z, 10, p, g), keep_prob, args.repeats)
        print(f"{keep_prob:>9}  {rows:>11.2f}  {columns:>8.2f}  {columns / rows:.2f}×")


if __name__ == "__main__":
    main()
