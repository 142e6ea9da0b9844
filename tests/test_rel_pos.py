"""rel-pos (the paper's open hypothesis, §3.2): BERT-small's shape with rotary attention
(RoFormer). What makes it relative, that it still reads word order, that bad combinations are
refused, and that every step takes it: training with knn-replace, resume, evaluate (all of
Table 1), the analysis and kendall-tau."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import mlflow
import pytest
import torch
from mlflow.tracking import MlflowClient
from transformers import AutoModelForMaskedLM, BertForMaskedLM, RoFormerForMaskedLM

from entrypoints import analysis as analysis_entry
from entrypoints import evaluate as evaluate_entry
from entrypoints import kendall_tau
from entrypoints import pretrain as pretrain_entry
from entrypoints.common import run_command
from minimult_ml import experiments
from minimult_ml.errors import InputError
from minimult_ml.inputs import build_inputs
from minimult_ml.languages import CLS, SEP
from minimult_ml.model import build_model, hidden_states, position_embeddings
from minimult_ml.prepare import load
from minimult_ml.representations import load_encoder
from minimult_ml.training import input_config, train
from minimult_ml.wordorder import word_vectors

CPU = torch.device("cpu")
LAYERS = [0, 4, 8, 12]
SENTENCES = ["In the beginning God created the heaven and the earth.",
             "And the earth was without form, and void.",
             "And God said, Let there be light: and there was light.",
             "And God saw the light, that it was good."]


@pytest.fixture(scope="module")
def data(small_prepared: Path):
    return load(small_prepared)


def test_rel_pos_is_bert_small_with_rotary_attention_instead_of_positions() -> None:
    config = experiments.resolve("inv-order+rel-pos")
    assert (config.exp, config.paper_id, config.run_name) == (
        "rel-pos;inv-order", "x", "x-rel-pos;inv-order-s42")
    assert config.rel_pos and config.inv_order and not config.lang_pos
    assert not experiments.resolve("3").rel_pos
    rel, bert = build_model("small", 800, 2, rel_pos=True), build_model("small", 800, 2)
    assert isinstance(rel, RoFormerForMaskedLM) and isinstance(bert, BertForMaskedLM)
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "vocab_size", "type_vocab_size"):  # token types stay: one per language
        assert getattr(rel.config, key) == getattr(bert.config, key), key
    assert position_embeddings(rel) is None and position_embeddings(bert).shape == (256, 64)
    # The only trainable weights BERT has beyond RoFormer's are its absolute positions; RoFormer's
    # rotary table is fixed (sinusoids).
    def trainable(model: torch.nn.Module) -> int:
        return sum(p.numel() for p in model.parameters() if p.requires_grad)

    assert trainable(bert) - trainable(rel) == 256 * 64


def test_rel_pos_inputs_are_the_original_ones_without_position_ids(data) -> None:
    local, lang = data.dev.padded()[:4], torch.tensor([0, 1, 0, 1])
    ours = build_inputs(local, lang, data.languages, input_config(
        experiments.resolve("rel-pos;inv-order;shift-special"), data.languages))
    theirs = build_inputs(local, lang, data.languages, input_config(
        experiments.resolve("inv-order;shift-special"), data.languages))
    assert "position_ids" not in ours and set(theirs) - set(ours) == {"position_ids"}
    for key, value in ours.items():
        assert value.equal(theirs[key]), key


def _embedded_at(x: dict[str, torch.Tensor], before: int,
                 after: int) -> dict[str, torch.Tensor]:
    """The same rows with `before` and `after` other tokens around them that attention masks
    out: every sentence now sits at absolute positions `before`, `before` + 1, …"""
    generator = torch.Generator().manual_seed(before)
    rows = len(x["input_ids"])

    def noise(n: int) -> torch.Tensor:
        return torch.randint(5, 400, (rows, n), generator=generator)

    def zeros(n: int) -> torch.Tensor:
        return torch.zeros(rows, n, dtype=torch.long)

    out = {"input_ids": torch.cat([noise(before), x["input_ids"], noise(after)], 1),
           "token_type_ids": torch.cat([zeros(before), x["token_type_ids"], zeros(after)], 1),
           "attention_mask": torch.cat([zeros(before), x["attention_mask"], zeros(after)], 1)}
    if "position_ids" in x:  # an absolute model counts positions from the row's start
        out["position_ids"] = torch.arange(out["input_ids"].shape[1]).expand(rows, -1)
    return out


@pytest.mark.parametrize(("exp", "relative"), [("rel-pos;inv-order", True), ("0", False)])
def test_a_sentence_moved_to_other_positions_keeps_its_vectors_only_under_rel_pos(
        exp: str, relative: bool, data) -> None:
    """The test of relativity: each token's hidden state at every layer is unchanged when the
    whole sentence moves to other absolute positions. BERT's learned positions fail it."""
    config = experiments.resolve(exp)
    model = build_model("small", data.languages.vocab_size, 2, seed=1,
                        rel_pos=config.rel_pos).eval()
    local = data.dev.head(6).padded()
    x = build_inputs(local, torch.tensor([0, 1] * 3), data.languages,
                     input_config(config, data.languages))
    tokens = x["attention_mask"].bool()
    assert not tokens.all()  # rows of different lengths: right padding is there too
    last = config.max_length - tokens.shape[1]  # up to the end of the rotary table
    with torch.no_grad():
        here = hidden_states(model, x, LAYERS)
        for before, after in ((1, 0), (9, 4), (last, 0)):
            there = hidden_states(model, _embedded_at(x, before, after), LAYERS)
            for layer, a, b in zip(LAYERS, here, there, strict=True):
                moved = b[:, before:before + a.shape[1]]
                difference = (a - moved)[tokens].abs().max().item()
                if relative:
                    assert difference < 1e-5, (before, layer, difference)
                else:
                    assert difference > 0.1, (before, layer, difference)


