"""`evaluate`: Table 1's numbers for checkpoints of a pretrain run, logged into that run."""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from pathlib import Path

import click
import torch
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from transformers import AutoModelForMaskedLM

from entrypoints.common import note_launcher, run_command
from minimult_ml import figures, tracking
from minimult_ml.errors import InputError
from minimult_ml.evaluation import evaluate
from minimult_ml.experiments import TrainConfig
from minimult_ml.model import position_embeddings
from minimult_ml.prepare import Prepared, load
from minimult_ml.training import CONFIG_FILE


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


def parse_layers(spec: str) -> list[int]:
    try:
        return [int(s) for s in spec.split(",")]
    except ValueError:
        raise InputError(f"layers {spec!r}: give layer numbers like 0,8") from None


NO_POSITION_FIGURE = ("position similarity (Figures 5, 8): not applicable; this rel-pos model "
                      "has no position embeddings, positions enter attention only as offsets "
                      "between tokens (rotary)")


class CheckpointEvaluator:
    """Evaluates checkpoints of one pretrain run and logs each into that run."""

    def __init__(self, run_id: str, layers: list[int], dev_sentences: int,
                 data: Prepared | None = None) -> None:
        self.run_id = run_id
        self.layers = layers
        if dev_sentences <= 0:
            raise InputError(f"dev_sentences must be positive, got {dev_sentences}")
        run = tracking.get_run(run_id, "pretrain")
        if run.data.tags.get("track", "lab") != "lab":
            raise InputError(f"run {run_id} is a real-track run: evaluate measures the lab's "
                             "English–Fake-English multilinguality; evaluate it with the xnli "
                             "entry point")
        self.data = data or load(tracking.download(run.data.tags["data_run_id"], ""))
        self.dev = self.data.dev.head(dev_sentences)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def __call__(self, step: int, folder: Path, figures_too: bool) -> dict[str, float]:
        model = AutoModelForMaskedLM.from_pretrained(folder)
        if max(self.layers) > model.config.num_hidden_layers or min(self.layers) < 0:
            raise InputError(f"layers {self.layers}: this model has layers 0 (embeddings) to "
                             f"{model.config.num_hidden_layers}")
        config = TrainConfig(**json.loads((folder / CONFIG_FILE).read_text()))
        scores, word_vectors = evaluate(model, config, self.data.languages, self.data.train,
                                        self.dev, self.layers, self.device)
        client = MlflowClient()
        now = int(time.time() * 1000)
        client.log_batch(self.run_id, [Metric(k, v, now, step) for k, v in scores.items()])
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            report = {"step": step, "layers": self.layers, "dev_sentences": len(self.dev),
                      "config": dataclasses.asdict(config), "scores": scores}
            (out / f"step-{step}.json").write_text(json.dumps(report, indent=2))
            client.log_artifact(self.run_id, str(out / f"step-{step}.json"), "evaluation")
            if figures_too:
                title = f"{config.run_name}, step {step}"
                figures.embedding_pca(word_vectors, self.data.languages.codes,
                                      out / "token_embeddings_pca.png", f"Layer 0: {title}")
                client.log_artifact(self.run_id, str(out / "token_embeddings_pca.png"), "figures")
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


def evaluate_run(run_id: str, checkpoints: str, layers: list[int],
                 dev_sentences: int) -> dict[int, dict[str, float]]:
    evaluator = CheckpointEvaluator(run_id, layers, dev_sentences)
    steps = checkpoint_steps(run_id)
    results = {}
    for step in select(steps, checkpoints):
        folder = tracking.download(run_id, f"checkpoints/step-{step}")
        results[step] = evaluator(step, folder, figures_too=step == steps[-1])
        click.echo(summary(step, results[step]))
    return results


def summary(step: int, s: dict[str, float]) -> str:
    def get(key: str) -> str:
        return f"{s[key]:.2f}" if key in s else "–"

    return (f"step {step}: μ {get('mult_score')} | L0 align {get('align_f1/L0')} "
            f"retr {get('retrieval_p1/L0')} trans {get('translation_p1/L0')} | L8 align "
            f"{get('align_f1/L8')} retr {get('retrieval_p1/L8')} trans "
            f"{get('translation_p1/L8')} | ppl train {s['ppl/train']:.1f} dev {s['ppl/dev']:.1f}")


@click.command("evaluate")
@click.option("--run-id", required=True, help="The pretrain run to evaluate.")
@click.option("--checkpoints", default="last", show_default=True,
              help="last, all, or steps like 100,200.")
@click.option("--layers", default="0,8", show_default=True, help="Layers (0 = embeddings).")
@click.option("--dev-sentences", type=int, default=10_000, show_default=True)
def command(run_id: str, checkpoints: str, layers: str, dev_sentences: int) -> None:
    """Evaluate multilinguality and model fit of a pretrain run's checkpoints."""
    evaluate_run(run_id, checkpoints, parse_layers(layers), dev_sentences)
    note_launcher(f"Evaluated pretrain run {run_id}; its metrics are logged there.", run_id)


if __name__ == "__main__":
    run_command(command)
