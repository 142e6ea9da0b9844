"""The project's own files: pins agree, the MLproject entry points match the CLI."""

from __future__ import annotations

import tomllib

import yaml

from .conftest import ROOT


def test_conda_and_pyproject_pin_the_same_dependencies() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    conda = yaml.safe_load((ROOT / "conda.yaml").read_text())["dependencies"]
    pip = next(d["pip"] for d in conda if isinstance(d, dict))
    assert sorted(pip) == sorted(pyproject)
    assert "python=3.11" in conda
    assert all("==" in d for d in pyproject)


def test_every_mlproject_entry_point_is_a_cli_command() -> None:
    from entrypoints.cli import cli

    entry_points = yaml.safe_load((ROOT / "MLproject").read_text())["entry_points"]
    assert set(entry_points) <= set(cli.list_commands(None))
    for name, spec in entry_points.items():
        assert f"entrypoints.{name.replace('-', '_')}" in spec["command"]


def test_mlproject_commands_pass_every_parameter_as_one_argument() -> None:
    """MLflow shell-quotes each parameter itself: a space or `;` in a value, or an empty default,
    must reach the command as one argument (quotes of our own around {param} break that)."""
    import shlex

    from mlflow.projects._project_spec import load_project

    from entrypoints.cli import cli

    project = load_project(str(ROOT))
    tricky = {"exp": "lang-pos; shift-special", "languages": "en,de hi", "source": "text:/a b"}
    for name, spec in yaml.safe_load((ROOT / "MLproject").read_text())["entry_points"].items():
        given = {k: v for k, v in tricky.items() if k in spec["parameters"]}
        required = {k: "x" for k, p in spec["parameters"].items()
                    if not isinstance(p, dict) and k not in given}
        argv = shlex.split(project.get_entry_point(name).compute_command(given | required, None))
        assert argv[:3] == ["python", "-m", f"entrypoints.{name.replace('-', '_')}"]
        options = dict(zip(argv[3::2], argv[4::2], strict=True))
        for key, value in given.items():
            assert options[f"--{key.replace('_', '-')}"] == value, (name, key)
        # Every option the command passes is one the click command knows.
        known = {o for p in cli.get_command(None, name).params for o in p.opts}
        assert set(options) <= known, (name, set(options) - known)
