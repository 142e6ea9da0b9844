"""Faults a newcomer meets (issue 14): each is one line on stderr, exit code 2 (or the signal's
code), nothing left broken — and the store still works afterwards."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

from entrypoints import kendall_tau, knn_space, main, xnli
from entrypoints import prepare as prepare_entry
from entrypoints import pretrain as pretrain_entry
from entrypoints.common import run_command
from minimult_ml import store
from minimult_ml import tracking as tracking_lib
from minimult_ml.steps import prepare as prepare_step
from minimult_ml.steps import pretrain as pretrain_step
from minimult_ml.steps import runs

from .conftest import ROOT, SMALL, _free_port, on_server, serve_mlflow

SMALL_ARGS = ["--train-sentences", str(SMALL.train_sentences), "--dev-sentences",
              str(SMALL.dev_sentences), "--vocab-size", str(SMALL.vocab_size)]
# Long enough to be stopped in the middle, short enough to finish quickly when resumed.
TRAIN_ARGS = ["--max-steps", "100", "--checkpoint-every", "5", "--batch-size", "8",
              "--compile", "false"]
UNPRIVILEGED = "minimult-test"


def _error_line(text: str) -> str:
    """The one line a failing step printed (stderr of an entry point)."""
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text[-3000:]
    return lines[0]


def _exit(command: object, args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run an entry point in this process; it must exit 2 with one line."""
    with pytest.raises(SystemExit) as exit_info:
        run_command(command, args)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    line = _error_line(err)
    assert line.startswith("error: ")
    return line


@pytest.fixture
def sqlite_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A new SQLite store of this test's own, current in this process and its children."""
    uri = f"sqlite:///{tmp_path}/store/mlflow.db"
    previous = mlflow.get_tracking_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    for name in ("MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MINIMULT_STATE_DIR", str(tmp_path / "state"))
    mlflow.set_tracking_uri(uri)
    yield uri
    mlflow.set_tracking_uri(previous)


