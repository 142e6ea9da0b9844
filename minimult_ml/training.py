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
from transformers import BertForMaskedLM, get_linear_schedule_with_warmup

from minimult_ml.data import TokenizedCorpus, training_examples
from minimult_ml.distributed import Process
from minimult_ml.errors import InputError
from minimult_ml.experiments import CONFIG_FILE, TrainConfig
from minimult_ml.inputs import build_inputs, input_config
from minimult_ml.masking import Masker, MaskingConfig
from minimult_ml.model import MaskedLMObjective, build_model
from minimult_ml.vocab import Tokenizers

STATE_FILE = "training_state.pt"
BUCKET = 50  # batches per length-sorting bucket: little padding, still well shuffled


def masking_config(config: TrainConfig) -> MaskingConfig:
    return MaskingConfig(config.mlm_probability, config.p_mask, config.p_keep, config.p_random,
                         config.p_knn)


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


def save_checkpoint(model: BertForMaskedLM, tokenizers: Tokenizers, config: TrainConfig,
                    folder: Path) -> None:
    """A Hugging Face folder: model, tokenizers, language set and the run's training config."""
    model.save_pretrained(folder)
    tokenizers.save(folder)
    (folder / CONFIG_FILE).write_text(json.dumps(asdict(config), indent=2))


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
    n_lang = len(languages)
    model = build_model(config.size, languages.vocab_size, n_lang, config.max_length, config.seed,
                        config.dropout)

    def checkpoint(step: int) -> None:
        # Called after the state file of the same step is written; on_checkpoint logs both.
        if process.main:
            folder = out / "checkpoints" / f"step-{step}"
            save_checkpoint(model, tokenizers, config, folder)
            on_checkpoint(step, folder)

    if config.untrained:  # rows 18–19: the random initialisation is the only checkpoint
        checkpoint(0)
        return TrainResult(0, float("nan"))

    if config.batch_size % process.world:
        raise InputError(f"batch_size {config.batch_size} must be divisible by the "
                         f"{process.world} processes")
    share = config.batch_size // process.world  # this process's rows of every batch
    examples = training_examples(train_ids, n_lang, parallel=not config.no_parallel)
    per_epoch = steps_per_epoch(len(examples), config.batch_size)
    total = config.epochs * per_epoch
    total = min(total, config.max_steps) if config.max_steps else total

    decay = [p for n, p in model.named_parameters() if not no_decay(n)]
    rest = [p for n, p in model.named_parameters() if no_decay(n)]
    cuda = device.type == "cuda"
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": rest, "weight_decay": 0.0}],
                                  lr=config.lr, eps=config.adam_eps, fused=cuda)
    scheduler = get_linear_schedule_with_warmup(optimizer, config.warmup_steps, total)
    # Masking draws are the same in every process (each masks the whole batch, keeps its rows);
    # dropout draws differ per process.
    generator = torch.Generator(device).manual_seed(config.seed)
    torch.manual_seed(config.seed + process.rank)
    step = 0
    if resume:
        state = torch.load(out / STATE_FILE, weights_only=False)
        folder = out / "checkpoints" / f"step-{state['step']}"
        model.load_state_dict(BertForMaskedLM.from_pretrained(folder).state_dict())
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if cuda:
            torch.cuda.set_rng_state(state["cuda_rng"])
        step = state["step"]
    model.to(device).train()
    objective = MaskedLMObjective(model)
    if process.world > 1:
        objective = DistributedDataParallel(objective, device_ids=[device.index] if cuda else None)
    if config.compile == "true" or (config.compile == "auto" and cuda):
        objective = torch.compile(objective, dynamic=True)

    corpus = train_ids.to(device)
    lengths = train_ids.lengths
    masker = Masker(languages, masking_config(config), config.shift_special, device, knn_table)
    inputs_config = input_config(config, languages)
    micro = config.micro_batch_size or share
    mine = slice(process.rank * share, (process.rank + 1) * share)

    def save_state() -> None:
        if not process.main:
            return
        state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                 "generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
                 "step": step}
        if cuda:
            state["cuda_rng"] = torch.cuda.get_rng_state()
        tmp = out / (STATE_FILE + ".tmp")
        torch.save(state, tmp)
        tmp.replace(out / STATE_FILE)

    def train_step(batch: np.ndarray) -> torch.Tensor:
        """One optimizer step; returns this process's share of the batch's mean MLM loss."""
        width = int(lengths[batch[:, 0]].max())
        rows = torch.from_numpy(batch).to(device, non_blocking=True)
        lang = rows[:, 1]
        inputs = build_inputs(corpus.rows(rows[:, 0], width), lang, languages, inputs_config)
        inputs["input_ids"], labels = masker(inputs["input_ids"], lang, generator)
        n_masked = (labels != -100).sum().clamp(min=1)  # of the whole batch, in every process
        inputs, labels = {k: v[mine] for k, v in inputs.items()}, labels[mine]
        total_nll = torch.zeros((), device=device)
        for i in range(0, len(labels), micro):  # gradient accumulation over micro-batches
            part = {k: v[i:i + micro] for k, v in inputs.items()}
            last = i + micro >= len(labels)
            with nullcontext() if last or process.world == 1 else objective.no_sync():
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                    nll, _ = objective(part, labels[i:i + micro])
                # DDP averages gradients over processes: scaled so that their sum is the batch's
                (nll * process.world / n_masked).backward()
            total_nll += nll.detach()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        return total_nll / n_masked

    def across_processes(value: torch.Tensor) -> torch.Tensor:
        if process.world > 1:
            dist.all_reduce(value)
        return value

    out.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=total, initial=step, disable=not (progress and process.main), unit="step",
               dynamic_ncols=True)
    window_loss, window_tokens, window_start, loss = torch.zeros((), device=device), 0, \
        time.perf_counter(), torch.zeros((), device=device)
    try:
        while step < total:
            epoch, skip = divmod(step, per_epoch)
            for batch in epoch_batches(examples, lengths, config.batch_size, config.seed,
                                       epoch)[skip:]:
                loss = train_step(batch)
                step += 1
                window_loss += loss
                window_tokens += int(lengths[batch[:, 0]].sum())
                bar.update()
                if step % config.log_every == 0 or step == total:
                    # The only host sync of the loop, once per log interval.
                    n = (step - 1) % config.log_every + 1
                    elapsed = time.perf_counter() - window_start
                    metrics = {"loss/train": across_processes(window_loss).item() / n,
                               "lr": scheduler.get_last_lr()[0],
                               "tokens_per_s": window_tokens / elapsed, "epoch": step / per_epoch}
                    if process.main:
                        log(metrics, step)
                    bar.set_postfix(loss=f"{metrics['loss/train']:.3f}",
                                    tok_s=f"{metrics['tokens_per_s']:,.0f}")
                    window_loss.zero_()
                    window_tokens, window_start = 0, time.perf_counter()
                if step == total or (config.checkpoint_every and step % config.checkpoint_every
                                     == 0):
                    save_state()
                    checkpoint(step)
                if step == total:
                    break
    except KeyboardInterrupt:  # leave a usable last checkpoint, then stop
        save_state()
        checkpoint(step)
        bar.close()
        return TrainResult(step, float(loss), interrupted=True)
    bar.close()
    return TrainResult(step, float(across_processes(loss.detach().clone())))
