"""The training loop's parts: the fixed-size gather of masked positions, the masking capacity,
the resumable training state, precision, and the progress lines a log gets."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import BertForMaskedLM

from minimult_ml import experiments
from minimult_ml.languages import LanguageSet
from minimult_ml.masking import IGNORE, Masker, MaskingConfig
from minimult_ml.model import build_model, masked_positions, mlm_loss
from minimult_ml.prepare import load
from minimult_ml.training import STATE_FILE, progress_every, train


def test_masked_positions_gather_what_a_boolean_index_selects() -> None:
    labels = torch.full((6, 9), IGNORE)
    generator = torch.Generator().manual_seed(0)
    chosen = torch.rand(labels.shape, generator=generator) < 0.3
    labels[chosen] = torch.randint(5, 50, (int(chosen.sum()),), generator=generator)
    exact = masked_positions(labels)
    assert torch.equal(exact, chosen.flatten().nonzero().squeeze(1))  # row-major, as bool index
    padded = masked_positions(labels, capacity=len(exact) + 7)
    assert torch.equal(padded[:len(exact)], exact)
    assert (labels.flatten()[padded[len(exact):]] == IGNORE).all()  # fillers the loss ignores


def test_mlm_loss_with_a_capacity_equals_the_loss_over_masked_positions() -> None:
    model = build_model("small", vocab_size=60, num_languages=2, max_length=16, dropout=0.0)
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 60, (4, 12), generator=generator)
    labels = torch.where(torch.rand(ids.shape, generator=generator) < 0.25, ids, IGNORE)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    # The brute-force reference: the full head on every position, the loss where labelled.
    logits = model(**inputs).logits
    reference = F.cross_entropy(logits[labels != IGNORE], labels[labels != IGNORE],
                                reduction="sum")
    for capacity in (None, int((labels != IGNORE).sum()) + 5, labels.numel()):
        nll, count = mlm_loss(model, inputs, labels, capacity)
        assert torch.allclose(nll, reference, rtol=1e-5) and count == (labels != IGNORE).sum()


def test_masking_capacity_bounds_the_selected_count() -> None:
    languages = LanguageSet.lab(100)
    masker = Masker(languages, MaskingConfig(), shift_special=False, device="cpu")
    generator = torch.Generator().manual_seed(2)
    ids = torch.randint(5, 100, (64, 30), generator=generator)  # every token a candidate
    counts = [int((masker(ids, torch.zeros(64, dtype=torch.long), generator)[1] != IGNORE).sum())
              for _ in range(200)]
    assert max(counts) <= masker.capacity(ids.numel())
    assert masker.capacity(6300) < 1.3 * 0.15 * 6300  # a batch of 256: close to the mean count
    assert masker.capacity(3) == 3  # never more than the tokens


def test_interrupted_and_resumed_training_ends_as_an_uninterrupted_one(
        small_prepared: Path, tmp_path: Path) -> None:
    data = load(small_prepared)
    config = experiments.resolve("8", max_steps=6, batch_size=16, log_every=1,
                                 checkpoint_every=2)
    whole = train(config, data.train, data.tokenizers, tmp_path / "whole", device=torch.device(
        "cpu"), progress=False)

    def stop_at_3(metrics: dict[str, float], step: int) -> None:
        if step == 3:
            raise KeyboardInterrupt

    out = tmp_path / "parts"
    first = train(config, data.train, data.tokenizers, out, device=torch.device("cpu"),
                  log=stop_at_3, progress=False)
    assert first.interrupted and first.step == 3 and (out / STATE_FILE).exists()
    rest = train(config, data.train, data.tokenizers, out, device=torch.device("cpu"),
                 resume=True, progress=False)
    assert (rest.step, rest.final_loss) == (6, pytest.approx(whole.final_loss, rel=1e-6))
    a = build_from(tmp_path / "whole" / "checkpoints" / "step-6")
    b = build_from(out / "checkpoints" / "step-6")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def build_from(folder: Path) -> dict[str, torch.Tensor]:
    return BertForMaskedLM.from_pretrained(folder).state_dict()


def test_bf16_autocast_trains_on_cpu_too(small_prepared: Path, tmp_path: Path) -> None:
    data = load(small_prepared)
    config = experiments.resolve("0", max_steps=2, batch_size=8, log_every=1, precision="bf16")
    losses: list[float] = []
    train(config, data.train, data.tokenizers, tmp_path, device=torch.device("cpu"),
          log=lambda m, s: losses.append(m["loss/train"]), progress=False)
    assert len(losses) == 2 and all(5 < x < 8 for x in losses)  # ~ln(vocabulary) at the start


def test_a_log_gets_progress_lines(small_prepared: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    data = load(small_prepared)
    config = experiments.resolve("0", max_steps=8, batch_size=8, log_every=2)
    train(config, data.train, data.tokenizers, tmp_path, device=torch.device("cpu"))
    err = capsys.readouterr().err  # stderr is not a terminal here
    lines = [line for line in err.splitlines() if line.startswith("pretrain: step")]
    assert [line.split()[2] for line in lines] == ["2/8", "4/8", "6/8", "8/8"], lines
    assert all(" loss " in line and "tokens/s" in line and "ETA" in line for line in lines)
    assert progress_every(8300, 10) == 420 and progress_every(5, 10) == 10