def _step(module: str, args: list[str], env: dict[str, str] | None = None,
          prefix: list[str] | None = None, cwd: Path = ROOT) -> subprocess.Popen:
    return subprocess.Popen([*(prefix or [sys.executable]), "-m", f"entrypoints.{module}", *args],
                            cwd=cwd, env=(env or os.environ) | {"PYTHONUNBUFFERED": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_checkpoint(proc: subprocess.Popen, experiment: str) -> str:
    """The id of the pretrain run `proc` trains, once a checkpoint and resume state are logged."""
    client = MlflowClient()
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        exp = client.get_experiment_by_name(experiment)
        runs = client.search_runs([exp.experiment_id], "tags.step = 'pretrain'") if exp else []
        if runs and "resume_step" in runs[0].data.tags:
            return runs[0].info.run_id
        time.sleep(0.3)
    raise AssertionError(f"no checkpoint was logged: {proc.communicate()}")


# --------------------------------------------------------------------------------------------
# The tracking server


def test_closed_port_fails_at_once(sqlite_store: str, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    """MLflow alone retries a closed port for 273 s in silence; the probe answers at once."""
    uri = f"http://127.0.0.1:{_free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    start = time.monotonic()
    line = _exit(prepare_entry.command, SMALL_ARGS, capsys)
    assert time.monotonic() - start < 60  # a bound against minutes of retries, not a benchmark
    assert line == (f"error: tracking server {uri} is unreachable (connection refused); start it "
                    "or fix MLFLOW_TRACKING_URI")


def test_server_gone_mid_run_resumes_once_it_is_back(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "server"
    root.mkdir()
    server_args = ["--backend-store-uri", f"sqlite:///{root}/mlflow.db",
                   "--artifacts-destination", str(root / "artifacts")]
    env = os.environ | {"MINIMULT_STATE_DIR": str(tmp_path / "state"),
                        "MLFLOW_EXPERIMENT_NAME": "gone",
                        # the bound itself (3 retries) is the default; one keeps the test short
                        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
                        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}
    env.pop("MLFLOW_RUN_ID", None)
    with serve_mlflow(server_args, root) as uri:
        with on_server(uri, "gone"):
            data_run_id = prepare_step.get_or_run(SMALL)
        args = ["--data-run-id", data_run_id, *TRAIN_ARGS]
        proc = _step("pretrain", args, env | {"MLFLOW_TRACKING_URI": uri})
        with on_server(uri, "gone"):
            run_id = _wait_for_checkpoint(proc, "gone")
        proc.send_signal(signal.SIGSTOP)  # the server goes away in the middle of training
    proc.send_signal(signal.SIGCONT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, err
    state = tmp_path / "state" / run_id
    assert err.splitlines()[-1] == (
        f"error: tracking server {uri} became unreachable (connection refused) while run "
        f"{run_id} was training; its training state is kept in {state}: once the server is "
        "back, run the same command with resume=true")
    assert (state / "training_state.pt").is_file()

    # The server is back (on another port, the same stores): the run continues and finishes.
    with serve_mlflow(server_args, root) as uri:
        proc = _step("pretrain", [*args, "--resume", "true"], env | {"MLFLOW_TRACKING_URI": uri})
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        assert f"pretrain: resuming run {run_id}" in out
        with on_server(uri, "gone"):
            client = MlflowClient()
            run = client.get_run(run_id)
            assert run.info.status == "FINISHED"
            steps = [m.step for m in client.get_metric_history(run_id, "loss/train")]
            assert max(steps) == 100 and len(steps) == len(set(steps))
            assert {f.path for f in client.list_artifacts(run_id, "model")} >= {
                "model/config.json", "model/model.safetensors"}
    assert not state.exists()  # the kept state goes once the run has finished


# --------------------------------------------------------------------------------------------
# Signals and orphans


def test_sigterm_stops_pretrain_like_ctrl_c(sqlite_store: str, tmp_path: Path) -> None:
    data_run_id = prepare_step.get_or_run(SMALL)
    args = ["--data-run-id", data_run_id, *TRAIN_ARGS, "--eval-every", "100"]
    proc = _step("pretrain", args)
    run_id = _wait_for_checkpoint(proc, "minimult-lab")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM, err
    line = err.splitlines()[-1]
    assert line.startswith("pretrain: stopped at step ") and line.endswith(
        f"; run {run_id} is KILLED with its last checkpoint: continue it with resume=true")
    client = MlflowClient()
    run = client.get_run(run_id)
    stopped_at = int(line.split("step ")[1].split(";")[0])
    assert run.info.status == "KILLED"
    assert run.data.tags["resume_step"] == str(stopped_at)  # the last checkpoint: where it stopped
    # It stopped at once: the stopped step is neither evaluated (minutes at full size) nor
    # logged as the run's model, which only a finished run has.
    assert stopped_at < 100 and tracking_lib.MULT_SCORE not in run.data.metrics
    assert not client.list_artifacts(run_id, "model")
    # And it continues from there, in the same run.
    run_command(pretrain_entry.command, [*args, "--resume", "true"])
    assert client.get_run(run_id).info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(run_id, "loss/train")]
    assert max(steps) == 100 and len(steps) == len(set(steps))
    assert [m.step for m in client.get_metric_history(run_id, tracking_lib.MULT_SCORE)] == [100]


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_orphan_runs_are_marked_killed(sqlite_store: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """A RUNNING run whose process is gone (kill -9, an evicted pod) becomes KILLED when a step
    with the same parameters starts; one whose process lives is not resumed twice."""
    data_run_id = prepare_step.get_or_run(SMALL)
    client = MlflowClient()
    exp = client.get_experiment_by_name("minimult-lab")
    params = pretrain_step.run_params(
        pretrain_step.resolve_config("original", max_steps=100, checkpoint_every=5,
                                      batch_size=8, compile="false"), data_run_id, "")

    def orphan(pid: int, step: str = "pretrain") -> str:
        tags = {"step": step, store.HOST_TAG: socket.gethostname(), store.PID_TAG: str(pid),
                "resume_step": "5", runs.CODE_TAG: runs.code_version(step)}
        run = client.create_run(exp.experiment_id, tags=tags)
        for key, value in params.items():
            client.log_param(run.info.run_id, key, value)
        return run.info.run_id

    dead, alive = orphan(_dead_pid()), orphan(os.getpid())
    capsys.readouterr()
    args = ["--data-run-id", data_run_id, *TRAIN_ARGS, "--resume", "true"]
    line = _exit(pretrain_entry.command, args, capsys)
    assert line == (f"error: run {alive} with these parameters is still training (process "
                    f"{os.getpid()} on {socket.gethostname()}); wait for it, or stop it and resume")
    assert client.get_run(dead).info.status == "KILLED"
    assert client.get_run(alive).info.status == "RUNNING"
    # A prepare run killed while it logged is marked when prepare runs again with its params.
    killed_prepare = client.create_run(exp.experiment_id, tags={
        "step": "prepare", store.HOST_TAG: socket.gethostname(), store.PID_TAG: str(_dead_pid())})
    for key, value in client.get_run(data_run_id).data.params.items():
        client.log_param(killed_prepare.info.run_id, key, value)
    assert prepare_step.get_or_run(SMALL) == data_run_id
    assert client.get_run(killed_prepare.info.run_id).info.status == "KILLED"


# --------------------------------------------------------------------------------------------
# Several processes at once


def test_two_first_prepares_at_once_on_a_new_sqlite_store(sqlite_store: str) -> None:
    """Two terminals, one new store: both succeed, and the data are prepared once."""
    procs = [_step("prepare", SMALL_ARGS) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    runs = MlflowClient().search_runs(
        [MlflowClient().get_experiment_by_name("minimult-lab").experiment_id],
        run_view_type=ViewType.ALL)
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    run_id = runs[0].info.run_id
    built = [out for out, _ in outs if f"prepare: finished run {run_id}" in out]
    reused = [out for out, _ in outs if f"prepare: reusing finished run {run_id}" in out]
    assert len(built) == len(reused) == 1, outs
    # The artifacts went beside the store, not into the working directory.
    folder = Path(runs[0].info.artifact_uri.removeprefix("file://"))
    assert folder.is_relative_to(Path(store.sqlite_path(sqlite_store)).parent / "mlruns")
    assert (folder / "stats.json").is_file()


# --------------------------------------------------------------------------------------------
# Under `mlflow run`


def test_bad_input_under_mlflow_run(sqlite_store: str) -> None:
    """MLflow's CLI exits 1 after any failed step, prints its own line last and marks its
    launcher run FAILED (see README): the step's one line is right above MLflow's, the launcher
    says why it failed, and the step left no run of its own."""
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run(
        [sys.executable, "-m", "mlflow", "run", str(ROOT), "-e", "pretrain", "--env-manager",
         "local", "-P", "seed=-1", "-P", "max_steps=1"], env=env, capture_output=True,
        text=True, timeout=900)
    assert proc.returncode == 1, proc.stderr[-3000:]  # MLflow's own code for a failed command
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[-1].endswith("failed ===") and "=== Run (ID" in lines[-1], lines[-5:]
    error = ("error: seed must be between 0 and 2147482647, got -1; give a non-negative integer "
             "like 42")
    assert lines[-2] == error
    client = MlflowClient()
    (launcher,) = client.search_runs(["0"], run_view_type=ViewType.ALL)
    assert launcher.data.tags["mlflow.note.content"] == (
        f"`mlflow run` launcher of a step that refused its input: {error[len('error: '):]}")
    lab = client.get_experiment_by_name("minimult-lab")
    assert lab is None or client.search_runs([lab.experiment_id]) == []


# --------------------------------------------------------------------------------------------
# Bad values


def test_lost_artifacts_are_one_line(sqlite_store: str,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """A run whose artifact store lost its files (deleted, moved, another machine's folder)."""
    data_run_id = prepare_step.get_or_run(SMALL)
    artifacts = Path(urllib.parse.urlparse(
        MlflowClient().get_run(data_run_id).info.artifact_uri).path)
    shutil.rmtree(artifacts)
    capsys.readouterr()
    line = _exit(knn_space.command, ["--data-run-id", data_run_id], capsys)
    assert line.startswith(f"error: run {data_run_id}: its artifacts cannot be read (")
    assert line.endswith("the artifact store lost them: run the step again with reuse=never, "
                         "or pass another run")


def test_negative_seeds_are_refused(tracking: str, prepare_run: str,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    expected = ("error: seed must be between 0 and 2147482647, got -1; give a non-negative "
                "integer like 42")
    assert _exit(pretrain_entry.command, ["--seed", "-1", "--data-run-id", prepare_run],
                 capsys) == expected
    assert _exit(prepare_entry.command, ["--seed", "-1"], capsys) == expected
    assert _exit(knn_space.command, ["--seed", "-1", "--data-run-id", prepare_run],
                 capsys) == expected
    assert _exit(main.command, ["--seeds", "0,-1"], capsys).startswith(
        "error: seeds: seed -1 must be between 0 and")
    pretrain_run = _untrained_run(prepare_run, capsys)
    assert _exit(xnli.command, ["--run-id", pretrain_run, "--seed", "-1"], capsys) == expected
    experiment_id = mlflow.get_experiment_by_name(tracking).experiment_id
    assert len(MlflowClient().search_runs([experiment_id], run_view_type=ViewType.ALL)) == 1


def test_a_bad_knn_space_option_is_refused_before_a_prepare_runs(
        sqlite_store: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Without --data-run-id knn-space would first prepare the default data (minutes) and only
    then refuse the option: it checks its options first and writes nothing."""
    for option, value in (("--dim", "0"), ("--epoch", "-2"), ("--k", "-1")):
        assert _exit(knn_space.command, [option, value], capsys).startswith(
            f"error: knn space: {option[2:]} must be ≥ 1, got {value}")
    client = MlflowClient()
    experiments = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    assert client.search_runs(experiments, run_view_type=ViewType.ALL) == []


def _untrained_run(prepare_run: str, capsys: pytest.CaptureFixture[str]) -> str:
    """A finished pretrain run at once (row 18: no training), to pass as a run id."""
    run_command(pretrain_entry.command, ["--exp", "18", "--data-run-id", prepare_run])
    capsys.readouterr()
    return mlflow.last_active_run().info.run_id


def test_text_of_nul_bytes_is_refused(tracking: str, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    nul = tmp_path / "nul.txt"
    nul.write_bytes(b"\0" * 4096 + b"\n" + b"\0" * 100)
    assert _exit(prepare_entry.command, ["--source", f"text:{nul}", "--dev-source",
                                         f"text:{nul}"], capsys) == (
        f"error: source 'text:{nul}' has no train sentences; give a source with text")
    # Some text among the NULs: stripped, but far too little to learn a vocabulary from.
    scant = tmp_path / "scant.txt"
    scant.write_bytes(b"\0a\0b\0 a b.\n" * 200)
    assert _exit(prepare_entry.command, ["--source", f"text:{scant}", "--dev-source",
                                         f"text:{scant}"], capsys) == (
        "error: the corpus has too little text: its vocabulary has 5 tokens besides the "
        "specials, fewer than 20; give a source with more (real) text")
    exp = mlflow.get_experiment_by_name(tracking)
    assert exp is None or MlflowClient().search_runs([exp.experiment_id],
                                                     run_view_type=ViewType.ALL) == []


def test_kendall_tau_names_the_supported_encoders(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A tiny T5 built here (never downloaded): an encoder-decoder, not a word-vector encoder."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, T5Config, T5Model

    folder = tmp_path / "tiny-t5"
    T5Model(T5Config(vocab_size=32, d_model=8, d_kv=4, d_ff=16, num_layers=1, num_heads=2,
                     decoder_start_token_id=0)).save_pretrained(folder)
    words = Tokenizer(models.WordLevel({"<pad>": 0, "<unk>": 1, "the": 2}, unk_token="<unk>"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=words, pad_token="<pad>",
                            unk_token="<unk>").save_pretrained(folder)
    data = tmp_path / "parallel"
    data.mkdir()
    for lang in ("en", "de"):
        (data / f"{lang}.txt").write_text("the the\n")
    capsys.readouterr()
    line = _exit(kendall_tau.command, ["--model", str(folder), "--data", f"dir:{data}",
                                       "--languages", "de", "--accuracies", "paper"], capsys)
    assert line == (f"error: model folder {folder} is a 't5' model; word vectors need an "
                    "encoder of type bert, distilbert, roberta, xlm-roberta, camembert, electra, "
                    "albert, deberta-v2, mpnet, roformer (like mBERT or XLM-R, or a checkpoint of "
                    "a pretrain run)")


# --------------------------------------------------------------------------------------------
# fastText children


_FASTTEXT_PARENT = """
from minimult_ml.crosslingual import train_fasttext
sentences = [[f"w{(i * 7 + j) % 997}" for j in range(30)] for i in range(3000)]
train_fasttext(sentences, dim=20, epoch=100000)
"""


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found |= {int(c) for c in (task / "children").read_text().split()}
    return found


def _trains_fasttext(pid: int) -> bool:
    try:
        return "fasttext_pybind" in Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:  # it ended while we looked
        return False


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # a zombie has ended; only its parent's reaping is left


def test_fasttext_children_die_with_knn_space() -> None:
    """`kill -9` of the process that trains fastText (knn-space) ends its child at once."""
    parent = subprocess.Popen([sys.executable, "-c", _FASTTEXT_PARENT], cwd=ROOT)
    deadline = time.time() + 300
    # Imports may run short-lived helpers of their own first (seen in CI as a child with an
    # empty command line, a zombie): wait for the one that trains.
    while not (trainers := [c for c in _children(parent.pid) if _trains_fasttext(c)]):
        assert parent.poll() is None, "the parent ended before fastText started"
        assert time.time() < deadline, "fastText never started"
        time.sleep(0.2)
    (child,) = trainers
    time.sleep(1)  # it trains now
    parent.kill()
    parent.wait()
    deadline = time.time() + 10
    while _running(child) and time.time() < deadline:
        time.sleep(0.1)
    survived = _running(child)
    if survived:
        os.kill(child, signal.SIGKILL)
    assert not survived, "fastText outlived its parent"


# --------------------------------------------------------------------------------------------
# Permissions: a non-root user in a read-only working directory


def _unprivileged(home: Path) -> list[str]:
    """The command prefix that runs this interpreter's packages as a user without privileges
    (created when missing). Root passes every permission check, so it cannot stand in."""
    if os.geteuid() != 0:
        return [sys.executable]
    if subprocess.run(["id", "-u", UNPRIVILEGED], capture_output=True).returncode:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        UNPRIVILEGED], check=True)
    shutil.chown(home, UNPRIVILEGED)
    as_user = ["runuser", "-u", UNPRIVILEGED, "--"]
    # The interpreter, or the system's of the same version when root's is private (pyenv).
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for python in (os.path.realpath(sys.executable), f"/usr/bin/{version}",
                   f"/usr/local/bin/{version}"):
        if subprocess.run([*as_user, python, "-c", ""], capture_output=True).returncode == 0:
            break
    else:
        pytest.fail(f"user {UNPRIVILEGED} can run no {version}: install one it can read")
    packages = sysconfig.get_paths()["purelib"]
    return [*as_user, "env", f"HOME={home}", f"PYTHONPATH={ROOT}:{packages}", python, "-s"]


# One process as that user runs several commands in turn (its imports cost more than they do).
_AS_USER = """
import contextlib, io, json, os, sys
import mlflow
from entrypoints import prepare
from entrypoints.common import run_command
results = []
for env, args in json.loads(sys.argv[1]):
    os.environ.update(env)
    os.environ.pop("MLFLOW_EXPERIMENT_NAME", None) if "MLFLOW_EXPERIMENT_NAME" not in env else None
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    out, err, code = io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            run_command(prepare.command, args)
        except SystemExit as e:
            code = e.code
    results.append({"code": code, "out": out.getvalue(), "err": err.getvalue()})
print(json.dumps(results))
"""


def test_read_only_working_directory(tmp_path: Path) -> None:
    """A non-root user in a read-only folder with the store elsewhere: MLflow alone puts the
    artifacts, and a new experiment's artifact location, into the working directory."""
    base = Path(tempfile.mkdtemp(prefix="minimult-ro-"))  # pytest's tmp is private to root
    read_only, writable, home = base / "read-only", base / "store", base / "home"
    try:
        for folder in (read_only, writable, home):
            folder.mkdir()
        base.chmod(0o755)
        prefix = _unprivileged(home)
        uri = f"sqlite:///{writable}/mlflow.db"
        # An experiment made by an older version, with its artifacts in the read-only folder.
        client = MlflowClient(uri)
        client.create_experiment("old", artifact_location=str(read_only / "mlruns" / "old"))
        if os.geteuid() == 0:
            for path in (writable, writable / "mlflow.db"):
                shutil.chown(path, UNPRIVILEGED)
        read_only.chmod(0o555)
        cases = [({"MLFLOW_TRACKING_URI": f"sqlite:///{read_only}/mlflow.db"}, SMALL_ARGS),
                 ({"MLFLOW_TRACKING_URI": uri, "MLFLOW_EXPERIMENT_NAME": "old"}, SMALL_ARGS),
                 ({"MLFLOW_TRACKING_URI": uri}, SMALL_ARGS),
                 ({"MLFLOW_TRACKING_URI": uri}, SMALL_ARGS)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        proc = subprocess.run([*prefix, "-c", _AS_USER, json.dumps(cases)], cwd=read_only,
                              env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]
        store_here, old, first, again = json.loads(proc.stdout.splitlines()[-1])
        assert store_here["code"] == 2 and _error_line(store_here["err"]) == (
            f"error: tracking store sqlite:///{read_only}/mlflow.db is not writable by this user "
            f"({read_only} is read-only); set MLFLOW_TRACKING_URI to a store you can write")
        assert old["code"] == 2 and _error_line(old["err"]) == (
            f"error: experiment 'old' keeps its artifacts in {read_only}/mlruns/old, which this "
            f"user cannot write ({read_only} is read-only); make it writable, or set "
            "MLFLOW_EXPERIMENT_NAME to a new experiment (its artifacts go beside the store)")
        assert first["code"] == 0, first["err"]
        assert again["code"] == 0 and "prepare: reusing finished run" in again["out"]
        # The store works: the run is there, its artifacts beside the store, nothing written
        # into the working directory, nothing left in the old experiment.
        lab = client.get_experiment_by_name("minimult-lab")
        assert lab.artifact_location.removeprefix("file://") == f"{writable}/mlruns/minimult-lab"
        (run,) = client.search_runs([lab.experiment_id], run_view_type=ViewType.ALL)
        assert run.info.status == "FINISHED"
        stats = json.loads(Path(client.download_artifacts(run.info.run_id, "stats.json",
                                                          str(tmp_path))).read_text())
        assert stats["train"]["sentences"] == SMALL.train_sentences
        assert list(read_only.iterdir()) == []
        assert client.search_runs([client.get_experiment_by_name("old").experiment_id],
                                  run_view_type=ViewType.ALL) == []
    finally:
        read_only.chmod(0o755)
        shutil.rmtree(base, ignore_errors=True)


def test_one_process_at_a_time_per_key(sqlite_store: str) -> None:
    """The lock behind "prepare once for two terminals": the second waits for the first."""
    import threading

    events: list[str] = []
    first_in = threading.Event()

    def first() -> None:
        with store.exclusive("key"):
            first_in.set()
            time.sleep(0.5)
            events.append("first done")

    thread = threading.Thread(target=first)
    thread.start()
    first_in.wait()
    with store.exclusive("key", waiting=lambda: events.append("waited")):
        events.append("second in")
    thread.join()
    assert events == ["waited", "first done", "second in"]
    with store.exclusive("another key", waiting=lambda: events.append("waited again")):
        pass
    assert events[-1] == "second in"
