"""Pretraining throughput: our loop (fp32 and fast) vs Hugging Face `Trainer`, against the
machine's measured matmul peak (DESIGN §8, issue 17).

One process, the same prepared corpus (the lab's: English + its Fake-English copy as separate
examples; or a real-track one from `minimult prepare --languages en,de,hi …` with --data and a
real-track exp such as 0-base), the same model config, batch and step count. Contenders:
  ours-fp32    `minimult_ml.training.train`, fp32, eager (the reference path);
  ours-fast    the same loop with torch.compile and, where this device runs bf16 matrix products
               faster than fp32 (a GPU, a CPU with AMX / AVX-512 BF16), bf16 autocast;
  trainer-gbl  `Trainer` + `DataCollatorForLanguageModeling` (mlm .15, dynamic padding) +
               `BertForMaskedLM`, with `group_by_length` (the best a Trainer user would set);
  trainer      the same with the Trainer's default random sampler.
They run in turn, `--rounds` times, so that a shared machine's load falls on all of them alike;
ratios are of sums over the rounds. The first --warmup-steps steps of every run (compilation
included) are not timed: a timestamp after a device sync at the end of step w and of the last.

Reported per contender: real (non-padding) tokens per CPU-second (per second on a GPU), the
ratio to Trainer group_by_length, ms per step, the matmul FLOPs the step executes per
CPU-second (padded shapes; our head on the masked-position capacity, the Trainer's on every
position; the formula is checked against torch's FlopCounterMode first) and that as a fraction
of this machine's matmul peak in the contender's precision, measured here (a square matmul).

    python bench/pretrain_throughput.py [--steps 30] [--warmup-steps 10] [--rounds 2]
        [--batch-size 256] [--exp original] [--train-sentences 0] [--device auto]
        [--threads N] [--contenders ours-fp32,ours-fast,trainer-gbl,trainer]
        [--data PREPARED_FOLDER] [--markdown FILE]

With --threads 1 (the default on a CPU) tokens/CPU-s does not count threads spinning while their
partner waits for a core.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import resource
import shlex
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from torch.utils.flop_counter import FlopCounterMode
from transformers import (
    BertConfig,
    BertForMaskedLM,
    DataCollatorForLanguageModeling,
    Trainer,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)

from minimult_ml import experiments, training
from minimult_ml.data import training_examples
from minimult_ml.experiments import TrainConfig
from minimult_ml.languages import NUM_SPECIAL
from minimult_ml.masking import IGNORE, Masker
from minimult_ml.model import build_model, mlm_loss
from minimult_ml.prepare import PrepareConfig, Prepared, load, prepare

CONTENDERS = ("ours-fp32", "ours-fast", "trainer-gbl", "trainer")
LABELS = {"ours-fp32": "ours fp32", "ours-fast": "ours fast", "trainer-gbl":
          "Trainer group_by_length", "trainer": "Trainer default"}


@dataclass
class Result:
    tokens: int = 0  # real tokens in the timed steps
    flops: float = 0.0  # matmul FLOPs the timed steps execute
    seconds: float = 0.0  # wall
    cpu_seconds: float = 0.0  # this process's CPU time, all threads
    steps: int = 0
    peak_rss_mib: float = 0.0
    peak_gpu_mib: float = float("nan")

    def add(self, other: Result) -> None:
        for name in ("tokens", "flops", "seconds", "cpu_seconds", "steps"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.peak_rss_mib = max(self.peak_rss_mib, other.peak_rss_mib)
        self.peak_gpu_mib = np.fmax(self.peak_gpu_mib, other.peak_gpu_mib)


@dataclass
class Peak:
    """Matmul FLOPs per second and per CPU-second of a square product in one dtype."""

    per_s: float
    per_cpu_s: float


@dataclass
class Contender:
    name: str
    precision: str = "fp32"  # for the peak it is measured against
    note: str = ""
    rounds: list[Result] = field(default_factory=list)

    @property
    def total(self) -> Result:
        total = Result()
        for r in self.rounds:
            total.add(r)
        return total


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def mark() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def timed(result: Result, marks: dict[int, tuple[float, float]], start: int, end: int) -> None:
    result.seconds, result.cpu_seconds = (b - a for a, b in zip(marks[start], marks[end],
                                                                  strict=True))


def reset_peaks(device: torch.device) -> None:
    with contextlib.suppress(OSError):  # Linux: reset the peak RSS getrusage reports (VmHWM)
        Path("/proc/self/clear_refs").write_text("5")
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def record_peaks(result: Result, device: torch.device) -> None:
    result.peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.type == "cuda":
        result.peak_gpu_mib = torch.cuda.max_memory_allocated(device) / 2**20


def matmul_peak(dtype: torch.dtype, device: torch.device, budget_s: float = 1.0) -> Peak:
    """FLOPs per second and per CPU-second of an n×n product, repeated for about `budget_s`."""
    n = 8192 if device.type == "cuda" else 1024
    a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))
    a @ b  # warm-up
    sync(device)
    start, reps = mark(), 0
    while reps < 3 or mark()[0] - start[0] < budget_s:
        for _ in range(10 if device.type == "cuda" else 1):  # keep a GPU's queue full
            a @ b
            reps += 1
        sync(device)
    wall, cpu = (b - a for a, b in zip(start, mark(), strict=True))
    flops = 2 * n**3 * reps
    return Peak(flops / wall, flops / cpu)


def step_flops(config: BertConfig, rows: int, width: int, head_rows: int) -> int:
    """Matmul FLOPs of one forward and backward of BertForMaskedLM on `rows` sequences padded to
    `width`, with the vocabulary head on `head_rows` positions. Every product is done three
    times (forward; backward for the input and for the weight), attention's two as well."""
    h, i, v = config.hidden_size, config.intermediate_size, config.vocab_size
    tokens = rows * width
    layer = 2 * tokens * (4 * h * h + 2 * h * i) + 4 * rows * width * width * h
    head = 2 * head_rows * (h * h + h * v)
    return 3 * (config.num_hidden_layers * layer + head)


