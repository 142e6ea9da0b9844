"""`kendall-tau`: batched word vectors against a plain loop, our checkpoints' inputs, the whole
entry point on a tiny model (tau, Pearson r, artifacts), accuracies, and bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import mlflow
import pytest
import torch
from mlflow.tracking import MlflowClient
from scipy.stats import pearsonr
from transformers import BertConfig, BertForMaskedLM, BertModel, PreTrainedTokenizerFast

from entrypoints import kendall_tau as kendall_tau_entry
from entrypoints.common import run_command
from minimult_ml import bibles, experiments, training, vocab, wordorder
from minimult_ml.errors import InputError
from minimult_ml.inputs import build_inputs
from minimult_ml.parallel import load_parallel
from minimult_ml.representations import load_encoder
from minimult_ml.steps import kendall_tau
from minimult_ml.wordorder import word_vectors

CPU = torch.device("cpu")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# No word twice in a sentence and no punctuation: identical vectors then belong to the same word
# only, and reversing the whitespace-separated words reverses the tokenizer's words too.
SENTENCES = [
    "the cat sleeps on a warm mat",
    "we will travel to Berlin next summer",
    "my brother reads old books every evening",
    "children play football in the park",
    "she quickly wrote three long letters to her friends",
    "rain fell all night",
    "our teacher explained the difficult lesson twice",
    "birds sing loudly before sunrise",
]
ACCURACY = {"en": 81.0, "de": 60.0, "fr": 74.0, "es": 70.0}


def swap_first_two(line: str) -> str:
    words = line.split()
    return " ".join([words[1], words[0], *words[2:]])


def tiny_config(vocab_size: int, **kw: int) -> BertConfig:
    return BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2,
                      num_attention_heads=2, intermediate_size=64, **kw)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny random encoders: a Hugging Face BERT, the same without positions, a lab checkpoint."""
    root = tmp_path_factory.mktemp("encoders")
    # A small vocabulary, so that some words are split into subwords.
    english = vocab.train_wordpiece(SENTENCES, 90)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=english, unk_token="[UNK]",
                                        pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
                                        mask_token="[MASK]")
    torch.manual_seed(0)
    contextual = BertModel(tiny_config(len(tokenizer)))
    # Without position embeddings BERT is permutation-equivariant: every layer maps a word to the
    # same vector wherever it stands, so a reversed sentence must align as exactly reversed. With
    # positions, a contextual model gives no such guarantee.
    bag = BertModel(tiny_config(len(tokenizer)))
    bag.embeddings.position_embeddings.weight.data.zero_()
    folders = {"contextual": root / "contextual", "bag": root / "bag", "lab": root / "lab"}
    for model, name in ((contextual, "contextual"), (bag, "bag")):
        model.save_pretrained(folders[name])
        tokenizer.save_pretrained(folders[name])
    lab_tokenizers = vocab.Tokenizers.lab(english)
    languages = lab_tokenizers.languages
    # Exp 9 (lang-pos, inv-order, shift-special, no-random) exercises every input transform.
    config = experiments.resolve("9")
    lab = BertForMaskedLM(tiny_config(languages.vocab_size, max_position_embeddings=256,
                                      type_vocab_size=2))
    training.save_checkpoint(lab, lab_tokenizers, config, folders["lab"])
    return folders


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """en; de = every line's words reversed; fr = identical; es = first two words swapped."""
    root = tmp_path_factory.mktemp("parallel")
    variants = {"en": SENTENCES, "de": [" ".join(s.split()[::-1]) for s in SENTENCES],
                "fr": SENTENCES, "es": [swap_first_two(s) for s in SENTENCES]}
    for lang, lines in variants.items():
        (root / f"{lang}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_batched_word_vectors_equal_a_per_sentence_loop(models: dict[str, Path]) -> None:
    encoder = load_encoder(str(models["contextual"]), CPU)
    for layer in (0, 2):
        batched = encoder.word_vectors(SENTENCES, "en", layer, batch_size=3)
        for sentence, got in zip(SENTENCES, batched, strict=True):
            x = encoder.tokenizer(sentence, return_tensors="pt")
            with torch.no_grad():
                hidden = encoder.model(**x, output_hidden_states=True).hidden_states[layer][0]
            ids = x.word_ids(0)
            words = sorted({w for w in ids if w is not None})
            expected = torch.stack([hidden[[i for i, w in enumerate(ids) if w == word]].mean(0)
                                    for word in words])
            assert len(got) == len(sentence.split())
            torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_identical_sentences_keep_their_order_in_a_contextual_layer(
        models: dict[str, Path]) -> None:
    encoder = load_encoder(str(models["contextual"]), CPU)
    vectors = encoder.word_vectors(SENTENCES, "en", 2)
    again = encoder.word_vectors(SENTENCES, "fr", 2)  # any code: a Hugging Face model ignores it
    assert [wordorder.pair_tau(a, b) for a, b in zip(vectors, again, strict=True)] == [
        1.0] * len(SENTENCES)


def test_lab_checkpoint_gets_its_training_inputs(models: dict[str, Path]) -> None:
    """Fake-English (English text, Fake-English's ids) through exp 9's transforms, against a
    hand-built reference: the English local ids as language 1, its reversed output flipped back."""
    encoder = load_encoder(str(models["lab"]), CPU)
    assert encoder.ours is not None
    tok = encoder.ours.tokenizers.by_language["en"]
    languages, config = encoder.ours.tokenizers.languages, encoder.ours.config
    assert config.lang_pos and config.shift_special and config.inverted == (1,)
    got = encoder.word_vectors(SENTENCES, "fake-en", 2, batch_size=3)
    for sentence, vectors in zip(SENTENCES, got, strict=True):
        x = tok(sentence, return_tensors="pt")  # English: local ids = global ids
        inputs = build_inputs(x["input_ids"], torch.tensor([1]), languages, config)
        with torch.no_grad():
            hidden = encoder.model(**inputs, output_hidden_states=True).hidden_states[2][0]
        tokens = torch.cat([hidden[:1], hidden[1:-1].flip(0), hidden[-1:]])  # undo inv-order
        expected = word_vectors(tokens, x.word_ids(0))
        assert len(vectors) == len(sentence.split())
        torch.testing.assert_close(vectors, expected, atol=1e-5, rtol=0)
    with pytest.raises(InputError, match=r"languages en, fake-en and cannot encode de"):
        encoder.check(["de"], 2)


def test_entry_point_end_to_end(tracking: str, models: dict[str, Path], data_dir: Path,
                                tmp_path: Path) -> None:
    csv_path = tmp_path / "acc.csv"
    csv_path.write_text("lang,accuracy\n" + "".join(f"{k},{v}\n" for k, v in ACCURACY.items()))
    run_command(kendall_tau_entry.command, [
        "--model", str(models["bag"]), "--data", f"dir:{data_dir}", "--languages", "de,fr,es",
        "--layer", "2", "--sentences", "100", "--accuracies", f"csv:{csv_path}"])

    experiment = mlflow.get_experiment_by_name(tracking)
    (run,) = MlflowClient().search_runs([experiment.experiment_id])
    assert run.data.tags["step"] == "kendall-tau" and run.data.tags["model"] == str(models["bag"])
    assert run.data.params["layer"] == "2" and run.data.params["languages"] == "de,fr,es"
    assert "git_commit" in run.data.params
    m = run.data.metrics
    swap = sum(1 - math.sqrt(1 / math.comb(len(s.split()), 2)) for s in SENTENCES) / len(SENTENCES)
    assert m["kendall_tau/fr"] == 1.0 and m["kendall_tau/de"] == 0.0
    assert m["kendall_tau/es"] == pytest.approx(swap)
    assert m["kendall_tau/en"] == 1.0 and m["kendall_tau_std/fr"] == 0.0
    assert m["kendall_tau_sentences/de"] == len(SENTENCES) and m["kendall_tau_skipped/de"] == 0
    tau = {"en": 1.0, "de": 0.0, "fr": 1.0, "es": swap}
    for name, langs in (("with_en", ["en", "de", "fr", "es"]), ("without_en", ["de", "fr", "es"])):
        r, p = pearsonr([tau[x] for x in langs], [ACCURACY[x] for x in langs])
        assert m[f"pearson_r/{name}"] == pytest.approx(r)
        assert m[f"pearson_p/{name}"] == pytest.approx(p)

    out = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, dst_path=tmp_path))
    table = json.loads((out / "table4.json").read_text())
    assert table["languages"]["de"] == {"tau": 0.0, "std": 0.0, "sentences": len(SENTENCES),
                                        "skipped": 0, "accuracy": 60.0}
    assert table["languages"]["en"]["tau"] == 1.0
    assert table["pearson"]["without_en"]["n"] == 3
    assert table["accuracy_source"] == f"csv {csv_path}"
    scores = json.loads((out / "scores" / "es.json").read_text())
    assert scores[0] == {"tau": pytest.approx(1 - math.sqrt(1 / 21)), "en": SENTENCES[0],
                         "es": swap_first_two(SENTENCES[0])}
    for name in ("kendall_tau_de", "kendall_tau_fr", "kendall_tau_es", "tau_vs_accuracy"):
        assert (out / "figures" / f"{name}.png").read_bytes()[:8] == PNG_SIGNATURE


