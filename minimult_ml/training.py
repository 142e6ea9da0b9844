"""The pretraining loop: MLM on a language set with the exp's transforms (DESIGN §5, §8).

A plain loop in the spirit of nanoGPT. Token ids live on the device as one flat tensor; a batch
is an index into it, gathered to its longest sentence, and every transform and mask is built there
by tensor ops. The host only decides the order of examples (numpy, from the seed and the epoch),
so a resumed run replays exactly the batches an uninterrupted one would have seen.

Under torchrun every process draws the same batch and the same masks and computes the loss of
its share of the rows; DDP averages the gradients, so N processes train exactly like one process
with the same batch (up to dropout, whose draws differ per process, and float summation order).
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm
from transformers import PreTrainedModel, get_linear_schedule_with_warmup

from minimult_ml.data import TokenizedCorpus, training_examples
from minimult_ml.distributed import Process
from minimult_ml.errors import InputError
from minimult_ml.experiments import CONFIG_FILE, TrainConfig
from minimult_ml.inputs import build_inputs, input_config
from minimult_ml.languages import LanguageSet
from minimult_ml.masking import IGNORE, Masker
from minimult_ml.model import MaskedLMObjective, build_model
from minimult_ml.vocab import Tokenizers

STATE_FILE = "training_state.pt"
BUCKET = 50  # batches per length-sorting bucket: little padding, still well shuffled


def epoch_batches(examples: np.ndarray, lengths: np.ndarray, batch_size: int, seed: int,
                  epoch: int) -> list[np.ndarray]:
    """The batches of one epoch: shuffled, sorted by length within buckets, in shuffled order."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(examples))
    batches = []
    for start in range(0, len(order), BUCKET * batch_size):
        bucket = order[start:start + BUCKET * batch_size]
        bucket = bucket[np.argsort(lengths[examples[bucket, 0]], kind="stable")]
        batches += [examples[bucket[i:i + batch_size]] for i in range(0, len(bucket), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def steps_per_epoch(n_examples: int, batch_size: int) -> int:
    return math.ceil(n_examples / batch_size)


def no_decay(name: str) -> bool:
    return name.endswith("bias") or "LayerNorm" in name


@dataclass
class TrainResult:
    step: int
    final_loss: float  # mean MLM loss of the last step
    interrupted: bool = False


def save_checkpoint(model: PreTrainedModel, tokenizers: Tokenizers, config: TrainConfig,
                    folder: Path) -> None:
    """A Hugging Face folder: model, tokenizers, language set and the run's training config."""
    model.save_pretrained(folder)
    tokenizers.save(folder)
    (folder / CONFIG_FILE).write_text(json.dumps(asdict(config), indent=2))


def build_optimizer(model: PreTrainedModel, config: TrainConfig,
                    device: torch.device) -> torch.optim.AdamW:
    """AdamW with weight decay on the weight matrices only (not biases, not LayerNorm), as BERT;
    one fused kernel per parameter group on CUDA."""
    decay = [p for n, p in model.named_parameters() if not no_decay(n)]
    rest = [p for n, p in model.named_parameters() if no_decay(n)]
    return torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                              {"params": rest, "weight_decay": 0.0}],
                             lr=config.lr, eps=config.adam_eps, fused=device.type == "cuda")