def test_rel_pos_reads_word_order_in_attention_and_nowhere_else(data) -> None:
    """Moving is not all: a reversed sentence gets the same vectors at layer 0 (no position is
    added to the embeddings) but other ones above (attention sees the offsets' signs)."""
    model = build_model("small", data.languages.vocab_size, 2, seed=2, rel_pos=True).eval()
    # At initialisation queries and keys are tiny and attention is nearly uniform; sharpen it,
    # as training does, so that the offsets weigh.
    with torch.no_grad():
        for block in model.base_model.encoder.layer:
            block.attention.self.query.weight *= 10
            block.attention.self.key.weight *= 10
    config = input_config(experiments.resolve("rel-pos"), data.languages)
    sentence = next(s for i in range(len(data.dev)) if len(s := data.dev.sentence(i)) > 12)
    forward = torch.tensor([sentence])
    backward = torch.tensor([[CLS, *sentence[-2:0:-1], SEP]])

    def vectors(ids: torch.Tensor) -> list[torch.Tensor]:
        with torch.no_grad():
            return hidden_states(model, build_inputs(ids, torch.tensor([0]), data.languages,
                                                     config), [0, 8])

    (h0, h8), (r0, r8) = vectors(forward), vectors(backward)

    def back(h: torch.Tensor) -> torch.Tensor:  # the reversed sentence's vectors, reordered
        return torch.cat([h[:, :1], h[:, 1:-1].flip(1), h[:, -1:]], 1)

    torch.testing.assert_close(back(r0), h0, rtol=0, atol=1e-6)
    assert (back(r8) - h8)[:, 1:-1].abs().amax(-1).min() > 0.02  # every word changes


