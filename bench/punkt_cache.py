"""What does the cache of trained Punkt parameters save a `prepare`? (~/.cache/minimult/punkt)

Prepares the same lab slice twice in one process with an empty cache of its own: the first
trains Punkt on both splits' text (as without the cache, every time), the second reads the
parameters. Prints both times (wall and CPU) and the ratio.

    python bench/punkt_cache.py [--train-sentences 400] [--dev-sentences 120]
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

from minimult_ml.prepare import PrepareConfig, prepare


def timed_prepare(config: PrepareConfig) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as out:
        wall, cpu = time.perf_counter(), time.process_time()
        prepare(config, Path(out))
        return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-sentences", type=int, default=400)
    parser.add_argument("--dev-sentences", type=int, default=120)
    args = parser.parse_args()
    config = PrepareConfig(train_sentences=args.train_sentences,
                           dev_sentences=args.dev_sentences, vocab_size=400)
    with tempfile.TemporaryDirectory() as cache:
        os.environ["XDG_CACHE_HOME"] = cache
        cold = timed_prepare(config)
        warm = timed_prepare(config)
    print(f"prepare (lab, {args.train_sentences} train / {args.dev_sentences} dev sentences)")
    print(f"  Punkt trained (no cache) {cold[0]:6.1f} s wall {cold[1]:6.1f} CPU-s")
    print(f"  Punkt from the cache     {warm[0]:6.1f} s wall {warm[1]:6.1f} CPU-s")
    ratio = cold[0] / warm[0], cold[1] / warm[1]
    print(f"  ratio                    {ratio[0]:6.1f}× wall {ratio[1]:6.1f}× CPU")


if __name__ == "__main__":
    main()
