"""deploy/compose.yaml as docker compose reads it: `${VAR}` forms interpolated from a .env."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from .conftest import ROOT

COMPOSE = ROOT / "deploy" / "compose.yaml"
ENV_EXAMPLE = ROOT / "deploy" / "env.example"
# $$ is a literal $; ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}.
REFERENCE = re.compile(r"\$\$|\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def references(text: str) -> dict[str, str]:
    """Each variable the text names → its operator ('' for a bare ${NAME})."""
    return {m[1]: m[2] or "" for m in REFERENCE.finditer(text) if m[1]}


def interpolate(value: object, env: dict[str, str]) -> object:
    """What compose makes of a parsed value, given the variables of a .env file."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(m: re.Match) -> str:
        if m[0] == "$$":
            return "$"
        name, op, arg = m[1], m[2] or "", m[3]
        given = env.get(name)
        if (op == ":?" and not given) or (op == "?" and given is None):
            raise ValueError(f"{name}: {arg}")
        if (op == ":-" and not given) or (op == "-" and given is None):
            return arg
        return given or ""

    return REFERENCE.sub(substitute, value)


def load(env: dict[str, str], path: Path = COMPOSE) -> dict:
    return interpolate(yaml.safe_load(path.read_text()), env)


def example_variables() -> list[str]:
    return [line.split("=", 1)[0] for line in ENV_EXAMPLE.read_text().splitlines()
            if line and not line.startswith("#")]
