"""`sweep-manifest`: Kubernetes Jobs checked against the Kubernetes schemas (kubernetes-validate
ships them: offline), the pod script's index → (exp, seed) map run in a shell, the preparation
Job, and bad input. A pod's command runs for real in test_tracking_postgres.py."""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from entrypoints import sweep_manifest
from entrypoints.common import run_command
from minimult_ml import kubernetes
from minimult_ml.kubernetes import Sweep, manifests, pod_script

from .conftest import ROOT

IMAGE = "registry.example.org:5000/lab/minimult-ml:0.1.0"
KUBERNETES = "1.37.0"


def _validate(docs: list[dict]) -> None:
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_manifests_follow_the_kubernetes_schemas() -> None:
    lab = Sweep.build(["0", "8", "30"], [0, 42, 43], IMAGE)
    _validate(manifests(lab))
    _validate(manifests(Sweep.build(["1"], [0], IMAGE, {"data_run_id": "abc"},
                                    tracking_uri="https://mlflow.example.org", gpus=2,
                                    parallelism=4)))
    # The check is real: a misspelt field fails it.
    job = manifests(lab)[1]
    job["spec"]["template"]["spec"]["containers"][0]["resource"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate([job])


def test_one_gpu_pod_per_exp_and_seed_with_credentials_from_a_secret() -> None:
    lab = Sweep.build(["0", "lang-pos;shift-special;no-random", "8", "knn-replace"], [0, 42, 42],
                      IMAGE, secret="team-tracking")
    prepare, job = manifests(lab)
    assert lab.exps == ("original", "lang-pos+shift-special+no-random", "knn-replace")
    assert lab.seeds == (0, 42)
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == (
        "Indexed", 6, 6)
    assert spec["suspend"] is True  # until the preparation Job has completed
    assert spec["backoffLimitPerIndex"] == kubernetes.RETRIES_PER_POD
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert container["image"] == IMAGE
    assert container["resources"] == {"requests": {"cpu": "4", "memory": "16Gi"},
                                      "limits": {"nvidia.com/gpu": 1}}
    assert container["envFrom"] == [{"secretRef": {"name": "team-tracking"}}]
    assert "env" not in container  # nothing but the Secret: no URI, no credentials
    assert prepare["spec"]["template"]["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "4", "memory": "16Gi"}}  # no GPU for preparing
    assert prepare["metadata"]["name"] == "minimult-sweep-prepare"
    text = kubernetes.to_yaml(manifests(lab))
    assert "PASSWORD" not in text and "&id" not in text
    assert list(yaml.safe_load_all(text)) == manifests(lab)
    with_uri = manifests(Sweep.build(["0"], [1], IMAGE, tracking_uri="http://mlflow:5000"))
    assert with_uri[1]["spec"]["template"]["spec"]["containers"][0]["env"] == [
        {"name": "MLFLOW_TRACKING_URI", "value": "http://mlflow:5000"}]


def test_pods_meet_the_restricted_pod_security_standard_and_request_resources() -> None:
    """The fields the "restricted" profile requires, on every pod of both Jobs."""
    lab = Sweep.build(["0", "30"], [0], IMAGE, cpu="500m", memory="2.5Gi", gpus=2)
    for job in manifests(lab):
        pod = job["spec"]["template"]["spec"]
        assert pod["securityContext"] == {"runAsNonRoot": True,
                                          "seccompProfile": {"type": "RuntimeDefault"}}
        (container,) = pod["containers"]
        assert container["securityContext"] == {"allowPrivilegeEscalation": False,
                                                "capabilities": {"drop": ["ALL"]}}
        assert container["resources"]["requests"] == {"cpu": "500m", "memory": "2.5Gi"}
    assert container["resources"]["limits"] == {"nvidia.com/gpu": 2}
    _validate(manifests(lab))


def _run_script(script: str, index: int, tmp_path: Path, uri: str = "http://mlflow:5000"
                ) -> subprocess.CompletedProcess:
    """Run a pod script in a shell, with an `mlflow` on PATH that writes down its arguments."""
    recorder = tmp_path / "mlflow"
    recorder.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done '
                        '>> "$(dirname "$0")/calls"; echo >> "$(dirname "$0")/calls"\n')
    recorder.chmod(recorder.stat().st_mode | stat.S_IEXEC)
    env = {"PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}",
           "JOB_COMPLETION_INDEX": str(index)}
    if uri:
        env["MLFLOW_TRACKING_URI"] = uri
    return subprocess.run(["/bin/sh", "-c", script], env=env, capture_output=True, text=True)


def _calls(tmp_path: Path) -> list[list[str]]:
    text = (tmp_path / "calls").read_text()
    return [block.splitlines() for block in text.split("\n\n") if block.strip()]


def test_each_pod_index_trains_its_own_exp_and_seed(tmp_path: Path) -> None:
    lab = Sweep.build(["0", "lang-pos;no-random", "30", "30-base"], [0, 42], IMAGE,
                      {"epochs": "50"}, eval_every=500)
    script = pod_script(lab)
    for index, (exp, seed) in enumerate(lab.tasks):
        (tmp_path / "calls").unlink(missing_ok=True)
        done = _run_script(script, index, tmp_path)
        assert done.returncode == 0, done.stderr
        (call,) = _calls(tmp_path)
        # The real track's runs are not evaluated while they train (xnli does that later).
        evaluated = 0 if exp == "30-base" else 500
        assert call == ["run", ".", "-e", "pretrain", "--env-manager", "local",
                        "-P", "resume=true", "-P", "epochs=50", "-P", f"exp={exp}",
                        "-P", f"seed={seed}", "-P", f"eval_every={evaluated}"]
    assert [t[0] for t in lab.tasks] == ["original"] * 2 + ["lang-pos+no-random"] * 2 + [
        "knn-replace"] * 2 + ["30-base"] * 2
    # An index the sweep does not have, or no tracking server: fail, run nothing.
    (tmp_path / "calls").unlink()
    assert _run_script(script, 8, tmp_path).returncode == 1
    missing = _run_script(script, 0, tmp_path, uri="")
    assert missing.returncode != 0 and "Secret minimult-tracking" in missing.stderr
    assert not (tmp_path / "calls").exists()


def test_preparation_builds_what_the_pods_would_race_for(tmp_path: Path) -> None:
    prepare, _ = manifests(Sweep.build(["0", "30"], [0], IMAGE))
    script = prepare["spec"]["template"]["spec"]["containers"][0]["command"][2]
    assert _run_script(script, 0, tmp_path).returncode == 0
    assert _calls(tmp_path) == [
        ["run", ".", "-e", "prepare", "--env-manager", "local"],
        ["run", ".", "-e", "knn-space", "--env-manager", "local", "-P", "track=lab", "-P", "k=1"]]
    # Real-track exps: the real track's default data, and its knn space of 5 neighbours.
    assert kubernetes.preparation_steps(Sweep.build(["0", "0-base", "30-base"], [1], IMAGE)) == [
        shlex.join(["mlflow", "run", ".", "-e", *rest]) for rest in (
            ["prepare", "--env-manager", "local"],
            ["prepare", "--env-manager", "local", "-P", "languages=en,de,hi"],
            ["knn-space", "--env-manager", "local", "-P", "track=real", "-P", "k=5"])]
    # knn-space builds the space of the given data; a given space needs nothing.
    given = Sweep.build(["30"], [0], IMAGE, {"data_run_id": "d1"})
    assert kubernetes.preparation_steps(given) == [shlex.join(
        ["mlflow", "run", ".", "-e", "knn-space", "--env-manager", "local", "-P",
         "data_run_id=d1", "-P", "k=1"])]
    (job,) = manifests(Sweep.build(["30"], [0], IMAGE, {"data_run_id": "d1",
                                                        "knn_run_id": "k1"}))
    assert "suspend" not in job["spec"]  # nothing to wait for
    assert len(manifests(Sweep.build(["0"], [0], IMAGE))) == 2  # the default prepare run


def test_sweep_parameters_are_mlproject_pretrain_parameters() -> None:
    pretrain = yaml.safe_load((ROOT / "MLproject").read_text())["entry_points"]["pretrain"]
    assert set(kubernetes.PRETRAIN_PARAMS) | {"exp", "seed", "eval_every", "resume"} == set(
        pretrain["parameters"])


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        run_command(sweep_manifest.command, args)
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_command_prints_or_writes_the_manifest(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--exps", "0,8", "--seeds", "0,42", "--image", IMAGE]
    run_command(sweep_manifest.command, args)
    printed = capsys.readouterr().out
    _validate(list(yaml.safe_load_all(printed)))
    output = tmp_path / "sweep.yaml"
    run_command(sweep_manifest.command, [*args, "--output", str(output)])
    assert output.read_text() == printed
    assert "minimult-sweep-prepare and minimult-sweep (4 pods)" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == ["sweep.yaml"]


@pytest.mark.parametrize(("args", "message"), [
    (["--exps", "0,bogus"], "unknown exp 'bogus'"),
    (["--exps", ","], "at least one exp"),
    (["--seeds", ""], "at least one seed"),
    (["--seeds", "0,forty-two"], "give integers"),
    (["--seeds", "-1"], "seeds must be ≥ 0"),
    (["--image", "Minimult:1"], "not a Docker image reference"),
    (["--image", "registry.example.org/minimult-ml"], "has no tag"),
    (["--image", "minimult ml:1"], "not a Docker image reference"),
    (["--param", "mlm_probability=0.2"], "passes on only epochs"),
    (["--param", "seed=3"], "it sets exp, seed, eval_every"),
    (["--param", "epochs"], "write KEY=VALUE"),
    (["--gpus", "0"], "gpus must be ≥ 1"),
    (["--name", "Sweep_1"], "name 'Sweep_1'"),
    (["--tracking-uri", "mlflow:5000"], "http(s)://"),
    (["--tracking-uri", "https://alice:s3cret@mlflow.example.org"],
     "'https://***@mlflow.example.org' holds credentials, which would stand in plain text in "
     "the manifest: pass the address alone and put MLFLOW_TRACKING_USERNAME and "
     "MLFLOW_TRACKING_PASSWORD in the Secret minimult-tracking"),
    (["--tracking-uri", "http://token@mlflow:5000"], "holds credentials"),
    (["--cpu", "four"], "cpu 'four'"),
    (["--cpu", "0"], "cpu '0'"),
    (["--memory", "16 GB"], "memory '16 GB'"),
    (["--eval-every", "-5"], "eval_every must be ≥ 0"),
    (["--output", "/nonexistent/sweep.yaml"], "does not exist"),
])
def test_bad_input_is_one_line_and_exit_code_2(args: list[str], message: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    given = dict(zip(args[::2], args[1::2], strict=True))
    defaults = {"--exps": "0", "--seeds": "0", "--image": IMAGE}
    argv = [x for k, v in (defaults | given).items() for x in (k, v)]
    code, out, err = _cli(argv, capsys)
    assert code == 2 and not out
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert "s3cret" not in err  # the refused password is not echoed either
