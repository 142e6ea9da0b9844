"""What do untrained models owe to shared absolute positions? (issue 18, rel-pos)

The paper's rows 18–19: a random BERT aligns English with Fake-English almost perfectly when both
share position embeddings, because identical positions give identical vector components. rel-pos
(rotary attention) has no absolute positions, so that shortcut must vanish. Evaluates random
models of each exp (Table 1's numbers) on a prepared folder and prints one Markdown row each.

    python bench/untrained_positions.py --data PREPARED_FOLDER [--seeds 42,0,43]
        [--dev-sentences 300] [--exps 'untrained,untrained;rel-pos,…']
"""

import argparse
from pathlib import Path

import torch

from minimult_ml import experiments
from minimult_ml.evaluation import evaluate
from minimult_ml.model import build_model
from minimult_ml.prepare import load

EXPS = "untrained,untrained;rel-pos,untrained;inv-order,untrained;rel-pos;inv-order"
COLUMNS = ("mult_score", "align_f1/L0", "retrieval_p1/L0", "translation_p1/L0", "align_f1/L8",
           "retrieval_p1/L8", "translation_p1/L8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a prepared folder (prepare's artifacts)")
    parser.add_argument("--seeds", default="42,0,43")
    parser.add_argument("--dev-sentences", type=int, default=300)
    parser.add_argument("--exps", default=EXPS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load(Path(args.data))
    dev, train = data.dev.head(args.dev_sentences), data.train.head(args.dev_sentences)
    print("| exp | seed | μ | L0 F1 | L0 ρ | L0 τ | L8 F1 | L8 ρ | L8 τ | ppl dev |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for seed in map(int, args.seeds.split(",")):
        for exp in args.exps.split(","):
            config = experiments.resolve(exp, seed=seed)
            model = build_model(config.size, data.languages.vocab_size, len(data.languages),
                                config.max_length, config.seed, config.dropout, config.rel_pos)
            scores, _ = evaluate(model, config, data.languages, train, dev,
                                 device=torch.device("cpu"))
            cells = " | ".join(f"{scores[key]:.3f}" for key in COLUMNS)
            print(f"| {exp} | {seed} | {cells} | {scores['ppl/dev']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
