"""The GPU image and the tracking stack, checked without a Docker engine: what the Dockerfiles
pin and run, what .dockerignore keeps out, and deploy/compose.yaml against the Compose
specification's JSON schema (as vendored in check-jsonschema) with its credentials only from
the environment. (hadolint lints both Dockerfiles in `make lint`.)"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from minimult_ml import tracking

from . import compose
from .conftest import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def pins(requirements: list[str]) -> dict[str, str]:
    return dict(r.split("==") for r in requirements)


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined and comments dropped, as Docker
    reads them."""
    lines = [line for line in dockerfile.read_text().splitlines()
             if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", "", "\n".join(lines))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1])
            for line in joined.splitlines() if line.strip()]


def test_gpu_image_builds_on_the_projects_torch_and_runs_as_a_user() -> None:
    steps = instructions(ROOT / "Dockerfile")
    torch = pins(PYPROJECT["dependencies"])["torch"]
    assert steps[0][0] == "FROM"
    assert re.fullmatch(rf"pytorch/pytorch:{re.escape(torch)}-cuda[\d.]+-cudnn\d+-runtime",
                        steps[0][1])
    user = [arg for op, arg in steps if op == "USER"]
    assert user and user[-1].isdigit() and int(user[-1]) > 0  # numeric: runAsNonRoot can check
    assert ("WORKDIR", "/home/lab/minimult-ml") in steps
    assert ("COPY", "--chown=lab:lab . .") in steps
    assert ("ARG", "GIT_COMMIT=unknown") in steps
    assert ("ENV", "MINIMULT_GIT_COMMIT=${GIT_COMMIT}") in steps
    assert steps[-1] == ("CMD", '["minimult", "--help"]')


def test_gpu_image_installs_exactly_the_pinned_dependencies(tmp_path: Path) -> None:
    """The image's requirement list, made by its own command, is pyproject's pins."""
    run = next(arg for op, arg in instructions(ROOT / "Dockerfile")
               if op == "RUN" and "tomllib" in arg)
    make_list = run.split(" && ")[0].replace("/tmp/requirements.txt", "requirements.txt")
    assert make_list.startswith("python -c ")
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    subprocess.run(make_list.replace("python", sys.executable, 1), shell=True, cwd=tmp_path,
                   check=True)
    listed = (tmp_path / "requirements.txt").read_text().splitlines()
    assert listed == PYPROJECT["dependencies"]


