"""μ over training for a schedule (issue 17): which cheap schedule already shows the paper's effect
(row 0 multilingual, rows 8 and 3 not), and does a faster path keep the science (the quality
guard: the fast path's final μ within 0.05 of fp32's).

Trains each exp with the library's loop on one prepared corpus, no tracking, evaluates every
--eval-every steps on the first --dev-sentences dev sentences (perplexities on as many training
sentences), and prints μ, retrieval/translation P@1 at layer 8 and perplexities per checkpoint,
with the wall and CPU time of each exp's training.

    python bench/schedule_probe.py --data PREPARED_FOLDER [--exps 0,8,3] [--train-sentences 0]
        [--epochs 1] [--batch-size 64] [--eval-every 200] [--dev-sentences 300]
        [--compile false] [--precision fp32] [--seed 42] [--threads 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from transformers import BertForMaskedLM

from minimult_ml import experiments, training
from minimult_ml.data import training_examples
from minimult_ml.evaluation import evaluate
from minimult_ml.prepare import Prepared, load


def probe(exp: str, data: Prepared, args: argparse.Namespace) -> list[str]:
    config = experiments.resolve(exp, epochs=args.epochs, batch_size=args.batch_size,
                                 checkpoint_every=args.eval_every, seed=args.seed,
                                 compile=args.compile, precision=args.precision,
                                 log_every=min(10, args.eval_every))
    dev, train_part = data.dev.head(args.dev_sentences), data.train.head(args.dev_sentences)
    lines: list[str] = []
    paused = [0.0, 0.0]  # evaluation's wall and CPU time, not training's

    def on_checkpoint(step: int, folder: Path) -> None:
        start = time.perf_counter(), time.process_time()
        model = BertForMaskedLM.from_pretrained(folder)
        scores, _ = evaluate(model, config, data.languages, train_part, dev,
                             device=torch.device("cpu"))
        lines.append(f"| {config.paper_id} | {step:,} | {step / per_epoch:.1f} | "
                     f"{scores['mult_score']:.3f} | {scores['retrieval_p1/L8']:.3f} | "
                     f"{scores['translation_p1/L8']:.3f} | {scores['ppl/train']:.1f} | "
                     f"{scores['ppl/dev']:.1f} |")
        print(lines[-1], flush=True)
        paused[0] += time.perf_counter() - start[0]
        paused[1] += time.process_time() - start[1]

    examples = training_examples(data.train, len(data.languages),
                                 parallel=not config.no_parallel)
    per_epoch = training.steps_per_epoch(len(examples), config.batch_size)
    start = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as out:
        result = training.train(config, data.train, data.tokenizers, Path(out),
                                device=torch.device("cpu"), on_checkpoint=on_checkpoint,
                                progress=False)
    wall = time.perf_counter() - start[0] - paused[0]
    cpu = time.process_time() - start[1] - paused[1]
    lines.append(f"row {config.paper_id}: {result.step:,} steps, training {wall:,.0f} s wall, "
                 f"{cpu:,.0f} CPU-s; evaluation {paused[0]:,.0f} s")
    print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a folder written by prepare")
    parser.add_argument("--exps", default="0,8,3")
    parser.add_argument("--train-sentences", type=int, default=0, help="0 = all")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--eval-every", type=int, default=200)
    parser.add_argument("--dev-sentences", type=int, default=300)
    parser.add_argument("--compile", default="false", choices=["auto", "true", "false"])
    parser.add_argument("--precision", default="fp32", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load(args.data)
    if args.train_sentences:
        data = Prepared(data.train.head(args.train_sentences), data.dev, data.tokenizers,
                        data.folder)
    header = ["| row | step | epoch | μ | retrieval P@1 L8 | translation P@1 L8 | ppl train | "
              "ppl dev |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    print("\n".join(header), flush=True)
    lines = [line for exp in args.exps.split(",") for line in probe(exp, data, args)]
    print("\n" + "\n".join(header + [x for x in lines if x.startswith("|")]
                           + [x for x in lines if not x.startswith("|")]))


if __name__ == "__main__":
    main()
