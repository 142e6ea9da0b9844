"""What does knn-replace masking add to a training step? (issue 5: target ≤ 5 % over original)

Trains the same steps with `exp=original` and `exp=knn-replace` on the same data in one process
and prints seconds per step and the ratio. The neighbour table only needs the right shape here
(its lookups cost the same whatever it holds), so a random one stands in for the knn-space run.

    python bench/knn_step_cost.py --data PREPARED_FOLDER [--steps 20] [--repeats 2] [--threads N]
"""

import argparse
import tempfile
import time
from pathlib import Path

import torch

from minimult_ml import experiments, training
from minimult_ml.prepare import Prepared, load


def seconds_per_step(exp: str, data: Prepared, steps: int, table: torch.Tensor) -> float:
    config = experiments.resolve(exp, max_steps=steps, log_every=steps)
    stamps: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        training.train(config, data.train, data.tokenizers, Path(tmp),
                       device=torch.device("cpu"), knn_table=table, progress=False,
                       log=lambda metrics, step: stamps.append(time.perf_counter()))
    return (stamps[-1] - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a folder written by prepare")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load(Path(args.data))
    v = data.languages.vocab_size
    table = torch.randint(5, v, (v, len(data.languages), 1))
    times: dict[str, list[float]] = {"original": [], "knn-replace": []}
    for _ in range(args.repeats):  # interleaved, so drifting machine load hits both alike
        for exp in times:
            times[exp].append(seconds_per_step(exp, data, args.steps, table))
    best = {exp: min(t) for exp, t in times.items()}
    for exp, t in times.items():
        print(f"{exp:12s} s/step: " + ", ".join(f"{x:.3f}" for x in t))
    print(f"knn-replace / original (best of {args.repeats}): "
          f"{best['knn-replace'] / best['original']:.3f}")


if __name__ == "__main__":
    main()
