"""The real-data track (paper §5.1): several real languages prepared from text or Wikipedia's
layout, per-language id blocks and transforms, pretraining of every real-track exp, DDP with
torchrun, and XNLI zero-shot transfer — offline, on small corpora written for these tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from mlflow.tracking import MlflowClient
from transformers import AutoTokenizer, BertForMaskedLM

from entrypoints import prepare as prepare_entry
from entrypoints import pretrain as pretrain_entry
from entrypoints import xnli as xnli_entry
from entrypoints.common import run_command
from minimult_ml import experiments, nli
from minimult_ml import tracking as tracking_lib
from minimult_ml.crosslingual import KnnSpaceConfig
from minimult_ml.errors import InputError
from minimult_ml.inputs import build_inputs, input_config
from minimult_ml.languages import CLS, NUM_SPECIAL, SEP
from minimult_ml.prepare import PrepareConfig, load, prepare
from minimult_ml.steps import knn_space
from minimult_ml.steps import prepare as prepare_step
from minimult_ml.steps import pretrain as pretrain_step

from .conftest import ROOT, _free_port, on_server, refused

FIXTURES = ROOT / "tests" / "fixtures"
TEXT = FIXTURES / "real"  # en.txt, de.txt, hi.txt: 20 paragraphs of two sentences each
NLI_TRAIN = f"xnli-mt:{FIXTURES / 'nli' / 'multinli.train.en.tsv'}"
NLI_TEST = f"xnli-tsv:{FIXTURES / 'nli' / 'xnli.test.tsv'}"
REAL = PrepareConfig.of("en,de,hi", source=f"text:{TEXT}", vocab_size=200, dev_sentences=5)
TINY = ["--size", "small", "--max-steps", "3", "--batch-size", "8"]


@pytest.fixture(scope="module")
def real_prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("real")
    prepare(REAL, out)
    return out


def _paragraphs(lang: str) -> list[str]:
    return (TEXT / f"{lang}.txt").read_text(encoding="utf-8").splitlines()


def test_per_language_vocabularies_and_id_blocks(real_prepared: Path) -> None:
    data = load(real_prepared)
    languages = data.languages
    assert languages.codes == ["en", "de", "hi"]
    assert [(lang.offset, lang.size) for lang in languages.languages] == [
        (0, 200), (200, 200), (400, 200)]
    # 40 sentences per language (Punkt splits each paragraph in two, Hindi at the danda),
    # the last 5 held out as dev.
    assert np.bincount(data.train.lang).tolist() == [35, 35, 35]
    assert np.bincount(data.dev.lang).tolist() == [5, 5, 5]
    dev_text = (real_prepared / "data" / "dev.txt").read_text(encoding="utf-8").splitlines()
    for k, lang in enumerate(languages.codes):
        expected = [s for p in _paragraphs(lang) for s in p.split(
            "। " if lang == "hi" else ". ")][-5:]
        ours = dev_text[5 * k:5 * (k + 1)]
        assert [s.rstrip("।.") for s in ours] == [s.rstrip("।.") for s in expected]
        # The stored ids are the language's own tokenizer's, in local ids below its size.
        tok = data.tokenizers.by_language[lang]
        for i, sentence in zip(range(5 * k, 5 * (k + 1)), ours, strict=True):
            assert data.dev.sentence(i) == tok(sentence, truncation=True)["input_ids"]
        assert data.train.language(k).ids.max() < languages.languages[k].size
    # One merged tokenizer that AutoTokenizer loads names every global id; "Fluss" is German.
    merged = AutoTokenizer.from_pretrained(real_prepared / "tokenizer")
    assert len(merged) == languages.vocab_size == 600
    assert merged.convert_ids_to_tokens([200 + i for i in range(NUM_SPECIAL)]) == [
        "de::[PAD]", "de::[UNK]", "de::[CLS]", "de::[SEP]", "de::[MASK]"]
    de_ids = data.tokenizers.by_language["de"]("Fluss")["input_ids"][1:-1]
    assert merged.convert_ids_to_tokens([200 + i for i in de_ids])[0].startswith("de::")


def test_wikipedia_layout_sampled_to_a_byte_budget(tmp_path: Path) -> None:
    """The hub's wikimedia/wikipedia parquet layout on disk, one article per paragraph."""
    for lang in ("en", "de"):
        folder = tmp_path / "wiki" / f"20231101.{lang}"
        folder.mkdir(parents=True)
        texts = _paragraphs(lang)
        pq.write_table(pa.table({"id": [str(i) for i in range(len(texts))],
                                 "url": [f"https://{lang}.wikipedia.org/{i}"
                                         for i in range(len(texts))],
                                 "title": [f"t{i}" for i in range(len(texts))], "text": texts}),
                       folder / "train-00000-of-00001.parquet")
    budget = 800
    config = PrepareConfig.of("en,de", source=f"wikipedia:{tmp_path / 'wiki'}", vocab_size=150,
                              dev_sentences=3, bytes_per_language=budget, seed=1)
    stats = prepare(config, tmp_path / "out")["stats"]
    for lang in ("en", "de"):
        sizes = sorted(len(t.encode()) for t in _paragraphs(lang))
        documents = stats["train"][lang]["documents"]
        # Documents are taken until the budget is reached: at least what the budget needs even
        # with the longest articles, at most what it allows with the shortest.
        assert budget / sizes[-1] <= documents <= budget / sizes[0] + 1
        assert documents < len(sizes)
    data = load(tmp_path / "out")
    assert data.languages.codes == ["en", "de"]
    assert len(data.dev) == 6