def check_step_flops(config: BertConfig) -> None:
    """`step_flops` against torch's own count of a forward and backward, our head and HF's."""
    model = BertForMaskedLM(config)
    rows, width = 3, 17
    ids = torch.randint(NUM_SPECIAL, config.vocab_size, (rows, width))
    labels = torch.where(torch.rand(ids.shape) < 0.3, ids, IGNORE)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    for head_rows, loss in ((11, lambda: mlm_loss(model, inputs, labels, 11)[0]),
                            (rows * width, lambda: model(**inputs, labels=labels).loss)):
        with FlopCounterMode(display=False) as counter:
            loss().backward()
        want = step_flops(config, rows, width, head_rows)
        if counter.get_total_flops() != want:
            raise AssertionError(f"step_flops {want:,} ≠ FlopCounterMode's "
                                 f"{counter.get_total_flops():,}: fix the formula")


def run_ours(config: TrainConfig, data: Prepared, warmup: int, device: torch.device) -> Result:
    """Our loop; its batches are a pure function of (seed, epoch), so their real tokens, widths
    and masked-position capacities are counted exactly beside it."""
    examples = training_examples(data.train, len(data.languages),
                                          parallel=not config.no_parallel)
    lengths = data.train.lengths
    batches: list[np.ndarray] = []
    epoch = 0
    while len(batches) < config.max_steps:
        batches += training.epoch_batches(examples, lengths, config.batch_size, config.seed, epoch)
        epoch += 1
    masker = Masker(data.languages, config.masking, config.shift_special, "cpu")
    model_config = build_model(config.size, data.languages.vocab_size, len(data.languages),
                               config.max_length).config
    micro = config.micro_batch_size or config.batch_size
    result = Result()
    for batch in batches[warmup:config.max_steps]:
        batch_lengths = lengths[batch[:, 0]]
        width = int(batch_lengths.max())
        head = sum(masker.capacity(int(batch_lengths[i:i + micro].sum()))
                   for i in range(0, len(batch), micro))
        result.tokens += int(batch_lengths.sum())
        result.flops += step_flops(model_config, len(batch), width, head)
        result.steps += 1
    marks: dict[int, tuple[float, float]] = {}

    def log(metrics: dict[str, float], step: int) -> None:  # runs after the loop's host sync
        sync(device)
        marks[step] = mark()

    reset_peaks(device)
    with tempfile.TemporaryDirectory() as out:
        training.train(config, data.train, data.tokenizers, Path(out),
                       device=device, log=log, progress=False)
    timed(result, marks, warmup, config.max_steps)
    record_peaks(result, device)
    return result


def hf_dataset(data: Prepared) -> Dataset:
    """Every training example (the lab: each sentence in English and in Fake-English) in global
    ids, specials shared."""
    examples = training_examples(data.train, len(data.languages), parallel=True)
    offsets = data.languages.offsets().numpy()
    ids, starts = data.train.ids.astype(np.int64), data.train.offsets
    rows = []
    for sentence, lang in examples:
        local = ids[starts[sentence]:starts[sentence + 1]]
        rows.append(np.where(local >= NUM_SPECIAL, local + offsets[lang], local).tolist())
    # special_tokens_mask precomputed, as the collator's docs advise (its fast path).
    special = [[int(t < NUM_SPECIAL) for t in r] for r in rows]
    return Dataset.from_dict({"input_ids": rows, "special_tokens_mask": special})