def test_accuracies_from_the_newest_xnli_run(tracking: str) -> None:
    with pytest.raises(InputError, match="no finished xnli run"):
        kendall_tau.load_accuracies("xnli-runs")
    client = MlflowClient()
    experiment_id = mlflow.set_experiment(tracking).experiment_id
    for acc in (0.5, 0.7):  # the newer run wins; runs log fractions, Table 4 shows percent
        run = client.create_run(experiment_id, tags={"step": "xnli"})
        client.log_metric(run.info.run_id, "xnli_acc/de", acc)
        client.log_metric(run.info.run_id, "loss/train", 1.0)
        client.set_terminated(run.info.run_id)
    acc, source = kendall_tau.load_accuracies("xnli-runs")
    assert acc == {"de": pytest.approx(70.0)} and source == f"xnli run {run.info.run_id}"


def test_our_model_is_measured_on_its_own_bible_split(tracking: str) -> None:
    # A real-track model prepared on a chapter split of its own (seed 7): its test verses are
    # the ones to measure word order on, never verses of its training chapters.
    client = MlflowClient()
    experiment_id = mlflow.set_experiment(tracking).experiment_id

    def prepare_run(**params: object) -> str:
        run_id = client.create_run(experiment_id, tags={"step": "prepare"}).info.run_id
        for key, value in params.items():
            client.log_param(run_id, key, value)
        client.set_terminated(run_id)
        return run_id

    editions = bibles.editions_for(["en", "de", "hi"])
    own = ",".join(f"{c}:{e}" for c, e in editions.items())
    bible = prepare_run(source="bible", editions=own, languages="en,de,hi", seed=7)
    lab = prepare_run(source="web+kjv", languages="en,fake-en", seed=7)
    assert kendall_tau.bible_of_model("bible", bible, ["de"]) == (
        f"bible:en:{editions['en']},de:{editions['de']}", 7)
    assert kendall_tau.bible_of_model("bible:de:s", bible, ["de"]) == ("bible:de:s", 7)
    assert kendall_tau.bible_of_model("bible", lab, ["de"]) == ("bible", bibles.SPLIT_SEED)
    assert kendall_tau.bible_of_model("hub", bible, ["de"]) == ("hub", bibles.SPLIT_SEED)
    # The verses loaded are that split's test verses: none from its training chapters.
    texts = load_parallel(f"bible:en:{editions['en']},de:{editions['de']}", ["de"], 50, 7)
    test = bibles.split_verses(editions["de"], "test", 7)
    train = set(bibles.split_verses(editions["de"], "train", 7).values())
    assert texts["de"] == list(test.values())[:50] and not train & set(texts["de"])
    assert texts["de"] != load_parallel("bible", ["de"], 50)["de"]  # another split


