"""The steps layer: a finished run is reused only when its parameters match and the code that
computes its step has not changed (or the user says otherwise); every run records the code and
commit that made it where the UI shows them; `mlflow run`'s launcher says what it is."""

from __future__ import annotations

import shutil
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NOTE

from minimult_ml import tracking as tracking_lib
from minimult_ml.prepare import PrepareConfig
from minimult_ml.steps import prepare as prepare_step
from minimult_ml.steps import runs

TINY = PrepareConfig(train_sentences=200, dev_sentences=40, vocab_size=300)
OLD_CODE = "0123456789abcdef"


def test_code_version_follows_the_steps_modules_only(tmp_path: Path) -> None:
    package = tmp_path / "minimult_ml"
    shutil.copytree(runs.PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    before = {step: runs.fingerprint(roots, package) for step, roots in runs.STEP_MODULES.items()}
    assert before == {step: runs.code_version(step) for step in runs.STEP_MODULES}
    # prepare reads text through corpus (an import): editing it changes prepare's code and
    # knn-space's (which imports prepare), and no other step's.
    assert "corpus" in runs.code_modules(("prepare",), package)
    with (package / "corpus.py").open("a") as f:
        f.write("\n# a fix\n")
    after = {step: runs.fingerprint(roots, package) for step, roots in runs.STEP_MODULES.items()}
    assert {step for step in after if after[step] != before[step]} == {"prepare", "knn-space"}
    # Editing the orchestration, or a module prepare does not use, changes no prepare run.
    for name in ("steps/prepare.py", "tracking.py", "genre.py"):
        with (package / name).open("a") as f:
            f.write("\n# an edit\n")
    assert runs.fingerprint(runs.STEP_MODULES["prepare"], package) == after["prepare"]
    assert runs.fingerprint(runs.STEP_MODULES["transfer"], package) != after["transfer"]


def test_a_run_of_older_code_is_not_reused_silently(tracking: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    client = MlflowClient()
    first = prepare_step.get_or_run(TINY)
    assert prepare_step.get_or_run(TINY) == first  # same parameters, same code: reused
    assert f"prepare: reusing finished run {first}" in capsys.readouterr().out
    run = client.get_run(first)
    assert run.data.tags[runs.CODE_TAG] == runs.code_version("prepare")

    # The run was made by other code (as if `prepare`'s modules changed since).
    client.set_tag(first, runs.CODE_TAG, OLD_CODE)
    assert prepare_step.get_or_run(TINY, reuse="any") == first  # the user ignores the code
    capsys.readouterr()
    second = prepare_step.get_or_run(TINY)
    out = capsys.readouterr().out
    assert second != first
    assert (f"prepare: not reusing run {first} (same parameters, made by {OLD_CODE}, prepare's "
            f"code is now {runs.code_version('prepare')}); reuse=any would reuse it") in out
    assert prepare_step.get_or_run(TINY) == second
    # A run from before code versions were recorded counts as other code too.
    client.delete_tag(second, runs.CODE_TAG)
    third = prepare_step.get_or_run(TINY)
    assert third not in (first, second)
    assert f"not reusing run {second} (same parameters, made by code that recorded no " \
           "version" in capsys.readouterr().out
    assert prepare_step.get_or_run(TINY, reuse="never") not in (first, second, third)
    experiment = mlflow.get_experiment_by_name(tracking)
    assert len(client.search_runs([experiment.experiment_id], "tags.step = 'prepare'")) == 4


def test_a_step_run_shows_its_source_commit_command_and_description(
        tracking: str, monkeypatch: pytest.MonkeyPatch) -> None:
    client = MlflowClient()
    experiment = mlflow.set_experiment(tracking)
    # As under `mlflow run`: a launcher run of its own, named by MLFLOW_RUN_ID.
    launcher = client.create_run(experiment.experiment_id).info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", launcher)
    monkeypatch.setattr("sys.argv", [str(Path("entrypoints/prepare.py").resolve()),
                                     "--train-sentences", "200"])
    run_id = prepare_step.get_or_run(TINY, reuse="never")
    run = client.get_run(run_id)
    tags, params = run.data.tags, run.data.params
    commit, dirty = tracking_lib.git_commit()
    assert tags["step"] == "prepare" and run.info.run_name == prepare_step.run_name(TINY)
    assert tags["mlflow.source.git.commit"] == params["git_commit"] == commit
    assert params["git_dirty"] == str(dirty).lower()
    assert tags["mlflow.source.name"] == "entrypoints.prepare" and tags["mlflow.user"]
    note = tags[MLFLOW_RUN_NOTE]
    assert note.startswith("Prepared bible in en, fake-en")
    assert note.endswith("Command: `python -m entrypoints.prepare --train-sentences 200`")
    # The launcher says what it is, and sits under the run it launched.
    labelled = client.get_run(launcher)
    assert labelled.info.run_name == f"launch-{run.info.run_name}"
    assert labelled.data.tags["step"] == "launcher"
    assert labelled.data.tags["launched_step"] == "prepare"
    assert labelled.data.tags["see_run_id"] == run_id
    assert labelled.data.tags[MLFLOW_PARENT_RUN_ID] == run_id


def test_search_pages_and_quotes(tracking: str) -> None:
    client = MlflowClient()
    experiment = mlflow.set_experiment(tracking)
    names = ["it's", 'say "hi"', "back\\slash", "both ' and \"", "ends\\", "plain", "plain"]
    for name in names:
        run = client.create_run(experiment.experiment_id, tags={"step": "probe"})
        client.log_param(run.info.run_id, "name", name)
    # Pages of 3 runs: every run is found once, newest first.
    paged = tracking_lib.search([tracking], "tags.step = 'probe'", page_size=3)
    assert len({r.info.run_id for r in paged}) == len(names)
    assert [r.info.start_time for r in paged] == sorted((r.info.start_time for r in paged),
                                                       reverse=True)
    assert len(tracking_lib.search([tracking], "tags.step = 'probe'", max_results=2)) == 2
    # Values with quotes and backslashes match exactly themselves.
    for name in set(names):
        found = tracking_lib.find_runs("probe", {"name": name}, tracking, finished=None)
        assert [r.data.params["name"] for r in found] == [name] * names.count(name)
