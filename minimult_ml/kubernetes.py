"""Kubernetes manifests for a sweep: one GPU pod per exp × seed, all logging to one server.

(Deployment only; the reproduction sweep itself, `mlflow run . -e main`, is `reproduction.sweep`.)

A sweep is an Indexed Job whose pod i trains task i (exps × seeds, exp-major) with
`mlflow run . -e pretrain`, evaluating its checkpoints as it goes. On an empty store every pod
would build the default prepare run (and the knn-replace neighbour table) itself, each its own
copy, and race to create the experiment. So a one-pod preparation Job builds them first, and the
sweep is created suspended: resume it once the preparation Job has completed; its pods then find
and reuse those runs. A retried pod resumes its unfinished run from the last checkpoint.

The tracking URI and MLflow credentials reach the pods from a Secret; the manifest holds none.
Pods meet the "restricted" Pod Security Standard and request the CPU and memory they use.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

import yaml

from minimult_ml import experiments
from minimult_ml.errors import InputError
from minimult_ml.prepare import PrepareConfig

# MLproject pretrain parameters a sweep passes on to every pod. exp, seed and eval_every are the
# sweep's own, and resume is always true.
PRETRAIN_PARAMS = ("epochs", "max_steps", "checkpoint_every", "batch_size", "micro_batch_size",
                   "lr", "size", "dropout", "invert", "data_run_id", "knn_run_id", "compile",
                   "precision", "reuse")
# A retried pod continues from its last checkpoint; the others are not affected.
RETRIES_PER_POD = 2

# Docker's image reference grammar (distribution/reference).
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
IMAGE = re.compile(rf"(?:{_LABEL}(?:\.{_LABEL})*(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*"
                   r"(?::(?P<tag>\w[\w.-]{0,127}))?"
                   r"(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*"
                   r":[0-9a-fA-F]{32,}))?")
DNS_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?")
DNS_SUBDOMAIN = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*")
NAME_MAX = 50  # Job names end up in 63-character labels, with "-prepare" or a pod index added
# Kubernetes resource quantities: 4, 500m, 1.5, 16Gi, 512M.
QUANTITY = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:m|[kMGTPE]i?)?")


@dataclass(frozen=True)
class Sweep:
    """What a sweep runs and where; `build` checks every field."""

    exps: tuple[str, ...]  # canonical names joined by '+'; the real track's by paper ID
    seeds: tuple[int, ...]
    image: str
    name: str = "minimult-sweep"
    secret: str = "minimult-tracking"
    tracking_uri: str = ""  # "" = MLFLOW_TRACKING_URI from the Secret
    gpus: int = 1
    cpu: str = "4"  # requested per pod: tokenising, batching, checkpoint writing
    memory: str = "16Gi"
    eval_every: int = 1000
    parallelism: int = 0  # 0 = every pod at once
    params: tuple[tuple[str, str], ...] = ()

    @classmethod
    def build(cls, exps: list[str], seeds: list[int], image: str,
              params: dict[str, str] | None = None, **options: object) -> Sweep:
        # A real-track exp keeps its paper ID, which names its track (0-base, not original).
        canonical = list(dict.fromkeys(
            e.strip() if experiments.named_track(e) else
            experiments.canonical(experiments.parse(e)).replace(";", "+") for e in exps))
        if not canonical:
            raise InputError("exps: give at least one exp, e.g. --exps 0,8,30")
        if not seeds:
            raise InputError("seeds: give at least one seed, e.g. --seeds 0,42,43")
        if min(seeds) < 0:
            raise InputError(f"seeds must be ≥ 0, got {min(seeds)}")
        unknown = sorted(set(params or {}) - set(PRETRAIN_PARAMS))
        if unknown:
            raise InputError(f"--param {', '.join(unknown)}: a sweep passes on only "
                             f"{', '.join(PRETRAIN_PARAMS)} (it sets exp, seed, eval_every)")
        sweep = cls(tuple(canonical), tuple(dict.fromkeys(seeds)), image,
                    params=tuple(sorted((params or {}).items())), **options)
        sweep.validate()
        return sweep

    def validate(self) -> None:
        match = IMAGE.fullmatch(self.image)
        checks = [
            (match is not None, f"image {self.image!r} is not a Docker image reference; give "
                                "e.g. registry.example.org/minimult-ml:0.1.0"),
            (match is None or bool(match["tag"] or match["digest"]),
             f"image {self.image!r} has no tag; give IMAGE:TAG or IMAGE@sha256:… so that every "
             "pod runs the same build"),
            (bool(DNS_LABEL.fullmatch(self.name)) and len(self.name) <= NAME_MAX,
             f"name {self.name!r}: use lowercase letters, digits and '-', at most {NAME_MAX}"),
            (bool(DNS_SUBDOMAIN.fullmatch(self.secret)),
             f"secret {self.secret!r} is not a Kubernetes Secret name"),
            (not self.tracking_uri or self.tracking_uri.startswith(("http://", "https://")),
             f"tracking URI {_redacted(self.tracking_uri)!r}: pods need the server's "
             "http(s):// address"),
            # Checked before anything prints the URI: the error line must not show a password.
            (not _has_credentials(self.tracking_uri),
             f"tracking URI {_redacted(self.tracking_uri)!r} holds credentials, which would "
             "stand in plain text in the manifest: pass the address alone and put "
             f"MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD in the Secret {self.secret}"),
            (self.gpus >= 1, f"gpus must be ≥ 1, got {self.gpus}"),
            (_positive_quantity(self.cpu),
             f"cpu {self.cpu!r}: give a Kubernetes CPU quantity like 4 or 500m"),
            (_positive_quantity(self.memory),
             f"memory {self.memory!r}: give a Kubernetes memory quantity like 16Gi or 512Mi"),
            (self.eval_every >= 0, f"eval_every must be ≥ 0, got {self.eval_every}"),
            (self.parallelism >= 0, f"parallelism must be ≥ 0, got {self.parallelism}"),
        ]
        for ok, message in checks:
            if not ok:
                raise InputError(message)

    @property
    def tasks(self) -> list[tuple[str, int]]:
        """Pod index i trains tasks[i]."""
        return [(exp, seed) for exp in self.exps for seed in self.seeds]


def _redacted(uri: str) -> str:
    """The URI with any user and password (scheme given or not) replaced by ***."""
    return re.sub(r"^((?:[A-Za-z][A-Za-z0-9+.-]*://)?)[^/@]*@", r"\1***@", uri)


def _has_credentials(uri: str) -> bool:
    return _redacted(uri) != uri


def _positive_quantity(text: str) -> bool:
    match = QUANTITY.fullmatch(text)
    return bool(match) and float(re.match(r"[\d.]+", text)[0]) > 0


def _mlflow_run(entry_point: str, params: list[tuple[str, object]]) -> str:
    # No --experiment-name: each step logs into the lab experiment, its launcher run stays in
    # "Default" as a pointer (README, "Entry points").
    args = ["mlflow", "run", ".", "-e", entry_point, "--env-manager", "local"]
    for key, value in params:
        args += ["-P", f"{key}={value}"]
    return shlex.join(args)


def _needs_server(secret: str) -> str:
    # Without a tracking URI, mlflow would log into the pod's own disk and lose everything.
    return (f': "${{MLFLOW_TRACKING_URI:?set it in the Secret {secret} '
            '(or generate the manifest with --tracking-uri)}"')


def preparation_steps(sweep: Sweep) -> list[str]:
    """The commands that build what every pod of the sweep would otherwise build itself: each
    track's default prepare run and the knn-replace spaces its exps need."""
    params = dict(sweep.params)
    data = [("data_run_id", params["data_run_id"])] if "data_run_id" in params else []
    steps = []
    for track in experiments.TRACKS:
        configs = [experiments.resolve(exp) for exp in sweep.exps
                   if (experiments.named_track(exp) or "lab") == track]
        if not configs:
            continue
        default_data = [] if track == "lab" else [("languages", PrepareConfig.real().languages)]
        steps += [] if data else [_mlflow_run("prepare", default_data)]
        if "knn_run_id" not in params:
            source = data or [("track", track)]
            steps += [_mlflow_run("knn-space", [*source, ("k", k)])
                      for k in sorted({c.knn_k for c in configs if c.masking.p_knn > 0})]
    return steps


