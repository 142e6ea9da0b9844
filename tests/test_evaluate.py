"""`evaluate`: the batched pipeline against a per-sentence loop, the paper's untrained pattern,
inputs identical to training, tracking, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from entrypoints import evaluate as evaluate_entry
from entrypoints import pretrain as pretrain_entry
from entrypoints.common import run_command
from minimult_ml import evaluation, experiments, figures, inputs, training
from minimult_ml import tracking as tracking_lib
from minimult_ml.evaluation import Evaluator, evaluate
from minimult_ml.model import build_model, hidden_states
from minimult_ml.prepare import load
from minimult_ml.results import PretrainRun

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def data(small_prepared: Path):
    return load(small_prepared)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b) / float(np.linalg.norm(a) * np.linalg.norm(b))


def _reference_sentences(model, config, data, n: int, layer: int) -> tuple[float, float]:
    """Alignment F1 and retrieval P@1 with plain loops: one unpadded sentence at a time."""
    cfg = inputs.input_config(config, data.languages)
    predicted = correct = gold = 0
    pooled = {0: [], 1: []}
    for i in range(n):
        ids = torch.tensor([data.dev.sentence(i)])
        vecs = {}
        for lang in (0, 1):
            x = inputs.build_inputs(ids, torch.tensor([lang]), data.languages, cfg)
            with torch.no_grad():
                h = model.base_model(**x, output_hidden_states=True).hidden_states[layer][0]
            vecs[lang] = h[1:-1]  # no [CLS], no [SEP]
            pooled[lang].append(vecs[lang].mean(0))
        m = len(vecs[0])
        en, fk = vecs[0].numpy(), vecs[1].numpy()
        sim = [[_cosine(en[a], fk[b]) for b in range(m)] for a in range(m)]
        for a in range(m):
            b = max(range(m), key=lambda j: sim[a][j])
            if max(range(m), key=lambda k: sim[k][b]) == a:
                predicted += 1
                correct += b == (m - 1 - a if config.inv_order else a)
        gold += m
    p, r = correct / predicted, correct / gold
    hits = 0
    for src, tgt in ((0, 1), (1, 0)):
        for a in range(n):
            sims = [_cosine(pooled[src][a].numpy(), pooled[tgt][b].numpy()) for b in range(n)]
            hits += max(range(n), key=lambda b: sims[b]) == a
    return 2 * p * r / (p + r) if p + r else 0.0, hits / (2 * n)


# Exp 9 (lang-pos, inv-order, shift-special) has every input tensor; rel-pos is RoFormer.
@pytest.mark.parametrize("exp", ["9", "rel-pos;inv-order;shift-special"])
def test_hidden_states_stop_at_the_highest_layer_and_equal_the_full_forward(exp: str,
                                                                            data) -> None:
    config = experiments.resolve(exp)
    model = build_model("small", data.languages.vocab_size, 2, seed=3,
                        rel_pos=config.rel_pos).eval()
    lang = torch.tensor([0, 1] * 8)
    x = inputs.build_inputs(data.dev.padded()[:16], lang, data.languages,
                            inputs.input_config(config, data.languages))
    assert x["attention_mask"].min() == 0  # padded rows: the mask path is exercised
    with torch.no_grad():
        full = model.base_model(**x, output_hidden_states=True).hidden_states
        calls = []
        blocks = model.base_model.encoder.layer
        hooks = [block.register_forward_hook(lambda *a, i=i: calls.append(i))
                 for i, block in enumerate(blocks)]
        ours = hidden_states(model, x, [4, 0, 2])
        top = hidden_states(model, x, [12])
        for hook in hooks:
            hook.remove()
    # Blocks 1–4 ran for layers ≤ 4, then all twelve for layer 12: nothing more.
    assert calls == [0, 1, 2, 3, *range(12)]
    for layer, h in zip([4, 0, 2, 12], [*ours, *top], strict=True):
        torch.testing.assert_close(h, full[layer], rtol=0, atol=0)


@pytest.mark.parametrize("exp", ["0", "9", "rel-pos;inv-order"])
def test_batched_pipeline_equals_a_per_sentence_loop(exp: str, data) -> None:
    config = experiments.resolve(exp)
    model = build_model("small", data.languages.vocab_size, 2, seed=3,
                        rel_pos=config.rel_pos).eval()
    n = 15
    evaluator = Evaluator(model, config, data.languages, CPU, batch_size=7)
    scores = evaluator.sentences(data.dev.head(n), [0, 8])
    for layer in (0, 8):
        f1, rho = _reference_sentences(model, config, data, n, layer)
        assert scores[f"align_f1/L{layer}"] == pytest.approx(f1, abs=1e-9)
        assert scores[f"retrieval_p1/L{layer}"] == pytest.approx(rho, abs=1e-9)


def test_untrained_pattern_of_rows_18_and_19(data) -> None:
    """Random models: ρ, τ near 0; alignment high only with shared positions (paper Table 1)."""
    dev = data.dev.head(120)
    for paper_id, aligned in (("18", True), ("19", False)):
        config = experiments.resolve(paper_id)
        model = build_model("small", data.languages.vocab_size, 2, seed=1)
        scores, vectors = evaluate(model, config, data.languages, data.train.head(50), dev,
                                   device=CPU)
        assert vectors.shape == (data.languages.vocab_size, 64)
        assert scores["mult_score"] < 0.1
        for layer in (0, 8):
            assert scores[f"translation_p1/L{layer}"] < 0.05
            if aligned:
                assert scores[f"align_f1/L{layer}"] > 0.9
            else:
                assert scores[f"align_f1/L{layer}"] < 0.2
        # An untrained model over a vocabulary of 800 is about as perplexed as uniform guessing.
        assert 300 < scores["ppl/dev"] < 3000


def test_evaluation_is_deterministic(data) -> None:
    config = experiments.resolve("0")
    model = build_model("small", data.languages.vocab_size, 2, seed=5)
    a, _ = evaluate(model, config, data.languages, data.train.head(40), data.dev.head(40),
                    device=CPU)
    b, _ = evaluate(model, config, data.languages, data.train.head(40), data.dev.head(40),
                    device=CPU)
    assert a == b


def test_evaluation_sees_the_inputs_training_saw(data, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The same sentence in both languages becomes the same model inputs in both flows."""
    # lang-pos, inv-order, shift-special; two steps of 8 see all 16 examples of epoch 0.
    config = experiments.resolve("9", max_steps=2, batch_size=8)
    seen: dict[str, dict[tuple, tuple]] = {"train": {}, "eval": {}}
    flow = {"now": "train"}

    def recording(local_ids, lang, languages, cfg, lengths=None):
        out = inputs.build_inputs(local_ids, lang, languages, cfg, lengths)
        for r in range(len(local_ids)):
            n = int(out["attention_mask"][r].sum())
            key = (tuple(local_ids[r, :n].tolist()), int(lang[r]))
            seen[flow["now"]][key] = tuple(tuple(out[k][r, :n].tolist()) for k in
                                           ("input_ids", "position_ids", "token_type_ids"))
        return out

    monkeypatch.setattr(training, "build_inputs", recording)
    monkeypatch.setattr(evaluation, "build_inputs", recording)
    corpus = data.train.head(8)
    training.train(config, corpus, data.tokenizers, tmp_path, device=CPU,
                   progress=False)
    flow["now"] = "eval"
    model = build_model("small", data.languages.vocab_size, 2)
    Evaluator(model, config, data.languages, CPU).sentences(corpus, [0])
    assert seen["train"] and seen["train"] == seen["eval"]
    v = data.languages.languages[1].offset
    sentence = tuple(corpus.sentence(0))
    english, fake = seen["eval"][(sentence, 0)], seen["eval"][(sentence, 1)]
    assert english == (sentence, tuple(range(len(sentence))), (0,) * len(sentence))
    assert fake[0] == (sentence[0] + v, *(t + v for t in reversed(sentence[1:-1])),
                       sentence[-1] + v)
    assert fake[1] == tuple(range(128, 128 + len(sentence))) and set(fake[2]) == {1}