def test_hub_without_network_names_the_local_alternatives(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    from minimult_ml.errors import InputError
    with pytest.raises(InputError, match=r"source=text:DIR .* source=wikipedia:DIR"):
        prepare(PrepareConfig.real(source="wikipedia", bytes_per_language=1000),
                tmp_path / "out")
    from minimult_ml import nli
    with pytest.raises(InputError, match=r"xnli-tsv:PATH"):
        nli.load_test("hub", ["de"])


def test_german_sentence_under_3_base_and_8_base(real_prepared: Path) -> None:
    data = load(real_prepared)
    languages = data.languages
    de = languages.index("de")
    local = torch.tensor([data.dev.sentence(5)])  # the first German dev sentence
    n = local.shape[1]
    lang = torch.tensor([de])
    # 3-base: inv-order reverses German (the second language) between [CLS] and [SEP], and German
    # tokens carry German's offset; specials stay shared.
    x = build_inputs(local, lang, languages, input_config(experiments.resolve("3-base"),
                                                          languages))
    body = local[0, 1:-1]
    assert x["input_ids"][0].tolist() == [CLS, *(body.flip(0) + 200).tolist(), SEP]
    assert x["position_ids"][0].tolist() == list(range(n))
    # English is not inverted under 3-base; invert=hi inverts Hindi instead.
    en = torch.tensor([data.dev.sentence(0)])
    x_en = build_inputs(en, torch.tensor([0]), languages,
                        input_config(experiments.resolve("3-base"), languages))
    assert x_en["input_ids"].tolist() == en.tolist()
    hi_config = input_config(experiments.resolve("3-base", invert="hi"), languages)
    assert hi_config.inverted == (languages.index("hi"),)
    # 8-base: German positions 128·1 + p, token type 1, German's own [CLS]/[SEP].
    x = build_inputs(local, lang, languages, input_config(experiments.resolve("8-base"),
                                                          languages))
    assert x["input_ids"][0].tolist() == (local[0] + 200).tolist()
    assert x["position_ids"][0].tolist() == [128 + p for p in range(n)]
    assert x["token_type_ids"][0].tolist() == [1] * n


def test_xnli_pairs_get_the_inputs_pretraining_gave_their_language(real_prepared: Path) -> None:
    """A German premise–hypothesis pair under 3-base: German ids (+200), each segment reversed
    in place; under 8-base: German positions, token type and specials."""
    from minimult_ml import transfer

    data = load(real_prepared)
    languages = data.languages
    pair = transfer.Examples(["Der Fluss fließt."], np.array([0]), ["Die Stadt hat einen Fluss."])
    (local,) = transfer.encode(data.tokenizers, "de", pair)["input_ids"]
    first_sep = local.index(SEP)
    premise, hypothesis = local[1:first_sep], local[first_sep + 1:-1]
    assert local == [CLS, *premise, SEP, *hypothesis, SEP] and premise and hypothesis
    collate = transfer.LanguageCollator(data.tokenizers, input_config(
        experiments.resolve("3-base"), languages), "de")
    batch = collate([{"input_ids": local, "label": 0}])
    assert batch["input_ids"][0].tolist() == [CLS, *(t + 200 for t in premise[::-1]), SEP,
                                              *(t + 200 for t in hypothesis[::-1]), SEP]
    assert batch["labels"].tolist() == [0]
    collate = transfer.LanguageCollator(data.tokenizers, input_config(
        experiments.resolve("8-base"), languages), "de")
    batch = collate([{"input_ids": local, "label": 2}])
    assert batch["input_ids"][0].tolist() == [t + 200 for t in local]
    assert batch["position_ids"][0].tolist() == [128 + p for p in range(len(local))]
    assert batch["token_type_ids"][0].tolist() == [1] * len(local)


@pytest.fixture(scope="module")
def real_run(mlflow_server: str) -> str:
    """A finished real-track prepare run on the test server (its own experiment)."""
    with on_server(mlflow_server, "fixtures-real"):
        return prepare_step.get_or_run(REAL)


def test_every_real_track_exp_pretrains_and_transfers_on_xnli(tracking: str,
                                                              real_run: str) -> None:
    client = MlflowClient()
    space = knn_space.get_or_run(real_run, KnnSpaceConfig(k=5, dim=16, epoch=5, bucket=20_000))
    for exp in ("0-base", "3-base", "8-base", "30-base"):
        run_id = pretrain_step.pretrain(
            exp, {"size": "small", "max_steps": 3, "batch_size": 8}, real_run, resume=False,
            knn_run_id=space if exp == "30-base" else "")
        run = client.get_run(run_id)
        assert run.data.tags["paper_id"] == exp and run.data.tags["track"] == "real"
        assert run.data.params["lr"] == "0.0001" and run.data.params["epochs"] == "2"
        folder = tracking_lib.download(run_id, "model")
        model = BertForMaskedLM.from_pretrained(folder)
        assert model.config.vocab_size == 600 and model.config.type_vocab_size == 3
        assert model.config.max_position_embeddings == 3 * 128
        assert (folder / "languages" / "hi" / "tokenizer.json").is_file()

        run_command(xnli_entry.command, ["--run-id", run_id, "--train", NLI_TRAIN, "--test",
                                         NLI_TEST, "--epochs", "1", "--batch-size", "16"])
        (xnli,) = client.search_runs(
            [mlflow.get_experiment_by_name(tracking).experiment_id],
            f"tags.step = 'transfer' and tags.pretrain_run_id = '{run_id}'")
        assert xnli.info.status == "FINISHED"
        assert xnli.data.tags["paper_id"] == exp and xnli.data.tags["seed"] == "42"
        assert xnli.data.tags["task"] == "xnli"
        assert set(xnli.data.metrics) >= {"xnli_acc/en", "xnli_acc/de", "xnli_acc/hi"}
        report = json.loads(Path(tracking_lib.download(xnli.info.run_id, "xnli.json"))
                            .read_text())["languages"]
        for lang in ("en", "de", "hi"):
            confusion = np.array(report[lang]["confusion"])
            # 12 test pairs per language, 4 of each label; accuracy is the confusion's diagonal.
            assert confusion.sum() == 12 and confusion.sum(1).tolist() == [4, 4, 4]
            assert xnli.data.metrics[f"xnli_acc/{lang}"] == pytest.approx(
                np.trace(confusion) / 12)
        files = {f.path for f in client.list_artifacts(xnli.info.run_id, "figures")}
        assert files == {f"figures/confusion_{lang}.png" for lang in ("en", "de", "hi")}
        assert {f.path for f in client.list_artifacts(xnli.info.run_id, "model")} >= {
            "model/config.json", "model/model.safetensors", "model/languages"}


def test_ddp_two_processes_equal_one(tracking: str, prepare_run: str) -> None:
    """torchrun with two CPU processes (gloo) trains exactly like one process with the same
    effective batch: each process masks the whole batch alike and takes half its rows."""
    args = ["--exp", "lang-pos", "--max-steps", "20", "--batch-size", "16", "--dropout", "0",
            "--data-run-id", prepare_run]
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    for command in (["-m", "entrypoints.pretrain"],
                    ["-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
                     str(_free_port()), "-m", "entrypoints.pretrain"]):
        done = subprocess.run([sys.executable, *command, *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient()
    one, two = sorted(client.search_runs([mlflow.get_experiment_by_name(tracking).experiment_id],
                                         "tags.step = 'pretrain'"),
                      key=lambda r: r.info.start_time)
    losses = [{m.step: m.value for m in client.get_metric_history(r.info.run_id, "loss/train")}
              for r in (one, two)]
    assert sorted(losses[0]) == [10, 20] and losses[0] == pytest.approx(losses[1], rel=1e-5)
    weights = [BertForMaskedLM.from_pretrained(tracking_lib.download(r.info.run_id, "model"))
               .state_dict() for r in (one, two)]
    for name, value in weights[0].items():
        torch.testing.assert_close(weights[1][name], value, rtol=1e-4, atol=1e-5)


def test_multinli_jsonl_and_its_bad_files(tmp_path: Path) -> None:
    records = [("A man sleeps.", "A person rests.", "entailment"),
               ("Two said so.", "Nobody agreed.", "-"),  # no gold label: left out
               ("A dog runs.", "A cat sits.", "contradiction")]
    good = tmp_path / "multinli.jsonl"
    good.write_text("\n".join(json.dumps({"sentence1": a, "sentence2": b, "gold_label": c})
                              for a, b, c in records) + "\n\n", encoding="utf-8")
    examples = nli.load_train(f"multinli:{good}")
    assert examples.texts == ["A man sleeps.", "A dog runs."]
    assert examples.pairs == ["A person rests.", "A cat sits."]
    assert examples.labels.tolist() == [0, 2]
    broken = tmp_path / "broken.jsonl"
    broken.write_text(good.read_text(encoding="utf-8") + "{not json\n", encoding="utf-8")
    latin1 = tmp_path / "latin1.jsonl"
    latin1.write_bytes(json.dumps({"sentence1": "Café", "sentence2": "x", "gold_label":
                                   "neutral"}, ensure_ascii=False).encode("latin-1"))
    folder = tmp_path / "folder.jsonl"
    folder.mkdir()
    for path, message in ((broken, "line 5 is not a MultiNLI record"), (latin1, "not UTF-8"),
                          (folder, "no MultiNLI file"), (tmp_path / "none.jsonl", "no MultiNLI")):
        with pytest.raises(InputError, match=message) as err:
            nli.load_train(f"multinli:{path}")
        assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_bad_inputs(tracking: str, real_run: str, prepare_run: str, tmp_path: Path,
                    capsys: pytest.CaptureFixture[str]) -> None:
    text = f"text:{TEXT}"
    assert "ISO 639" in refused(prepare_entry.command, ["--languages", "en,deu1", "--source", text],
                             capsys)
    assert "zz.txt" in refused(prepare_entry.command, ["--languages", "en,zz", "--source", text],
                            capsys)
    assert "unknown source" in refused(prepare_entry.command, ["--languages", "en,de",
                                                            "--source", "bibles"], capsys)
    assert "dev_sentences" in refused(prepare_entry.command, ["--languages", "en,de", "--source",
                                                           text, "--dev-sentences", "500"],
                                   capsys)
    # Pretraining: a lab-only modification, an unknown inverted language, a real exp on lab data.
    assert "lab only" in refused(pretrain_entry.command, ["--exp", "no-parallel", "--data-run-id",
                                                       real_run], capsys)
    assert "invert=fr" in refused(pretrain_entry.command, ["--exp", "3-base", "--invert", "fr",
                                                        "--data-run-id", real_run, *TINY], capsys)
    assert "real-track exp" in refused(pretrain_entry.command, ["--exp", "0-base", "--data-run-id",
                                                             prepare_run], capsys)
    assert "source=bible" in refused(pretrain_entry.command, ["--exp", "0-base", "--data-run-id",
                                                           real_run, "--eval-every", "2"], capsys)
    # XNLI: a test file with the wrong header, a language the model does not know.
    pretrain_step.pretrain("0-base", {"size": "small", "max_steps": 1, "batch_size": 8},
                            real_run, resume=False)
    capsys.readouterr()
    (run,) = MlflowClient().search_runs(
        [mlflow.get_experiment_by_name(tracking).experiment_id], "tags.step = 'pretrain'")
    wrong = tmp_path / "xnli.test.tsv"
    wrong.write_text("lang\tpremise\thypothesis\nen\ta\tb\n", encoding="utf-8")
    xnli_args = ["--run-id", run.info.run_id, "--train", NLI_TRAIN]
    assert "lacks the column(s) language, gold_label, sentence1, sentence2" in refused(
        xnli_entry.command, [*xnli_args, "--test", f"xnli-tsv:{wrong}"], capsys)
    assert "the model knows en, de, hi" in refused(
        xnli_entry.command, [*xnli_args, "--test", NLI_TEST, "--languages", "fr"], capsys)
    assert "not a pretrain run" in refused(xnli_entry.command, ["--run-id", real_run], capsys)
    # Nothing half-written: the failed calls left no xnli run.
    assert not MlflowClient().search_runs(
        [mlflow.get_experiment_by_name(tracking).experiment_id], "tags.step = 'xnli'")