def pod_script(sweep: Sweep) -> str:
    """The sweep pod's shell script: JOB_COMPLETION_INDEX → (exp, seed) → pretrain."""
    # The lab's runs are evaluated as they train; the real track's by xnli, afterwards.
    cases = "".join(f"  {i}) exp={shlex.quote(exp)} seed={seed} eval_every="
                    f"{0 if experiments.named_track(exp) else sweep.eval_every} ;;\n"
                    for i, (exp, seed) in enumerate(sweep.tasks))
    params = [("resume", "true"), *sweep.params]
    run = _mlflow_run("pretrain", params)
    return (f"set -eu\n{_needs_server(sweep.secret)}\n"
            f'case "$JOB_COMPLETION_INDEX" in\n{cases}'
            '  *) echo "no task for index $JOB_COMPLETION_INDEX" >&2; exit 1 ;;\nesac\n'
            'echo "task $JOB_COMPLETION_INDEX: exp=$exp seed=$seed"\n'
            f'exec {run} -P "exp=$exp" -P "seed=$seed" -P "eval_every=$eval_every"\n')


def _job(sweep: Sweep, name: str, component: str, script: str, spec: dict,
         limits: dict) -> dict:
    labels = {"app.kubernetes.io/name": "minimult-ml", "app.kubernetes.io/component": component,
              "minimult-ml/sweep": sweep.name}
    container: dict = {"name": component, "image": sweep.image,
                       "command": ["/bin/sh", "-c", script],
                       "envFrom": [{"secretRef": {"name": sweep.secret}}],
                       "resources": {"requests": {"cpu": sweep.cpu, "memory": sweep.memory},
                                     **({"limits": limits} if limits else {})},
                       # The "restricted" Pod Security Standard, with the pod's fields below.
                       "securityContext": {"allowPrivilegeEscalation": False,
                                           "capabilities": {"drop": ["ALL"]}}}
    if sweep.tracking_uri:  # an explicit env entry wins over the Secret's
        container["env"] = [{"name": "MLFLOW_TRACKING_URI", "value": sweep.tracking_uri}]
    pod_security = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    template = {"metadata": {"labels": labels},
                "spec": {"restartPolicy": "Never", "securityContext": pod_security,
                         "containers": [container]}}
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "labels": labels},
            "spec": {**spec, "template": template}}