def autocast_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of the step, None for fp32. `auto` is bf16 on CUDA only: CPUs without
    native bf16 (AVX-512 BF16, AMX) run bf16 matrix products many times slower than fp32
    (bench/pretrain_throughput.py measures both)."""
    bf16 = config.precision == "bf16" or (config.precision == "auto" and device.type == "cuda")
    return torch.bfloat16 if bf16 else None


def compiles(config: TrainConfig, device: torch.device) -> bool:
    return config.compile == "true" or (config.compile == "auto" and device.type == "cuda")


@dataclass
class TrainingState:
    """Everything training changes, so everything a resumed run restores: the weights (saved as
    the step's checkpoint folder), the optimizer and schedule, the masking generator (the same in
    every process), the global RNG that draws dropout, and the step."""

    model: PreTrainedModel
    optimizer: torch.optim.AdamW
    scheduler: torch.optim.lr_scheduler.LambdaLR
    generator: torch.Generator
    step: int = 0

    @classmethod
    def start(cls, config: TrainConfig, languages: LanguageSet, total_steps: int,
              device: torch.device, rank: int = 0) -> TrainingState:
        model = build_model(config.size, languages.vocab_size, len(languages),
                            config.max_length, config.seed, config.dropout,
                            config.rel_pos).to(device)
        optimizer = build_optimizer(model, config, device)
        scheduler = get_linear_schedule_with_warmup(optimizer, config.warmup_steps, total_steps)
        generator = torch.Generator(device).manual_seed(config.seed)
        torch.manual_seed(config.seed + rank)  # dropout: different draws in each process
        return cls(model, optimizer, scheduler, generator)

    def checkpoint_folder(self, out: Path) -> Path:
        return out / "checkpoints" / f"step-{self.step}"

    def save(self, out: Path) -> None:
        """out/STATE_FILE, written atomically; the weights are the checkpoint of the same step."""
        state = {"optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(),
                 "generator": self.generator.get_state(), "torch_rng": torch.get_rng_state(),
                 "step": self.step}
        if self.generator.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.generator.device)
        tmp = out / (STATE_FILE + ".tmp")
        torch.save(state, tmp)
        tmp.replace(out / STATE_FILE)

    def load(self, out: Path) -> None:
        """Continue from out/STATE_FILE and the checkpoint folder it names."""
        state = torch.load(out / STATE_FILE, weights_only=False)
        self.step = state["step"]
        weights = type(self.model).from_pretrained(self.checkpoint_folder(out)).state_dict()
        self.model.load_state_dict(weights)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"], self.generator.device)


class MLMStep:
    """One optimizer step on a batch of (sentence, language) rows: gather the sentences, apply
    the exp's input transforms and masking on the device, forward and backward over this
    process's rows (in micro-batches), clip, step. It never waits for the device: the batch's
    width and the masked-position capacity come from the host's lengths, and the masked
    positions are a fixed-size gather."""

    def __init__(self, config: TrainConfig, state: TrainingState, train_ids: TokenizedCorpus,
                 languages: LanguageSet, device: torch.device,
                 knn_table: torch.Tensor | None, process: Process) -> None:
        if config.batch_size % process.world:
            raise InputError(f"batch_size {config.batch_size} must be divisible by the "
                             f"{process.world} processes")
        self.state, self.languages, self.device, self.process = state, languages, device, process
        self.corpus, self.lengths = train_ids.to(device), train_ids.lengths
        self.masker = Masker(languages, config.masking, config.shift_special, device,
                             knn_table)
        self.inputs_config = input_config(config, languages)
        share = config.batch_size // process.world
        self.mine = slice(process.rank * share, (process.rank + 1) * share)
        self.micro = config.micro_batch_size or share
        self.autocast = autocast_dtype(config, device)
        objective: torch.nn.Module = MaskedLMObjective(state.model.train())
        if process.world > 1:
            objective = DistributedDataParallel(
                objective, device_ids=[device.index] if device.type == "cuda" else None)
        # dynamic: batch widths and masked counts vary from batch to batch
        self.objective = torch.compile(objective, dynamic=True) \
            if compiles(config, device) else objective

    def __call__(self, batch: np.ndarray) -> torch.Tensor:
        """Returns this process's share of the batch's mean MLM loss (not synced)."""
        state, lengths = self.state, self.lengths[batch[:, 0]]
        rows = torch.from_numpy(batch).to(self.device, non_blocking=True)
        lang = rows[:, 1]
        inputs = build_inputs(self.corpus.rows(rows[:, 0], int(lengths.max())), lang,
                              self.languages, self.inputs_config)
        inputs["input_ids"], labels = self.masker(inputs["input_ids"], lang, state.generator)
        n_masked = (labels != IGNORE).sum().clamp(min=1)  # of the whole batch, in every process
        inputs, labels, lengths = ({k: v[self.mine] for k, v in inputs.items()},
                                   labels[self.mine], lengths[self.mine])
        world = self.process.world
        total_nll = torch.zeros((), device=self.device)
        for i in range(0, len(labels), self.micro):  # gradient accumulation over micro-batches
            part = slice(i, i + self.micro)
            last = i + self.micro >= len(labels)
            with nullcontext() if last or world == 1 else self.objective.no_sync():
                with torch.autocast(self.device.type, dtype=self.autocast or torch.float32,
                                    enabled=self.autocast is not None):
                    nll, _ = self.objective({k: v[part] for k, v in inputs.items()},
                                            labels[part],
                                            self.masker.capacity(int(lengths[part].sum())))
                # DDP averages gradients over processes: scaled so that their sum is the batch's
                (nll * world / n_masked).backward()
            total_nll += nll.detach()
        torch.nn.utils.clip_grad_norm_(state.model.parameters(), 1.0)
        state.optimizer.step()
        state.scheduler.step()
        state.optimizer.zero_grad(set_to_none=True)
        return total_nll / n_masked


class Progress:
    """A bar on a terminal; elsewhere (logs, `mlflow run` under a pipe) one line per
    `every` steps with step, loss, tokens/s and ETA."""

    def __init__(self, total: int, step: int, every: int, enabled: bool) -> None:
        self.total, self.every, self.enabled = total, every, enabled
        self.terminal = enabled and sys.stderr.isatty()
        self.bar = tqdm(total=total, initial=step, disable=not self.terminal, unit="step",
                        dynamic_ncols=True)
        self.since, self.start_step = time.perf_counter(), step

    def update(self, step: int, metrics: dict[str, float] | None) -> None:
        """After each step; `metrics` at the steps that log them."""
        self.bar.update()
        if metrics is None:
            return
        if self.terminal:
            self.bar.set_postfix(loss=f"{metrics['loss/train']:.3f}",
                                 tok_s=f"{metrics['tokens_per_s']:,.0f}")
        elif self.enabled and (step % self.every == 0 or step == self.total):
            seconds = time.perf_counter() - self.since
            eta = seconds / (step - self.start_step) * (self.total - step)
            print(f"pretrain: step {step:,}/{self.total:,}  loss {metrics['loss/train']:.3f}  "
                  f"{metrics['tokens_per_s']:,.0f} tokens/s  ETA {_duration(eta)}",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        self.bar.close()


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


def progress_every(total: int, log_every: int) -> int:
    """Steps between progress lines: about twenty lines a run, at logged steps."""
    return max(1, round(total / 20 / log_every)) * log_every


def train(config: TrainConfig, train_ids: TokenizedCorpus, tokenizers: Tokenizers, out: Path,
          *, device: torch.device, knn_table: torch.Tensor | None = None,
          log: Callable[[dict[str, float], int], None] = lambda metrics, step: None,
          on_checkpoint: Callable[[int, Path], None] = lambda step, folder: None,
          resume: bool = False, progress: bool = True,
          process: Process | None = None) -> TrainResult:
    """Train, writing checkpoints to out/checkpoints/step-N and the resume state to out/.

    With `resume`, out/ holds a previous attempt's state file and the checkpoint it names; the
    run continues from there and ends exactly as an uninterrupted one would. Under torchrun
    (`process`), only rank 0 logs and writes; every rank needs `out/` when resuming.
    """
    process = process or Process(0, 1, device)
    languages = tokenizers.languages
    examples = training_examples(train_ids, len(languages), parallel=not config.no_parallel)
    per_epoch = steps_per_epoch(len(examples), config.batch_size)
    total = config.epochs * per_epoch
    total = min(total, config.max_steps) if config.max_steps else total
    state = TrainingState.start(config, languages, total, device, process.rank)
    out.mkdir(parents=True, exist_ok=True)

    def checkpoint() -> None:  # after the state file of the same step: on_checkpoint logs both
        if process.main:
            folder = state.checkpoint_folder(out)
            save_checkpoint(state.model, tokenizers, config, folder)
            on_checkpoint(state.step, folder)

    def save() -> None:
        if process.main:
            state.save(out)
        checkpoint()

    if config.untrained:  # rows 18–19: the random initialisation is the only checkpoint
        checkpoint()
        return TrainResult(0, float("nan"))
    step_fn = MLMStep(config, state, train_ids, languages, device, knn_table, process)
    if resume:
        state.load(out)
    bar = Progress(total, state.step, progress_every(total, config.log_every),
                   progress and process.main)
    loss = window_loss = torch.zeros((), device=device)
    # A window can be short: the first one after resuming from a stop between log steps.
    window_steps, window_tokens, window_start = 0, 0, time.perf_counter()
    try:
        while state.step < total:
            epoch, skip = divmod(state.step, per_epoch)
            for batch in epoch_batches(examples, train_ids.lengths, config.batch_size,
                                       config.seed, epoch)[skip:total - epoch * per_epoch]:
                loss = step_fn(batch)
                state.step += 1
                window_loss = window_loss + loss
                window_steps += 1
                window_tokens += int(train_ids.lengths[batch[:, 0]].sum())
                metrics = None
                if state.step % config.log_every == 0 or state.step == total:
                    # The loop's host sync, once per log interval: the loss.
                    metrics = {"loss/train": across_processes(window_loss, process).item()
                               / window_steps,
                               "lr": state.scheduler.get_last_lr()[0],
                               "tokens_per_s": window_tokens / (time.perf_counter()
                                                                - window_start),
                               "epoch": state.step / per_epoch}
                    if process.main:
                        log(metrics, state.step)
                    window_loss = torch.zeros((), device=device)
                    window_steps, window_tokens, window_start = 0, 0, time.perf_counter()
                bar.update(state.step, metrics)
                if state.step == total or (config.checkpoint_every
                                           and state.step % config.checkpoint_every == 0):
                    save()
    except KeyboardInterrupt:  # leave a usable last checkpoint, then stop
        save()
        bar.close()
        return TrainResult(state.step, float(loss), interrupted=True)
    bar.close()
    return TrainResult(state.step, float(across_processes(loss.detach().clone(), process)))


def across_processes(value: torch.Tensor, process: Process) -> torch.Tensor:
    """The sum over processes (in place)."""
    if process.world > 1:
        dist.all_reduce(value)
    return value