def test_server_image_pins_the_projects_mlflow_and_the_tested_drivers() -> None:
    run = next(arg for op, arg in instructions(ROOT / "deploy" / "mlflow-server.Dockerfile")
               if op == "RUN" and "pip install" in arg)
    server = pins(re.findall(r"[\w.-]+==[\w.]+", run))
    project = pins(PYPROJECT["dependencies"]) | pins(PYPROJECT["optional-dependencies"]["dev"])
    # The integration test (test_tracking_postgres.py) runs the server with these versions.
    for package in ("mlflow", "psycopg2-binary", "flask-wtf"):
        assert server[package] == project[package], package
    assert "boto3" in server


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether Docker leaves `path` (or a folder above it) out of the build context."""
    def regex(pattern: str) -> str:
        parts = re.split(r"(\*\*/|\*\*|\*|\?)", pattern.strip("/"))
        table = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
        return "".join(table.get(p, re.escape(p)) for p in parts)

    prefixes = ["/".join(path.split("/")[:i]) for i in range(1, path.count("/") + 2)]
    return any(re.fullmatch(regex(p), prefix) for p in patterns for prefix in prefixes)


def test_dockerignore_keeps_stores_environments_and_secrets_out() -> None:
    patterns = [line for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line and not line.startswith("#")]
    for path in (".git/HEAD", ".venv/bin/python", "mlruns/0/meta.yaml", "mlflow.db",
                 "mlartifacts/1/x.json", "minimult_ml/__pycache__/data.cpython-311.pyc",
                 "outputs/checkpoints/step-5/model.safetensors", "checkpoints/step-1/config.json",
                 ".env", "deploy/.env", "tracking.env", "minimult_ml.egg-info/PKG-INFO"):
        assert dockerignored(path, patterns), path
    # Everything `pip install .` and `mlflow run .` need stays in.
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    needed = [p for p in tracked if p.split("/")[0] in ("minimult_ml", "entrypoints", "analysis")
              or p in ("MLproject", "conda.yaml", "pyproject.toml", "README.md")]
    assert "minimult_ml/tracking.py" in needed and "MLproject" in needed
    assert not [p for p in needed if dockerignored(p, patterns)]


def test_provenance_falls_back_to_the_commit_the_image_records(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout.strip()
    monkeypatch.setenv("MINIMULT_GIT_COMMIT", "c0ffee")
    assert tracking.provenance()["git_commit"] == head  # a checkout answers for itself
    monkeypatch.setenv("PATH", str(tmp_path))  # as in the image: no git
    assert tracking.provenance()["git_commit"] == "c0ffee"
    monkeypatch.delenv("MINIMULT_GIT_COMMIT")
    assert tracking.provenance()["git_commit"] == "unknown"


# What a user's deploy/.env could hold (none of it is a real credential).
ENV = {"POSTGRES_USER": "postgres", "POSTGRES_PASSWORD": "pg-password-1",
       "MINIO_ROOT_USER": "minio", "MINIO_ROOT_PASSWORD": "minio-password-1",
       "MLFLOW_DB_USER": "mlflow", "MLFLOW_DB_PASSWORD": "db-password-1",
       "MINIO_MLFLOW_USER": "mlflow", "MINIO_MLFLOW_PASSWORD": "s3-password-1",
       "MLFLOW_ADMIN_USERNAME": "admin",
       "MLFLOW_ADMIN_PASSWORD": "admin-password-1", "MLFLOW_FLASK_SERVER_SECRET_KEY": "f" * 64,
       "MLFLOW_BUCKET": "", "MLFLOW_BIND": "", "MLFLOW_PORT": "",
       "MLFLOW_SERVER_ALLOWED_HOSTS": ""}


def compose_schema_validator() -> jsonschema.protocols.Validator:
    schema = json.loads(resources.files("check_jsonschema.builtin_schemas.vendor")
                        .joinpath("compose-spec.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def test_compose_file_follows_the_compose_specification() -> None:
    validator = compose_schema_validator()
    doc = compose.load(ENV)
    assert not [e.message for e in validator.iter_errors(doc)]
    # The schema is strict enough to notice a misspelt key or condition.
    doc["services"]["mlflow"]["enviroment"] = doc["services"]["mlflow"].pop("environment")
    assert any("enviroment" in e.message for e in validator.iter_errors(doc))
    doc = compose.load(ENV)
    doc["services"]["mlflow"]["depends_on"]["postgres"]["condition"] = "service_happy"
    assert list(validator.iter_errors(doc))


def test_compose_stack_is_postgres_and_minio_behind_basic_auth() -> None:
    doc = compose.load(ENV)
    services = doc["services"]
    assert set(services) == {"postgres", "minio", "minio-init", "mlflow"}
    mlflow = services["mlflow"]
    flags = dict(arg.split("=", 1) for arg in mlflow["command"] if arg.startswith("--"))
    assert mlflow["command"][:2] == ["mlflow", "server"]
    assert flags["--app-name"] == "basic-auth"
    assert flags["--backend-store-uri"] == "postgresql+psycopg2:///mlflow"
    assert flags["--artifacts-destination"] == "s3://mlflow"  # MLFLOW_BUCKET's default
    assert mlflow["depends_on"] == {"postgres": {"condition": "service_healthy"},
                                    "minio-init": {"condition":
                                                   "service_completed_successfully"}}
    env = mlflow["environment"]
    assert env["PGHOST"] == "postgres" and env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"] == ENV["MLFLOW_ADMIN_PASSWORD"]
    assert mlflow["build"] == {"context": ".", "dockerfile": "mlflow-server.Dockerfile"}
    # Only the tracking server is published, on the loopback for a TLS proxy; the database and
    # the object store stay inside.
    assert mlflow["ports"] == ["127.0.0.1:5000:5000"]
    assert [name for name, s in services.items() if "ports" in s] == ["mlflow"]
    setup = services["minio-init"]["command"][0]
    assert 'mc mb --ignore-existing "store/$MLFLOW_BUCKET"' in setup
    assert 'mc admin user add store "$MINIO_MLFLOW_USER" "$MINIO_MLFLOW_PASSWORD"' in setup
    assert services["minio-init"]["environment"]["MLFLOW_BUCKET"] == "mlflow"
    init = services["postgres"]["volumes"][1].split(":")
    assert init[1] == "/docker-entrypoint-initdb.d/mlflow.sh"
    assert "CREATE DATABASE mlflow_auth OWNER" in (ROOT / "deploy" / init[0]).read_text()
    assert set(doc["volumes"]) == {v.split(":")[0] for s in services.values()
                                   for v in s.get("volumes", []) if not v.startswith(".")}


def test_compose_credentials_come_only_from_the_environment() -> None:
    text = compose.COMPOSE.read_text()
    required = {name for name, op in compose.references(text).items() if op in (":?", "?")}
    documented = compose.example_variables()
    assert required == {"POSTGRES_USER", "POSTGRES_PASSWORD", "MINIO_ROOT_USER",
                        "MINIO_ROOT_PASSWORD", "MLFLOW_DB_USER", "MLFLOW_DB_PASSWORD",
                        "MINIO_MLFLOW_USER", "MINIO_MLFLOW_PASSWORD", "MLFLOW_ADMIN_USERNAME",
                        "MLFLOW_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"}
    assert set(compose.references(text)) == set(documented) == set(ENV)
    assert not [line for line in compose.ENV_EXAMPLE.read_text().splitlines()
                if line and not line.startswith("#") and not line.endswith("=")]
    raw = compose.load({name: f"<{name}>" for name in documented})
    for service in raw["services"].values():
        for key, value in service.get("environment", {}).items():
            if re.search(r"USER|PASSWORD|SECRET|KEY_ID|ACCESS_KEY", key):
                assert re.fullmatch(r"<\w+>", value), (key, value)
    with pytest.raises(ValueError, match=re.escape("MLFLOW_ADMIN_PASSWORD: set it in deploy/")):
        compose.load(ENV | {"MLFLOW_ADMIN_PASSWORD": ""})
    # No credential file beside them: the auth app's config names neither admin nor password.
    ini = (ROOT / "deploy" / "basic_auth.ini").read_text()
    assert not re.search(r"^\s*admin_(username|password)\s*=", ini, re.MULTILINE)
    assert "@" not in ini.split("database_uri", 1)[1].splitlines()[0]


def test_mlflow_holds_neither_the_database_superuser_nor_the_minio_root_keys() -> None:
    """Only their own containers and the one-shot MinIO set-up get the root credentials."""
    raw = compose.load({name: f"<{name}>" for name in compose.example_variables()})
    root = {"<POSTGRES_USER>", "<POSTGRES_PASSWORD>", "<MINIO_ROOT_USER>", "<MINIO_ROOT_PASSWORD>"}
    holders = {name for name, service in raw["services"].items()
               if root & set(service.get("environment", {}).values())}
    assert holders == {"postgres", "minio", "minio-init"}
    env = raw["services"]["mlflow"]["environment"]
    assert (env["PGUSER"], env["PGPASSWORD"]) == ("<MLFLOW_DB_USER>", "<MLFLOW_DB_PASSWORD>")
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == (
        "<MINIO_MLFLOW_USER>", "<MINIO_MLFLOW_PASSWORD>")


def test_minio_setup_gives_mlflow_a_user_limited_to_its_bucket(tmp_path: Path) -> None:
    """minio-init's script run in a shell, with an `mc` that writes down its arguments (and
    the policy file it is given) and answers `admin user info` as MinIO would; run twice, as
    on every `docker compose up`."""
    mc = tmp_path / "bin" / "mc"
    mc.parent.mkdir()
    mc.write_text('#!/bin/sh\nprintf "%s " "$@" >> "$CALLS"; echo >> "$CALLS"\n'
                  'case "$*" in "admin policy create"*) cp "$6" "$CALLS.policy" ;; esac\n'
                  'case "$*" in "admin user info"*) cat "$CALLS.info" 2>/dev/null ;; esac\n')
    mc.chmod(0o755)
    service = compose.load(ENV | {"MLFLOW_BUCKET": "runs"})["services"]["minio-init"]
    assert service["entrypoint"] == ["/bin/sh", "-c"]
    calls = tmp_path / "calls"
    env = service["environment"] | {"PATH": f"{mc.parent}{os.pathsep}{os.environ['PATH']}",
                                    "CALLS": str(calls), "TMPDIR": str(tmp_path)}
    done = subprocess.run(["/bin/sh", "-c", service["command"][0]], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    policy_file = str(tmp_path / "mlflow-artifacts.json")
    assert calls.read_text().splitlines() == [
        "alias set store http://minio:9000 minio minio-password-1 ",
        "mb --ignore-existing store/runs ",
        f"admin policy create store mlflow-artifacts {policy_file} ",
        "admin user add store mlflow s3-password-1 ",
        "admin user info store mlflow ",
        "admin policy attach store mlflow-artifacts --user mlflow "]
    policy = json.loads((tmp_path / "calls.policy").read_text())
    assert {r for statement in policy["Statement"] for r in statement["Resource"]} == {
        "arn:aws:s3:::runs", "arn:aws:s3:::runs/*"}
    actions = {a for statement in policy["Statement"] for a in statement["Action"]}
    assert all(statement["Effect"] == "Allow" for statement in policy["Statement"])
    assert {"s3:GetObject", "s3:PutObject", "s3:ListBucket"} <= actions
    assert not [a for a in actions if "*" in a or a.startswith(("admin:", "s3:CreateBucket",
                                                                 "s3:DeleteBucket"))]
    # Again, once the user has the policy: attach (which would fail) is not called.
    calls.unlink()
    (tmp_path / "calls.info").write_text("AccessKey: mlflow\nStatus: enabled\n"
                                         "PolicyName: mlflow-artifacts\n")
    again = subprocess.run(["/bin/sh", "-c", service["command"][0]], env=env,
                           capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert not [c for c in calls.read_text().splitlines() if "attach" in c]


def test_env_files_are_git_ignored() -> None:
    for path in ("deploy/.env", ".env", "tracking.env"):
        assert subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT).returncode == 0, path
    assert subprocess.run(["git", "check-ignore", "-q", "deploy/env.example"],
                          cwd=ROOT).returncode == 1