def test_entry_point_logs_into_the_pretrain_run(tracking: str, prepare_run: str) -> None:
    run_command(pretrain_entry.command, ["--exp", "2", "--max-steps", "4", "--batch-size", "8",
                                         "--checkpoint-every", "2", "--data-run-id",
                                         prepare_run])
    client = MlflowClient()
    (run,) = client.search_runs([mlflow.get_experiment_by_name(tracking).experiment_id])
    run_command(evaluate_entry.command, ["--run-id", run.info.run_id, "--checkpoints", "all",
                                         "--dev-sentences", "30"])
    history = client.get_metric_history(run.info.run_id, tracking_lib.MULT_SCORE)
    assert sorted(m.step for m in history) == [2, 4]
    logged = client.get_run(run.info.run_id).data.metrics
    for key in (tracking_lib.align_f1(0), tracking_lib.retrieval_p1(8), "L0/translation_p10",
                tracking_lib.PPL_TRAIN, tracking_lib.PPL_DEV, "L8/align_forward_f1",
                "L8/align_precision", "L0/retrieval_p1_en2fake"):
        assert key in logged, key
    # Table 1's numbers group together, in a group sorted before every other.
    groups = sorted({key.split("/")[0] for key in logged})
    assert groups[0] == tracking_lib.TABLE1
    assert {k for k in logged if k.startswith(f"{tracking_lib.TABLE1}/")} == set(
        tracking_lib.TABLE1_METRICS)
    report = json.loads(Path(mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="evaluation/step-4.json")).read_text())
    assert report["dev_sentences"] == 30 and report["config"]["shift_special"]
    # The dev set's size is a metric too, so Table 1 averages only runs scored on equal ones.
    assert logged[tracking_lib.DEV_SENTENCES] == 30
    assert ("dev_sentences", "30") in PretrainRun(client.get_run(run.info.run_id)).settings
    assert report["scores"]["mult_score"] == pytest.approx(history[-1].value if history[-1].step
                                                           == 4 else history[0].value)
    # Forward and backward alignment predict one edge per word against a one-to-one gold
    # alignment: precision = recall = F1, a property, so only the F1 is logged (once).
    for layer in (0, 8):
        for direction in ("forward", "backward"):
            p, r, f1 = (report["scores"][f"align_{direction}_{m}/L{layer}"]
                        for m in ("precision", "recall", "f1"))
            assert p == pytest.approx(r, abs=1e-12) and p == pytest.approx(f1, abs=1e-12)
            assert logged[f"L{layer}/align_{direction}_f1"] == pytest.approx(f1)
            assert f"L{layer}/align_{direction}_precision" not in logged
    for name in ("token_embeddings_pca.png", "position_similarity.png"):
        png = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id,
                                                       artifact_path=f"figures/{name}"))
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def _bad(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        run_command(evaluate_entry.command, args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ")
    return err


def test_bad_inputs(tracking: str, prepare_run: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert "does not exist" in _bad(["--run-id", "feedfacefeedface"], capsys)
    assert "not a pretrain run" in _bad(["--run-id", prepare_run], capsys)
    experiment = mlflow.set_experiment(tracking)
    empty = MlflowClient().create_run(experiment.experiment_id, tags={
        "step": "pretrain", "data_run_id": prepare_run})
    assert "no checkpoints" in _bad(["--run-id", empty.info.run_id], capsys)
    run_command(pretrain_entry.command, ["--exp", "18", "--data-run-id", prepare_run])
    capsys.readouterr()
    run = MlflowClient().search_runs([experiment.experiment_id],
                                     "attributes.status = 'FINISHED'")[0]
    assert "layers 0 (embeddings) to 12" in _bad(["--run-id", run.info.run_id, "--layers",
                                                   "0,13"], capsys)
    assert "do not exist" in _bad(["--run-id", run.info.run_id, "--checkpoints", "7"], capsys)


def test_other_layers_are_reported_and_titled_as_asked(tracking: str, prepare_run: str,
                                                        capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    titles = []
    drawn = figures.embedding_pca
    monkeypatch.setattr(figures, "embedding_pca",
                        lambda *args: titles.append(args[-1]) or drawn(*args))
    run_command(pretrain_entry.command, ["--exp", "18", "--data-run-id", prepare_run])
    (run,) = MlflowClient().search_runs([mlflow.get_experiment_by_name(tracking).experiment_id])
    capsys.readouterr()
    run_command(evaluate_entry.command, ["--run-id", run.info.run_id, "--layers", "8,4",
                                         "--dev-sentences", "20"])
    line = capsys.readouterr().out.splitlines()[-1]
    logged = MlflowClient().get_run(run.info.run_id).data.metrics
    # No μ without layers 0 and 8; each layer's scores in the order asked.
    assert line.startswith("step 0: μ – | L8 align ")
    assert (f"L4 align {logged[tracking_lib.align_f1(4)]:.2f} retr "
            f"{logged[tracking_lib.retrieval_p1(4)]:.2f}") in line
    assert line.index("L8 align") < line.index("L4 align") and "L0" not in line
    assert titles == ["Layer 8: 18-untrained-s42, step 0"]  # the vectors of the first layer


def test_pretrain_eval_every_evaluates_as_it_trains(tracking: str, prepare_run: str) -> None:
    run_command(pretrain_entry.command, ["--exp", "1", "--max-steps", "5", "--batch-size", "8",
                                         "--eval-every", "2", "--data-run-id", prepare_run])
    client = MlflowClient()
    (run,) = client.search_runs([mlflow.get_experiment_by_name(tracking).experiment_id])
    # Checkpoints follow eval_every, and the last one is evaluated too.
    history = client.get_metric_history(run.info.run_id, tracking_lib.PPL_DEV)
    assert sorted(m.step for m in history) == [2, 4, 5]
    assert run.data.params["checkpoint_every"] == "2"