def manifests(sweep: Sweep) -> list[dict]:
    """The preparation Job (when there is anything to prepare) and the sweep's Indexed Job."""
    steps = preparation_steps(sweep)
    docs = []
    if steps:
        script = "\n".join(["set -eu", _needs_server(sweep.secret), *steps]) + "\n"
        docs.append(_job(sweep, f"{sweep.name}-prepare", "prepare", script,
                         {"backoffLimit": RETRIES_PER_POD}, {}))
    n = len(sweep.tasks)
    spec = {"completionMode": "Indexed", "completions": n,
            "parallelism": min(sweep.parallelism or n, n),
            "backoffLimitPerIndex": RETRIES_PER_POD,
            **({"suspend": True} if steps else {})}
    docs.append(_job(sweep, sweep.name, "pretrain", pod_script(sweep), spec,
                     {"nvidia.com/gpu": sweep.gpus}))
    return docs


class _Dumper(yaml.SafeDumper):
    """Scripts as literal blocks, so the manifest reads like the shell it runs; no anchors."""

    def ignore_aliases(self, data: object) -> bool:
        return True


_Dumper.add_representer(str, lambda dumper, s: dumper.represent_scalar(
    "tag:yaml.org,2002:str", s, style="|" if "\n" in s else None))


def to_yaml(docs: list[dict]) -> str:
    return yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, explicit_start=True)
