"""Pretraining throughput: our loop vs the obvious Hugging Face alternative (DESIGN §8).

One process, the same prepared corpus (the lab's: English + its Fake-English copy as separate
examples; or a real-track one from `minimult prepare --languages en,de,hi …` with --data and a
real-track exp such as 0-base), the same model config, batch and step count:
  (a) `minimult_ml.training.train` (max_steps), and
  (b) `Trainer` + `DataCollatorForLanguageModeling` (mlm .15, dynamic padding) + `BertForMaskedLM`.
Prints real (non-padding) tokens per second (wall and CPU), time per step and peak memory of
each, and ours / Trainer. The first --warmup-steps steps of each are excluded from timing, by the
same rule for both: a timestamp after a device sync at the end of step w and of the last step.

    python bench/pretrain_throughput.py [--steps 60] [--warmup-steps 10] [--batch-size 256]
        [--exp original] [--train-sentences 0] [--device auto] [--threads N]
        [--hf-sampler random|group_by_length] [--data PREPARED_FOLDER]

On a shared machine wall time is noisy; tokens/CPU-s is steadier, and with --threads 1 it does
not count threads spinning while their partner waits for a core.
"""

import argparse
import resource
import shlex
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from transformers import (
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
from minimult_ml.model import build_model
from minimult_ml.prepare import PrepareConfig, Prepared, load, prepare


@dataclass
class Result:
    tokens: int = 0  # real tokens in the timed steps
    seconds: float = 0.0  # wall
    cpu_seconds: float = 0.0  # this process's CPU time, all threads
    steps: int = 0
    peak_rss_mib: float = 0.0
    peak_gpu_mib: float = float("nan")
    threads: int = 0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds

    @property
    def tokens_per_cpu_s(self) -> float:
        return self.tokens / self.cpu_seconds

    @property
    def ms_per_step(self) -> float:
        return 1000 * self.seconds / self.steps


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def mark() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def timed(result: Result, marks: dict[int, tuple[float, float]], start: int, end: int) -> None:
    result.seconds, result.cpu_seconds = (b - a for a, b in zip(marks[start], marks[end],
                                                                  strict=True))


def reset_peaks(device: torch.device) -> None:
    try:  # Linux: reset the peak RSS (VmHWM) that getrusage reports to the current RSS
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        print("note: could not reset peak RSS; the second figure is a running max")
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def record_peaks(result: Result, device: torch.device) -> None:
    result.peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.type == "cuda":
        result.peak_gpu_mib = torch.cuda.max_memory_allocated(device) / 2**20
    result.threads = torch.get_num_threads()


def run_ours(config: TrainConfig, data: Prepared, warmup: int, device: torch.device) -> Result:
    # Our loop's batches are a pure function of (seed, epoch): count their real tokens exactly.
    examples = training_examples(data.train, len(data.languages),
                                          parallel=not config.no_parallel)
    lengths = data.train.lengths
    batches: list[np.ndarray] = []
    epoch = 0
    while len(batches) < config.max_steps:
        batches += training.epoch_batches(examples, lengths, config.batch_size, config.seed, epoch)
        epoch += 1
    window = batches[warmup:config.max_steps]
    result = Result(tokens=int(sum(lengths[b[:, 0]].sum() for b in window)), steps=len(window))
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


def run_trainer(config: TrainConfig, data: Prepared, warmup: int, device: torch.device,
                sampler: str = "random") -> Result:
    model = build_model(config.size, data.languages.vocab_size, len(data.languages),
                        config.max_length, config.seed)
    collator = DataCollatorForLanguageModeling(data.tokenizer,
                                               mlm_probability=config.masking.mlm_probability)
    consumed: list[int] = []  # real tokens per collated batch, in the order the Trainer asks

    def counting_collator(features: list[dict]) -> dict[str, torch.Tensor]:
        batch = collator(features)
        consumed.append(int(batch["attention_mask"].sum()))
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
                          train_dataset=hf_dataset(data), callbacks=[timer])
        reset_peaks(device)
        trainer.train()
    timed_batches = consumed[warmup * accumulate:config.max_steps * accumulate]
    result = Result(tokens=sum(timed_batches), steps=config.max_steps - warmup)
    timed(result, timer.marks, warmup, config.max_steps)
    record_peaks(result, device)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="optimizer steps of each")
    parser.add_argument("--warmup-steps", type=int, default=10, help="excluded from timing")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--micro-batch-size", type=int, default=0,
                        help="ours: gradient accumulation (0 = none); the Trainer gets the same "
                             "rows per pass and accumulation steps")
    parser.add_argument("--exp", default="original", help="its size and optimiser settings "
                        "apply to both; its input and masking modifications to ours only")
    parser.add_argument("--train-sentences", type=int, default=0, help="0 = whole corpus")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, …")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--hf-sampler", default="random", choices=["random", "group_by_length"],
                        help="the Trainer's sampler (ours always buckets by length)")
    parser.add_argument("--data", type=Path, help="a prepared folder (default: prepare anew)")
    args = parser.parse_args()
    if not 1 <= args.warmup_steps < args.steps:
        parser.error("need 1 ≤ --warmup-steps < --steps")
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu")
                          if args.device == "auto" else args.device)
    torch.set_num_threads(args.threads)

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
    config = experiments.resolve(args.exp, track, max_steps=args.steps,
                                 batch_size=args.batch_size, log_every=args.warmup_steps,
                                 micro_batch_size=args.micro_batch_size)
    print(f"{len(data.train)} sentences × {len(data.languages)} languages, batch {args.batch_size}"
          f", {args.steps} steps ({args.warmup_steps} warm-up), exp {config.exp}, size "
          f"{config.size}, device {device}, {torch.get_num_threads()} threads", flush=True)

    ours = run_ours(config, data, args.warmup_steps, device)
    print(f"ours:    {ours.tokens_per_s:,.0f} tokens/s", flush=True)
    hf = run_trainer(config, data, args.warmup_steps, device, args.hf_sampler)
    print(f"Trainer: {hf.tokens_per_s:,.0f} tokens/s", flush=True)

    rows = [("real tokens/s", "{:,.0f}", "tokens_per_s"),
            ("tokens/CPU-s", "{:,.0f}", "tokens_per_cpu_s"),
            ("ms / step", "{:,.1f}", "ms_per_step"), ("timed tokens", "{:,}", "tokens"),
            ("peak RSS MiB", "{:,.0f}", "peak_rss_mib"),
            ("peak GPU MiB", "{:,.0f}", "peak_gpu_mib"), ("torch threads", "{}", "threads")]
    print(f"\n{'':15}{'ours':>14}{'HF Trainer':>14}{'ours/Trainer':>14}")
    for label, fmt, key in rows:
        a, b = getattr(ours, key), getattr(hf, key)
        ratio = a / b if b else float("nan")
        print(f"{label:15}{fmt.format(a):>14}{fmt.format(b):>14}{ratio:>14.2f}")
    print(f"\nspeed-up (tokens/s, ours / Trainer): {ours.tokens_per_s / hf.tokens_per_s:.2f}×")
    print("reproduce: python bench/pretrain_throughput.py " + " ".join(
        f"--{k.replace('_', '-')} {shlex.quote(str(v))}" for k, v in vars(args).items()
        if v is not None))


if __name__ == "__main__":
    main()
