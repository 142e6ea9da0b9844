"""The first-GPU check (issue 17): the CUDA paths, `original` at the paper's 100 epochs timed,
`evaluate` on 10,000 dev pairs, GPU memory; a section appended to bench/RESULTS.md.
bench/gpu_check.sh runs this and then the throughput comparison with the Trainer.

    python bench/gpu_check.py [--smoke] [--data PREPARED_FOLDER] [--results FILE]

--smoke runs the same steps on the CPU at toy sizes (one epoch of a few hundred sentences,
no torch.compile: compiling takes minutes on a CPU), so that tests keep the script working.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch
from transformers import BertForMaskedLM

from minimult_ml import experiments, training
from minimult_ml.evaluation import evaluate
from minimult_ml.experiments import TrainConfig
from minimult_ml.model import build_model
from minimult_ml.prepare import PrepareConfig, Prepared, load, prepare

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Settings:
    prepare: PrepareConfig
    path_steps: int  # steps of each CUDA-path check
    overrides: dict[str, object]  # of `original` for the timed full run
    compile: str  # the fast path's torch.compile
    precision: str


FULL = Settings(PrepareConfig(), 50, {}, "true", "bf16")
SMOKE = Settings(PrepareConfig(train_sentences=200, dev_sentences=60, vocab_size=400), 2,
                 {"epochs": 1, "batch_size": 32}, "false", "bf16")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, work: Callable[[], T]) -> tuple[T, float]:
    sync(device)
    start = time.perf_counter()
    out = work()
    sync(device)
    return out, time.perf_counter() - start


def losses_of(config: TrainConfig, data: Prepared, device: torch.device,
              out: Path) -> tuple[list[float], training.TrainResult]:
    losses: list[float] = []
    result = training.train(config, data.train, data.tokenizers, out, device=device,
                            log=lambda m, s: losses.append(m["loss/train"]), progress=False)
    return losses, result


def check_paths(settings: Settings, data: Prepared, device: torch.device,
                tmp: Path) -> list[tuple[str, str, str]]:
    """fp32 eager, bf16 eager and the fast path (bf16 + compile) train `path_steps` steps from
    the same seed: finite losses, bf16 within 2 % of fp32; AdamW fused on CUDA."""
    rows = []
    base = experiments.resolve("original", max_steps=settings.path_steps, log_every=1,
                               **{k: v for k, v in settings.overrides.items() if k != "epochs"})
    reference: list[float] = []
    paths = dict.fromkeys([("fp32", "false"), ("bf16", "false"),
                           (settings.precision, settings.compile)])
    for precision, compile_ in paths:
        config = dataclasses.replace(base, precision=precision, compile=compile_)
        (losses, _), seconds = timed(device, lambda c=config, p=precision, k=compile_:
                                     losses_of(c, data, device, tmp / f"path-{p}-{k}"))
        reference = reference or losses
        gap = max(abs(a - b) / b for a, b in zip(losses, reference, strict=True))
        ok = all(math.isfinite(x) for x in losses) and gap < 0.02
        rows.append((f"{precision}, compile={compile_}: {settings.path_steps} steps",
                     "finite, within 2 % of fp32",
                     f"{'ok' if ok else 'FAILED'}: last loss {losses[-1]:.4f}, max gap "
                     f"{gap:.2%}, {seconds:.1f} s (compilation included)"))
    model = build_model("small", data.languages.vocab_size, len(data.languages)).to(device)
    fused = training.build_optimizer(model, base, device).defaults["fused"]
    rows.append(("AdamW", "fused on CUDA", f"fused={fused}"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="CPU, toy sizes")
    parser.add_argument("--data", type=Path, help="a prepared folder, prepared first if missing "
                        "(default: a temporary one)")
    parser.add_argument("--results", type=Path, default=Path("bench/RESULTS.md"))
    args = parser.parse_args()
    settings = SMOKE if args.smoke else FULL
    if not args.smoke and not torch.cuda.is_available():
        sys.exit("error: no CUDA device; run on a GPU machine, or pass --smoke for the CPU")
    device = torch.device("cpu" if args.smoke else "cuda")
    if args.smoke:
        torch.set_num_threads(1)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        folder = args.data or tmp / "prepared"
        if not folder.exists():
            _, seconds = timed(device, lambda: prepare(settings.prepare, folder))
            print(f"prepare: {seconds:.0f} s", flush=True)
        data = load(folder)
        rows = check_paths(settings, data, device, tmp)
        for row in rows:
            print(" | ".join(row), flush=True)

        # `original` at its full schedule on the fast path, as pretrain would train it.
        config = experiments.resolve("original", compile=settings.compile,
                                     precision=settings.precision, **settings.overrides)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        (_, result), seconds = timed(device, lambda: losses_of(config, data, device,
                                                               tmp / "full"))
        train_mib = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" \
            else float("nan")
        rows.append((f"`original`, {config.epochs} epochs ({result.step:,} steps, batch "
                     f"{config.batch_size}), compile={config.compile}, {config.precision}",
                     "≤ 60 s on an H100", f"{seconds:.1f} s, final loss {result.final_loss:.3f}"
                     f", peak GPU memory {train_mib:,.0f} MiB"))
        print(" | ".join(rows[-1]), flush=True)

        model = BertForMaskedLM.from_pretrained(tmp / "full" / "checkpoints" /
                                                f"step-{result.step}").to(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        times = []
        for _ in range(2):  # the first pays for CUDA's lazy initialisations
            (scores, _), seconds = timed(device, lambda: evaluate(
                model, config, data.languages, data.train, data.dev, device=device))
            times.append(seconds)
        eval_mib = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" \
            else float("nan")
        rows.append((f"`evaluate`, {len(data.dev):,} dev pairs (+ train perplexity)",
                     "≤ 3 s", f"{min(times):.2f} s (first {times[0]:.2f} s), μ "
                     f"{scores['mult_score']:.3f}, peak GPU memory {eval_mib:,.0f} MiB"))
        print(" | ".join(rows[-1]), flush=True)

    section = [f"\n## GPU check{' (smoke: CPU, toy sizes)' if args.smoke else ''}: {name}, "
               f"torch {torch.__version__}, {time.strftime('%Y-%m-%d %H:%M')}\n",
               "`bash bench/gpu_check.sh" + (" --smoke" if args.smoke else "") + "`\n",
               "| check | target | measured |", "|---|---|---|",
               *(f"| {a} | {b} | {c} |" for a, b, c in rows)]
    with args.results.open("a") as f:
        f.write("\n".join(section) + "\n")
    if any("FAILED" in c for _, _, c in rows):
        sys.exit("error: a CUDA path failed (see the table above)")


if __name__ == "__main__":
    main()
