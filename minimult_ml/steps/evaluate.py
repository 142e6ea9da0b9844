"""The evaluate step: checkpoints of a pretrain run → Table 1's numbers, logged into that run
with `step` = the checkpoint's global step (so the UI draws the curves of Figures 6–7). A
real-track run is measured by retrieval between English and each language on its parallel dev
verses (the Bibles'), with its perplexities."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import click
import torch
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from transformers import AutoModelForMaskedLM

from minimult_ml import figures, tracking
from minimult_ml.errors import InputError
from minimult_ml.evaluation import evaluate, evaluate_real, parallel_head
from minimult_ml.experiments import load_config
from minimult_ml.model import position_embeddings
from minimult_ml.prepare import Prepared
from minimult_ml.steps import runs
from minimult_ml.steps.prepare import load_data

STEP = "evaluate"
CODE_TAG = "evaluate_code_version"  # on a pretrain run: the code version that evaluated it
LAYERS = (0, 8)
DEV_SENTENCES = 10_000
NO_POSITION_FIGURE = ("position similarity (Figures 5, 8): not applicable; this rel-pos model "
                      "has no position embeddings, positions enter attention only as offsets "
                      "between tokens (rotary)")


def checkpoint_steps(run_id: str) -> list[int]:
    steps = tracking.checkpoint_steps(run_id)
    if not steps:
        raise InputError(f"run {run_id} has no checkpoints yet; evaluate it after pretraining "
                         "has written one")
    return steps


def select(steps: list[int], spec: str) -> list[int]:
    """`last`, `all`, or a comma-separated list of steps that exist."""
    if spec == "last":
        return steps[-1:]
    if spec == "all":
        return steps
    try:
        wanted = [int(s) for s in spec.split(",")]
    except ValueError:
        raise InputError(f"checkpoints {spec!r}: use last, all or steps like 100,200") from None
    missing = sorted(set(wanted) - set(steps))
    if missing:
        raise InputError(f"checkpoints {missing} do not exist; this run has steps {steps}")
    return wanted


class CheckpointEvaluator:
    """Evaluates checkpoints of one pretrain run and logs each into that run."""

    def __init__(self, run_id: str, layers: list[int], dev_sentences: int,
                 data: Prepared | None = None) -> None:
        self.run_id = run_id
        self.layers = layers
        if dev_sentences <= 0:
            raise InputError(f"dev_sentences must be positive, got {dev_sentences}")
        run = tracking.get_run(run_id, "pretrain")
        self.real = run.data.tags.get("track", "lab") != "lab"
        self.data = data or load_data(run.data.tags["data_run_id"])
        if self.real:
            self.data.verse_keys("dev")  # one line unless the dev sentences are parallel verses
        self.dev = parallel_head(self.data.dev, len(self.data.languages), dev_sentences)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def __call__(self, step: int, folder: Path, figures_too: bool) -> dict[str, float]:
        model = AutoModelForMaskedLM.from_pretrained(folder)
        if max(self.layers) > model.config.num_hidden_layers or min(self.layers) < 0:
            raise InputError(f"layers {self.layers}: this model has layers 0 (embeddings) to "
                             f"{model.config.num_hidden_layers}")
        config = load_config(folder)
        if self.real:
            scores = evaluate_real(model, config, self.data.languages, self.data.train,
                                   self.dev, self.layers, self.device)
            word_vectors = None
        else:
            scores, word_vectors = evaluate(model, config, self.data.languages,
                                            self.data.train, self.dev, self.layers, self.device)
        client = MlflowClient()
        now = int(time.time() * 1000)
        with tempfile.TemporaryDirectory() as tmp, tracking.server_errors():
            tracked = tracking.evaluation_metrics(scores) | {
                tracking.DEV_SENTENCES: len(self.dev)}
            client.log_batch(self.run_id, [Metric(k, v, now, step) for k, v in tracked.items()])
            client.set_tag(self.run_id, CODE_TAG, runs.code_version(STEP))
            out = Path(tmp)
            report = {"step": step, "layers": self.layers, "dev_sentences": len(self.dev),
                      "config": config.params(), "scores": scores}
            (out / f"step-{step}.json").write_text(json.dumps(report, indent=2))
            client.log_artifact(self.run_id, str(out / f"step-{step}.json"), "evaluation")
            if figures_too:
                title = f"{config.run_name}, step {step}"
                if word_vectors is not None:  # the lab: its vocabulary in both languages
                    figures.embedding_pca(word_vectors, self.data.languages.codes,
                                          out / "token_embeddings_pca.png",
                                          f"Layer {self.layers[0]}: {title}")
                    client.log_artifact(self.run_id, str(out / "token_embeddings_pca.png"),
                                        "figures")
                positions = position_embeddings(model)
                if positions is None:
                    # A note where the figure would be: the UI shows why there is none.
                    artifact = out / "position_similarity.txt"
                    artifact.write_text(NO_POSITION_FIGURE + "\n")
                    click.echo(NO_POSITION_FIGURE)
                else:
                    figures.position_similarity(positions[:256], out / "position_similarity.png",
                                                f"Position embeddings: {title}")
                    artifact = out / "position_similarity.png"
                client.log_artifact(self.run_id, str(artifact), "figures")
        return scores


def evaluate_run(run_id: str, checkpoints: str = "last", layers: list[int] | None = None,
                 dev_sentences: int = DEV_SENTENCES) -> dict[int, dict[str, float]]:
    """Evaluate the chosen checkpoints of a pretrain run, logging into it; scores by step."""
    evaluator = CheckpointEvaluator(run_id, list(layers or LAYERS), dev_sentences)
    steps = checkpoint_steps(run_id)
    results = {}
    for step in select(steps, checkpoints):
        folder = tracking.download(run_id, f"checkpoints/step-{step}")
        results[step] = evaluator(step, folder, figures_too=step == steps[-1])
        click.echo(summary(step, results[step], evaluator.layers, evaluator.real))
    tracking.label_launcher(run_id, tracking.get_run(run_id, "pretrain").info.run_name,
                            "pretrain", "evaluated")
    return results


def summary(step: int, s: dict[str, float], layers: list[int], real: bool) -> str:
    """One line of an evaluation's scores (`evaluation.evaluate`'s names) at `layers`."""
    def get(key: str) -> str:
        return f"{s[key]:.2f}" if key in s else "–"

    if real:  # retrieval between English and each language
        parts = [f"L{n} retr {get(f'retrieval_p1/L{n}')} ("
                 + ", ".join(f"{k.rsplit('/', 1)[1]} {s[k]:.2f}" for k in s
                             if k.startswith(f"retrieval_p1/L{n}/")) + ")" for n in layers]
    else:
        parts = [f"μ {get('mult_score')}", *(
            f"L{n} align {get(f'align_f1/L{n}')} retr {get(f'retrieval_p1/L{n}')} trans "
            f"{get(f'translation_p1/L{n}')}" for n in layers)]
    return " | ".join([f"step {step}: {parts[0]}", *parts[1:],
                       f"ppl train {s['ppl/train']:.1f} dev {s['ppl/dev']:.1f}"])