@pytest.mark.parametrize("exp", ["rel-pos;lang-pos", "lang-pos+rel-pos+inv-order"])
def test_rel_pos_with_lang_pos_is_refused(exp: str, tracking: str, prepare_run: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(InputError, match="lang-pos and rel-pos cannot be combined"):
        experiments.resolve(exp)
    with pytest.raises(SystemExit) as exit_info:
        run_command(pretrain_entry.command, ["--exp", exp, "--data-run-id", prepare_run])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: lang-pos and rel-pos cannot be combined") and "\n" not in err
    experiment = mlflow.get_experiment_by_name(tracking)  # refused before any run is made
    assert experiment is None or not MlflowClient().search_runs([experiment.experiment_id])


@pytest.mark.parametrize("exp", ["rel-pos;inv-order", "inv-order"])
def test_an_interrupted_run_resumes_to_the_same_weights(exp: str, data, tmp_path: Path) -> None:
    """Resume rebuilds the run's own class (RoFormer or BERT) from its checkpoint."""
    config = experiments.resolve(exp, max_steps=6, batch_size=8, log_every=1)
    corpus = data.train.head(16)
    whole: dict[int, float] = {}
    train(config, corpus, data.tokenizers, tmp_path / "whole", device=CPU, progress=False,
          log=lambda m, s: whole.setdefault(s, m["loss/train"]))

    def stop_at_4(metrics: dict[str, float], step: int) -> None:
        if step == 4:
            raise KeyboardInterrupt  # as Ctrl-C: a checkpoint and the resume state are left

    out = tmp_path / "interrupted"
    assert train(config, corpus, data.tokenizers, out, device=CPU, progress=False,
                 log=stop_at_4).interrupted
    resumed: dict[int, float] = {}
    train(config, corpus, data.tokenizers, out, device=CPU, progress=False, resume=True,
          log=lambda m, s: resumed.setdefault(s, m["loss/train"]))
    assert resumed == pytest.approx({s: whole[s] for s in (5, 6)}, rel=1e-6)
    a = AutoModelForMaskedLM.from_pretrained(tmp_path / "whole" / "checkpoints" / "step-6")
    b = AutoModelForMaskedLM.from_pretrained(out / "checkpoints" / "step-6")
    assert isinstance(a, RoFormerForMaskedLM if config.rel_pos else BertForMaskedLM)
    a, b = a.state_dict(), b.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_rel_pos_trains_with_knn_replace(data, tmp_path: Path) -> None:
    # A neighbour table that maps every token to itself in the other language.
    ids = torch.arange(data.languages.vocab_size)
    size = data.languages.languages[1].offset
    other = torch.where(ids < size, ids + size, ids - size)
    table = other[:, None, None].expand(-1, 2, 1)
    config = experiments.resolve("rel-pos;knn-replace", max_steps=3, batch_size=8, log_every=1)
    assert config.p_knn == 0.3
    losses: list[float] = []
    result = train(config, data.train.head(16), data.tokenizers, tmp_path, device=CPU,
                   knn_table=table, progress=False, log=lambda m, s: losses.append(m["loss/train"]))
    assert result.step == 3 and len(losses) == 3 and all(0 < x < 20 for x in losses)
    model = AutoModelForMaskedLM.from_pretrained(tmp_path / "checkpoints" / "step-3")
    assert isinstance(model, RoFormerForMaskedLM)


def test_pretrain_evaluate_analysis_and_kendall_tau_take_a_rel_pos_run(
        tracking: str, prepare_run: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    run_command(pretrain_entry.command, ["--exp", "rel-pos;inv-order", "--max-steps", "4",
                                         "--batch-size", "8", "--checkpoint-every", "2",
                                         "--data-run-id", prepare_run])
    client = MlflowClient()
    experiment_id = mlflow.get_experiment_by_name(tracking).experiment_id
    (run,) = client.search_runs([experiment_id], "tags.step = 'pretrain'")
    run_id = run.info.run_id
    assert run.info.run_name == "x-rel-pos;inv-order-s42"
    assert run.data.tags["exp"] == "rel-pos;inv-order" and run.data.params["rel_pos"] == "True"

    capsys.readouterr()
    run_command(evaluate_entry.command, ["--run-id", run_id, "--checkpoints", "all",
                                         "--dev-sentences", "30"])
    assert evaluate_entry.NO_POSITION_FIGURE in capsys.readouterr().out
    metrics = client.get_run(run_id).data.metrics
    for key in ("mult_score", "align_f1/L0", "retrieval_p1/L0", "translation_p1/L0",
                "align_f1/L8", "retrieval_p1/L8", "translation_p1/L8", "ppl/train", "ppl/dev",
                "align_forward_precision/L8", "retrieval_p10_fake2en/L0", "translation_p5/L8"):
        assert key in metrics, key
        assert [m.step for m in client.get_metric_history(run_id, key)] == [2, 4], key
    figures = {f.path for f in client.list_artifacts(run_id, "figures")}
    assert figures == {"figures/token_embeddings_pca.png", "figures/position_similarity.txt"}
    note = mlflow.artifacts.load_text(f"runs:/{run_id}/figures/position_similarity.txt")
    assert "not applicable" in note and "rel-pos" in note
    folder = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="model",
                                                      dst_path=str(tmp_path)))
    assert isinstance(AutoModelForMaskedLM.from_pretrained(folder), RoFormerForMaskedLM)

    run_command(analysis_entry.command, ["--tables", "1"])
    (analysis,) = client.search_runs([experiment_id], "tags.step = 'analysis'")
    table = {row["id"]: row for row in csv.DictReader(io.StringIO(mlflow.artifacts.load_text(
        f"runs:/{analysis.info.run_id}/table1.csv")))}
    row = table["rel-pos;inv-order"]
    assert row["n"] == "1"
    assert float(row["mult_score_mean"]) == pytest.approx(metrics["mult_score"], rel=1e-9)

    # kendall-tau reads the checkpoint with its training inputs: Fake-English reversed, no
    # position ids; batched word vectors equal one sentence at a time, reversed back.
    encoder = load_encoder(str(folder), CPU)
    languages, config = encoder.ours.tokenizers.languages, encoder.ours.config
    assert config.rel_pos and config.inverted == (1,)
    got = encoder.word_vectors(SENTENCES, "fake-en", 8, batch_size=3)
    tok = encoder.ours.tokenizers.by_language["en"]
    for sentence, vectors in zip(SENTENCES, got, strict=True):
        x = tok(sentence, return_tensors="pt")
        with torch.no_grad():
            (hidden,) = hidden_states(encoder.model, build_inputs(
                x["input_ids"], torch.tensor([1]), languages, config), [8])
        tokens = torch.cat([hidden[0, :1], hidden[0, 1:-1].flip(0), hidden[0, -1:]])
        torch.testing.assert_close(vectors, word_vectors(tokens, x.word_ids(0)), atol=1e-5,
                                   rtol=0)
    corpus = tmp_path / "parallel"
    corpus.mkdir()
    for code in ("en", "fake-en"):
        (corpus / f"{code}.txt").write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    accuracies = tmp_path / "acc.csv"
    accuracies.write_text("lang,accuracy\nen,80\nfake-en,40\n")
    run_command(kendall_tau.command, ["--model", str(folder), "--data", f"dir:{corpus}",
                                      "--languages", "fake-en", "--layer", "8",
                                      "--accuracies", f"csv:{accuracies}"])
    (tau_run,) = client.search_runs([experiment_id], "tags.step = 'kendall-tau'")
    assert tau_run.data.metrics["kendall_tau_sentences/fake-en"] == len(SENTENCES)
    assert 0 <= tau_run.data.metrics["kendall_tau/fake-en"] <= 1