class Timer(TrainerCallback):
    """A timestamp after each optimizer step (after a device sync), as our loop's `log` takes."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.marks = device, {}  # step → (wall, CPU) time

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    **kwargs: object) -> None:
        sync(self.device)
        self.marks[state.global_step] = mark()


def run_trainer(config: TrainConfig, data: Prepared, dataset: Dataset, warmup: int,
                device: torch.device, sampler: str) -> Result:
    model = build_model(config.size, data.languages.vocab_size, len(data.languages),
                        config.max_length, config.seed)
    collator = DataCollatorForLanguageModeling(data.tokenizer,
                                               mlm_probability=config.masking.mlm_probability)
    consumed: list[tuple[int, int, int]] = []  # (real tokens, rows, width) per collated batch

    def counting_collator(features: list[dict]) -> dict[str, torch.Tensor]:
        batch = collator(features)
        consumed.append((int(batch["attention_mask"].sum()), *batch["input_ids"].shape))
        return batch

    timer = Timer(device)
    accumulate = config.batch_size // (config.micro_batch_size or config.batch_size)
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, max_steps=config.max_steps, seed=config.seed,
            per_device_train_batch_size=config.batch_size // accumulate,
            gradient_accumulation_steps=accumulate, learning_rate=config.lr,
            warmup_steps=config.warmup_steps, weight_decay=config.weight_decay,
            adam_epsilon=config.adam_eps, max_grad_norm=1.0,
            eval_strategy="no", save_strategy="no", report_to=[], dataloader_num_workers=0,
            bf16=device.type == "cuda", use_cpu=device.type == "cpu", disable_tqdm=True,
            train_sampling_strategy=sampler,
            remove_unused_columns=False)  # keep special_tokens_mask for the collator
        trainer = Trainer(model=model, args=args, data_collator=counting_collator,
                          train_dataset=dataset, callbacks=[timer])
        reset_peaks(device)
        trainer.train()
    result = Result(steps=config.max_steps - warmup)
    for tokens, rows, width in consumed[warmup * accumulate:config.max_steps * accumulate]:
        result.tokens += tokens
        result.flops += step_flops(model.config, rows, width, rows * width)
    timed(result, timer.marks, warmup, config.max_steps)
    record_peaks(result, device)
    return result


def fast_precision(device: torch.device, peaks: dict[str, Peak]) -> str:
    """bf16 where this device multiplies bf16 matrices faster than fp32 ones (measured)."""
    faster = peaks["bf16"].per_s > peaks["fp32"].per_s
    return "bf16" if device.type == "cuda" or faster else "fp32"


def table(contenders: list[Contender], peaks: dict[str, Peak], cuda: bool) -> list[str]:
    """The markdown table: per CPU-second on a CPU (steady on a shared machine), per second on
    a GPU."""
    unit = "s" if cuda else "CPU-s"
    baseline = next((c.total for c in contenders if c.name == "trainer-gbl"), None)

    def per(r: Result, x: float) -> float:
        return x / (r.seconds if cuda else r.cpu_seconds)

    lines = [f"| contender | tokens/{unit} | × Trainer gbl | ms/step | GFLOP/{unit} | "
             "of matmul peak | peak RSS MiB | peak GPU MiB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for c in contenders:
        r = c.total
        peak = peaks[c.precision].per_s if cuda else peaks[c.precision].per_cpu_s
        ratio = per(r, r.tokens) / per(baseline, baseline.tokens) if baseline else float("nan")
        gpu = "–" if np.isnan(r.peak_gpu_mib) else f"{r.peak_gpu_mib:,.0f}"
        lines.append(
            f"| {LABELS[c.name]}{c.note} | {per(r, r.tokens):,.0f} | {ratio:.2f} | "
            f"{1000 * (r.seconds if cuda else r.cpu_seconds) / r.steps:,.0f} | "
            f"{per(r, r.flops) / 1e9:,.1f} | {per(r, r.flops) / peak:.0%} ({c.precision}) | "
            f"{r.peak_rss_mib:,.0f} | {gpu} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps of each run")
    parser.add_argument("--warmup-steps", type=int, default=10, help="excluded from timing")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--micro-batch-size", type=int, default=0,
                        help="ours: gradient accumulation (0 = none); the Trainer gets the same "
                             "rows per pass and accumulation steps")
    parser.add_argument("--exp", default="original", help="its size and optimiser settings "
                        "apply to all; its input and masking modifications to ours only")
    parser.add_argument("--train-sentences", type=int, default=0, help="0 = whole corpus")
    parser.add_argument("--size", default="", help="model size (default: the exp's)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, …")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (default: 1 on a CPU, torch's own on a GPU)")
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--data", type=Path, help="a prepared folder (default: prepare anew)")
    parser.add_argument("--markdown", type=Path, help="append the table to this file")
    args = parser.parse_args()
    contender_names = [c for c in args.contenders.split(",") if c]
    if not 1 <= args.warmup_steps < args.steps:
        parser.error("need 1 ≤ --warmup-steps < --steps")
    if unknown := sorted(set(contender_names) - set(CONTENDERS)):
        parser.error(f"unknown contender(s) {', '.join(unknown)}; valid: {', '.join(CONTENDERS)}")
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu")
                          if args.device == "auto" else args.device)
    cuda = device.type == "cuda"
    torch.set_num_threads(args.threads or (torch.get_num_threads() if cuda else 1))

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.data or Path(tmp, "prepared")
        if args.data is None:
            prepare(PrepareConfig(), folder)
        data = load(folder)
    if args.train_sentences:
        data = Prepared(data.train.head(args.train_sentences), data.dev, data.tokenizers,
                        data.folder)
    # log_every = warmup: our loop's host sync (and our timestamp) falls on the warm-up boundary.
    track = "lab" if data.languages.is_lab else "real"
    base = experiments.resolve(args.exp, track, max_steps=args.steps, batch_size=args.batch_size,
                               log_every=args.warmup_steps, size=args.size or None,
                               micro_batch_size=args.micro_batch_size)
    check_step_flops(build_model(base.size, data.languages.vocab_size, len(data.languages),
                                 base.max_length).config)
    peaks = {"fp32": matmul_peak(torch.float32, device),
             "bf16": matmul_peak(torch.bfloat16, device)}
    fast = fast_precision(device, peaks)
    contenders = [Contender(name) for name in contender_names]
    for c in contenders:
        if c.name == "ours-fast":
            c.precision, c.note = fast, f" (compile, {fast})"
    print(f"{len(data.train)} sentences × {len(data.languages)} languages, batch "
          f"{args.batch_size}, {args.steps} steps ({args.warmup_steps} warm-up) × {args.rounds} "
          f"rounds, exp {base.exp}, size {base.size}, device {device}, "
          f"{torch.get_num_threads()} threads", flush=True)
    dataset = hf_dataset(data) if any(c.name.startswith("trainer") for c in contenders) else None
    for round_ in range(1, args.rounds + 1):
        for c in contenders:
            if c.name.startswith("ours"):
                config = dataclasses.replace(
                    base, compile="true" if c.name == "ours-fast" else "false",
                    precision=c.precision)
                result = run_ours(config, data, args.warmup_steps, device)
            else:
                result = run_trainer(base, data, dataset, args.warmup_steps, device,
                                     "group_by_length" if c.name == "trainer-gbl" else "random")
            c.rounds.append(result)
            print(f"round {round_}: {LABELS[c.name]:24s} "
                  f"{result.tokens / result.cpu_seconds:10,.0f} tokens/CPU-s "
                  f"{result.tokens / result.seconds:10,.0f} tokens/s", flush=True)

    lines = table(contenders, peaks, cuda)
    unit = "s" if cuda else "CPU-s"
    lines.append("")
    lines.append("Matmul peak (n×n product): " + ", ".join(
        f"{k} {(p.per_s if cuda else p.per_cpu_s) / 1e9:,.1f} GFLOP/{unit}"
        for k, p in peaks.items()))
    per_round = [
        f"{LABELS[c.name]}: " + ", ".join(
            f"{(r.tokens / (r.seconds if cuda else r.cpu_seconds)):,.0f}" for r in c.rounds)
        for c in contenders]
    lines.append(f"tokens/{unit} per round — " + "; ".join(per_round))
    lines.append("reproduce: `python bench/pretrain_throughput.py " + " ".join(
        f"--{k.replace('_', '-')} {shlex.quote(str(v))}" for k, v in vars(args).items()
        if v is not None and k != "markdown") + "`")
    print("\n" + "\n".join(lines))
    if args.markdown:
        with args.markdown.open("a") as f:
            f.write("\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
