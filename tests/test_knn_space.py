"""The knn-space step on real (small) data, and knn-replace pretraining that references it."""

from __future__ import annotations

import mlflow
import pytest
import torch
from mlflow.tracking import MlflowClient

from entrypoints import pretrain as pretrain_entry
from entrypoints.common import run_command
from minimult_ml import tracking as tracking_lib
from minimult_ml.crosslingual import KnnSpaceConfig
from minimult_ml.languages import NUM_SPECIAL, LanguageSet
from minimult_ml.prepare import load
from minimult_ml.steps import knn_space

SMALL_SPACE = KnnSpaceConfig(k=2, dim=16, epoch=5, bucket=20_000)


def test_knn_space_run_table_and_reuse(tracking: str, prepare_run: str, capsys) -> None:
    run_id = knn_space.get_or_run(prepare_run, SMALL_SPACE)
    assert "VecMap en-fake-en: " in capsys.readouterr().out  # each stage of the long part
    assert knn_space.get_or_run(prepare_run, SMALL_SPACE) == run_id  # built once, reused
    run = MlflowClient().get_run(run_id)
    assert run.data.tags["step"] == "knn-space" and run.data.params["dim"] == "16"
    assert 0 <= run.data.metrics["knn_precision_p1"] <= 1
    assert run.data.metrics["vecmap_iterations/0-1"] >= 1
    table = knn_space.load_table(run_id)
    languages = load(tracking_lib.download(prepare_run, "")).languages
    v = languages.languages[1].offset
    assert table.shape == (languages.vocab_size, 2, 2)
    ids = torch.arange(languages.vocab_size)
    content = ~languages.is_special(ids)
    other = 1 - languages.language_of(ids)
    neighbours = table[ids, other]  # [vocab, k]: the entries masking uses
    assert (languages.language_of(neighbours[content]) == other[content, None]).all()
    assert not languages.is_special(neighbours[content]).any()
    assert (neighbours[content, 0] != neighbours[content, 1]).all()  # k distinct neighbours
    assert table[:NUM_SPECIAL].eq(ids[:NUM_SPECIAL, None, None]).all()
    assert isinstance(languages, LanguageSet) and v == languages.vocab_size // 2


def test_knn_replace_pretraining_references_its_space(tracking: str, prepare_run: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    space = knn_space.get_or_run(prepare_run, SMALL_SPACE)
    with pytest.raises(SystemExit) as exit_info:  # k of the space ≠ the exp's k = 1
        run_command(pretrain_entry.command, ["--exp", "30", "--max-steps", "2",
                                             "--data-run-id", prepare_run, "--knn-run-id", space])
    assert exit_info.value.code == 2 and "k=2" in capsys.readouterr().err
    space1 = knn_space.get_or_run(prepare_run, KnnSpaceConfig(k=1, dim=16, epoch=5,
                                                              bucket=20_000))
    run_command(pretrain_entry.command, ["--exp", "knn-replace", "--max-steps", "3",
                                         "--batch-size", "8", "--data-run-id", prepare_run,
                                         "--knn-run-id", space1])
    experiment = mlflow.get_experiment_by_name(tracking)
    (run,) = MlflowClient().search_runs([experiment.experiment_id], "tags.step = 'pretrain'")
    assert run.info.status == "FINISHED" and run.info.run_name == "30-knn-replace-s42"
    assert run.data.tags["knn_run_id"] == space1 == run.data.params["knn_run_id"]
    assert (run.data.params["p_mask"], run.data.params["p_knn"]) == ("0.5", "0.3")


def test_other_exps_ignore_a_knn_space(tracking: str, prepare_run: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    # A sweep passes one knn_run_id to all its exps; row 0 trains as if none was given.
    space = knn_space.get_or_run(prepare_run, KnnSpaceConfig(k=1, dim=16, epoch=5,
                                                             bucket=20_000))
    args = ["--exp", "0", "--max-steps", "25", "--batch-size", "8",
            "--data-run-id", prepare_run]
    capsys.readouterr()
    run_command(pretrain_entry.command, [*args, "--knn-run-id", space])
    assert f"knn_run_id {space} is ignored" in capsys.readouterr().out
    run_command(pretrain_entry.command, args)
    experiment = mlflow.get_experiment_by_name(tracking)
    client = MlflowClient()
    without, given = client.search_runs([experiment.experiment_id], "tags.step = 'pretrain'")
    assert "knn_run_id" not in given.data.params and "knn_run_id" not in given.data.tags
    # The same masks, so the same losses (the neighbour table drew from the mask generator).
    losses = [[m.value for m in sorted(client.get_metric_history(r.info.run_id, "loss/train"),
                                       key=lambda m: m.step)] for r in (given, without)]
    assert len(losses[0]) == 3 and losses[0] == losses[1]  # steps 10, 20, 25


def test_quality_lines_warn_where_identical_spellings_do_not_map_to_themselves() -> None:
    report = {"knn_weak_p1/en-de": 0.0016, "knn_weak_pairs/en-de": 639.0,
              "knn_weak_p1/de-en": 0.62, "knn_weak_pairs/de-en": 639.0}
    lines = knn_space.quality_lines(report)
    assert lines[0] == ("knn-space: de-en precision@1 0.620 on the 639 tokens spelled "
                        "identically in both languages")
    assert lines[1].startswith("knn-space: en-de precision@1 0.002 on the 639 tokens")
    assert lines[2].startswith("knn-space: warning: the en-de mapping has likely failed")
    assert len(lines) == 3  # no warning for de-en
    lab = knn_space.quality_lines({"knn_precision_p1": 0.91, "knn_precision_p1_top1000": 0.99})
    assert lab == ["knn-space: precision@1 of the induced dictionary 0.910 (1,000 most "
                   "frequent tokens: 0.990)"]