def test_accuracies_from_the_paper() -> None:
    acc, _ = kendall_tau.load_accuracies("paper")
    assert acc["en"] == 81.4 and len(acc) == 15


CSV = "{tmp}/acc.csv"


@pytest.mark.parametrize(("args", "files", "message"), [
    (["--model", "{tmp}/missing"], {}, "could not load model"),
    (["--model", "{tmp}"], {}, "has no tokenizer"),
    (["--layer", "3"], {}, "has layers 0 (embeddings) to 2"),
    (["--sentences", "0"], {}, "sentences must be a positive number"),
    (["--languages", "xx"], {}, "language(s) xx not in"),
    (["--languages", "en"], {}, "give codes other than en"),
    (["--data", "dir:{tmp}"], {"en.txt": "a b\nc d\n", "de.txt": "a b\n"},
     "de.txt has 1 lines but"),
    (["--model", "{lab}"], {}, "cannot encode de"),
    (["--accuracies", "nope"], {}, "unknown accuracies"),
    (["--accuracies", f"csv:{CSV}"], {"acc.csv": "language,acc\nde,1\n"}, "needs the header"),
    (["--accuracies", f"csv:{CSV}"], {"acc.csv": "lang,accuracy\nde,high\n"}, "line 2"),
    (["--accuracies", f"csv:{CSV}"], {"acc.csv": "lang,accuracy\nde,1\nde,2\n"}, "line 3"),
    (["--accuracies", f"csv:{CSV}"], {"acc.csv": "lang,accuracy\n"}, "no rows"),
])
def test_bad_input_is_one_line_and_exit_2(args: list[str], files: dict[str, str], message: str,
                                          models: dict[str, Path], data_dir: Path,
                                          tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    defaults = {"--model": str(models["contextual"]), "--data": f"dir:{data_dir}",
                "--languages": "de", "--layer": "2"}
    given = dict(zip(args[::2], args[1::2], strict=True))
    argv = [x.format(tmp=tmp_path, lab=models["lab"]) for k, v in (defaults | given).items()
            for x in (k, v)]
    with pytest.raises(SystemExit) as exit_info:
        run_command(kendall_tau_entry.command, argv)
    assert exit_info.value.code == 2
    # Loading a model may draw a progress bar on stderr first; the error is its last line.
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err, err
    last = err.splitlines()[-1]
    assert last.startswith("error: ") and message in last, err
