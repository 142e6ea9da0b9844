"""Evaluation speed: our batched `evaluate` vs a per-sentence reference (DESIGN §8, issue 4).

One process, the prepared Bible corpus, one BERT-small checkpoint (randomly initialised: the work
is the same as for a trained one), original exp, layers 0 and 8:
  (a) ours: `minimult_ml.evaluation.evaluate` on the full dev set, total and split by part;
  (b) the reference: each sentence pair through the Hugging Face encoder alone (batch of 1,
      output_hidden_states), scikit-learn cosine matrices and numpy argmax per sentence,
      retrieval and translation by a full m×m cosine matrix and a full np.argsort per query,
      perplexity with batch-1 forward passes of BertForMaskedLM.
The reference's alignment, retrieval and translation scores must equal ours on the sentences it
ran. With --reference-sentences N < dev sentences it runs on N evenly spaced dev sentences (and the
same fraction of train) and its per-sentence times are extrapolated linearly; its retrieval is
then timed at full size on stand-in vectors. Extrapolated figures are marked with *.

    python bench/evaluate_speed.py [--dev-sentences 10000] [--reference-sentences 1000]
        [--device auto] [--prepared PREPARED_FOLDER] [--repeats 1] [--threads N]
"""

import argparse
import math
import shlex
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from sklearn.metrics.pairwise import cosine_similarity
from transformers import BertForMaskedLM

from minimult_ml import experiments
from minimult_ml.data import TokenizedCorpus, training_examples
from minimult_ml.evaluation import ENGLISH, FAKE, PPL_MASKING, PPL_SEED, Evaluator, evaluate
from minimult_ml.experiments import TrainConfig
from minimult_ml.inputs import build_inputs, input_config
from minimult_ml.languages import CLS, SEP, LanguageSet
from minimult_ml.masking import IGNORE, Masker
from minimult_ml.model import build_model
from minimult_ml.prepare import PrepareConfig, load, prepare

LAYERS = (0, 8)
KS = (1, 5, 10)
T = TypeVar("T")


def timed(device: torch.device, fn: Callable[[], T]) -> tuple[T, float]:
    """(fn(), seconds), with the device synchronised on both sides."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, time.perf_counter() - start


def subset(ids: TokenizedCorpus, n: int) -> TokenizedCorpus:
    """n evenly spaced sentences (all of them when n ≥ len): representative lengths."""
    if n >= len(ids):
        return ids
    rows = np.linspace(0, len(ids) - 1, n).round().astype(int)
    return TokenizedCorpus.from_lists([ids.sentence(i) for i in rows])


# ---------------------------------------------------------------- the per-sentence reference

class Reference:
    def __init__(self, model: BertForMaskedLM, config: TrainConfig, languages: LanguageSet,
                 device: torch.device) -> None:
        self.model, self.config, self.languages, self.device = model, config, languages, device
        self.inputs = input_config(config, languages)

    def hidden(self, local: list[int], lang: int, length: int | None = None) -> list[np.ndarray]:
        """Hidden states of LAYERS for one sentence (batch of 1): [L, d] numpy arrays."""
        ids = torch.tensor([local], device=self.device)
        lengths = None if length is None else torch.tensor([length], device=self.device)
        x = build_inputs(ids, torch.tensor([lang], device=self.device), self.languages,
                         self.inputs, lengths)
        out = self.model.bert(**x, output_hidden_states=True)
        return [out.hidden_states[layer][0].float().cpu().numpy() for layer in LAYERS]

    @torch.no_grad()
    def sentences(self, dev: TokenizedCorpus) -> tuple[dict[str, float], float, float]:
        """Scores, seconds of the per-sentence loop, seconds of retrieval."""
        start = time.perf_counter()
        counts = np.zeros((len(LAYERS), 3, 3), dtype=np.int64)  # (pred, correct, gold) f/b/i
        pooled = np.zeros((len(LAYERS), 2, len(dev), self.model.config.hidden_size), np.float32)
        for s in range(len(dev)):
            local = dev.sentence(s)
            n = len(local) - 2
            en, fake = self.hidden(local, ENGLISH), self.hidden(local, FAKE)
            if n == 0:
                continue
            i = np.arange(n)
            gold = n - 1 - i if self.config.inv_order else i
            for li, (h_en, h_fake) in enumerate(zip(en, fake, strict=True)):
                src, tgt = h_en[1:n + 1], h_fake[1:n + 1]  # no [CLS], no [SEP]
                sim = cosine_similarity(src, tgt)
                fwd, bwd = sim.argmax(1), sim.argmax(0)
                mutual = bwd[fwd] == i
                counts[li] += [[n, (fwd == gold).sum(), n], [n, (bwd == gold).sum(), n],
                               [mutual.sum(), (mutual & (fwd == gold)).sum(), n]]
                pooled[li, 0, s], pooled[li, 1, s] = src.mean(0), tgt.mean(0)
        loop = time.perf_counter() - start
        scores = {}
        for li, layer in enumerate(LAYERS):
            for name, (predicted, correct, gold) in zip(("forward", "backward", ""),
                                                        counts[li], strict=True):
                p, r = correct / predicted, correct / gold
                prefix = f"align_{name}_" if name else "align_"
                scores |= {f"{prefix}precision/L{layer}": p, f"{prefix}recall/L{layer}": r,
                           f"{prefix}f1/L{layer}": 2 * p * r / (p + r) if p + r else 0.0}
        start = time.perf_counter()
        for li, layer in enumerate(LAYERS):
            scores |= retrieval("retrieval", pooled[li, 0], pooled[li, 1], layer)
        return scores, loop, time.perf_counter() - start

    @torch.no_grad()
    def translation(self) -> dict[str, float]:
        size = self.languages.languages[ENGLISH].size
        vectors = np.array([[[h[1] for h in self.hidden([CLS, w, SEP], lang, length=3)]
                             for w in range(size)] for lang in (ENGLISH, FAKE)])
        scores = {}  # vectors: [lang, word, layer, d]
        for li, layer in enumerate(LAYERS):
            scores |= retrieval("translation", vectors[0, :, li], vectors[1, :, li], layer)
        return scores

    @torch.no_grad()
    def perplexity(self, ids: TokenizedCorpus, parallel: bool = True) -> float:
        masker = Masker(self.languages, PPL_MASKING, self.config.shift_special, self.device)
        generator = torch.Generator(self.device).manual_seed(PPL_SEED)
        nll, count = 0.0, 0
        for s, lang in training_examples(ids, len(self.languages), parallel):
            langs = torch.tensor([lang], device=self.device)
            x = build_inputs(torch.tensor([ids.sentence(s)], device=self.device), langs,
                             self.languages, self.inputs)
            x["input_ids"], labels = masker(x["input_ids"], langs, generator)
            n = int((labels != IGNORE).sum())
            if n:
                nll += self.model(**x, labels=labels).loss.item() * n
                count += n
        return math.exp(nll / count)


def retrieval(task: str, src: np.ndarray, tgt: np.ndarray, layer: int) -> dict[str, float]:
    """P@k in both directions: full cosine matrix, full argsort of each query's row."""
    scores = {}
    for direction, (queries, keys) in {"en2fake": (src, tgt), "fake2en": (tgt, src)}.items():
        sim = cosine_similarity(queries, keys)
        ranks = np.array([np.nonzero(np.argsort(-row) == q)[0][0] + 1
                          for q, row in enumerate(sim)])
        for k in KS:
            scores[f"{task}_p{k}_{direction}/L{layer}"] = float(np.mean(ranks <= k))
    for k in KS:
        scores[f"{task}_p{k}/L{layer}"] = (scores[f"{task}_p{k}_en2fake/L{layer}"]
                                           + scores[f"{task}_p{k}_fake2en/L{layer}"]) / 2
    return scores


# ---------------------------------------------------------------- main

def compare(ours: dict[str, float], ref: dict[str, float], what: str) -> list[str]:
    """Keys on which the two disagree by more than 1e-6 (every shared key is checked)."""
    shared = sorted(set(ours) & set(ref))
    assert shared, f"no shared {what} keys"
    bad = [f"{k}: ours {ours[k]:.6f}, reference {ref[k]:.6f}" for k in shared
           if abs(ours[k] - ref[k]) > 1e-6]
    print(f"agreement {what}: {len(shared) - len(bad)}/{len(shared)} scores equal to 1e-6"
          + "".join(f"\n  DIFFERS {b}" for b in bad))
    return bad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev-sentences", type=int, default=10_000)
    parser.add_argument("--reference-sentences", type=int, default=1000,
                        help="dev sentences the reference runs on (0 = all); extrapolated")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, …")
    parser.add_argument("--prepared", type=Path, help="a prepared folder (default: prepare anew)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs of ours (best kept)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu")
                          if args.device == "auto" else args.device)

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.prepared or Path(tmp, "prepared")
        if args.prepared is None:
            print("preparing the default corpus …", flush=True)
            prepare(PrepareConfig(), folder)
        data = load(folder)
    config = experiments.resolve("0")
    languages, train, dev = data.languages, data.train, data.dev.head(args.dev_sentences)
    n_ref = args.reference_sentences or len(dev)
    extrapolated = n_ref < len(dev)
    model = build_model(config.size, languages.vocab_size, len(languages), config.max_length,
                        config.seed).to(device).eval()
    print(f"dev {len(dev)} sentences, train {len(train)}, layers {LAYERS}, exp {config.exp}, "
          f"size {config.size}, device {device}, {torch.get_num_threads()} threads", flush=True)

    # (a) ours. A small warm-up first (CUDA context, kernels, allocator), not timed.
    evaluate(model, config, languages, train.head(256), dev.head(256), LAYERS, device)
    totals = []
    for _ in range(args.repeats):
        (scores, _), seconds = timed(device, lambda: evaluate(model, config, languages, train,
                                                              dev, LAYERS, device))
        totals.append(seconds)
        print(f"ours: evaluate() {seconds:.2f} s", flush=True)
    ev = Evaluator(model, config, languages, device)
    sent, t_sent = timed(device, lambda: ev.sentences(dev, LAYERS))
    (trans, _), t_trans = timed(device, lambda: ev.translation(LAYERS))
    ppl_train, t_ppl_train = timed(device, lambda: ev.perplexity(train, not config.no_parallel))
    ppl_dev, t_ppl_dev = timed(device, lambda: ev.perplexity(dev))
    split = sent | trans | {"ppl/train": ppl_train, "ppl/dev": ppl_dev}
    if not all(math.isclose(v, scores[k], rel_tol=1e-6) for k, v in split.items()):
        print("WARNING: evaluate() and the Evaluator methods gave different scores")
    ours = {"sentences (align + retrieval)": t_sent, "translation": t_trans,
            "perplexity train": t_ppl_train, "perplexity dev": t_ppl_dev}
    print(f"ours: split {t_sent:.2f} + {t_trans:.2f} + {t_ppl_train:.2f} + {t_ppl_dev:.2f} s",
          flush=True)

    # (b) the reference, on n_ref dev sentences and the same fraction of train.
    ref = Reference(model, config, languages, device)
    dev_ref = subset(dev, n_ref)
    train_ref = subset(train, max(1, round(len(train) * n_ref / len(dev))))
    scale_dev, scale_train = len(dev) / len(dev_ref), len(train) / len(train_ref)
    print(f"reference: {len(dev_ref)} dev, {len(train_ref)} train sentences"
          + (f" (extrapolated ×{scale_dev:.1f}, ×{scale_train:.1f})" if extrapolated else ""),
          flush=True)
    ours_sub = ev.sentences(dev_ref, LAYERS) if extrapolated else sent
    ref_sent, loop, t_retrieval = ref.sentences(dev_ref)
    if extrapolated:  # retrieval is O(m² log m): time it at full size on stand-in vectors
        width = model.config.hidden_size
        stand_in = np.random.default_rng(0).standard_normal((2, len(dev), width))
        _, t_retrieval = timed(device, lambda: [retrieval("x", *stand_in.astype(np.float32), 0)
                                                for _ in LAYERS])
    print(f"reference: sentences {loop:.1f} s loop + {t_retrieval:.1f} s retrieval", flush=True)
    ref_trans, t_ref_trans = timed(device, ref.translation)
    print(f"reference: translation {t_ref_trans:.1f} s", flush=True)
    ref_ppl_train, t_ref_ppl_train = timed(
        device, lambda: ref.perplexity(train_ref, not config.no_parallel))
    ref_ppl_dev, t_ref_ppl_dev = timed(device, lambda: ref.perplexity(dev_ref))
    reference = {"sentences (align + retrieval)": loop * scale_dev + t_retrieval,
                 "translation": t_ref_trans, "perplexity train": t_ref_ppl_train * scale_train,
                 "perplexity dev": t_ref_ppl_dev * scale_dev}

    print()
    bad = compare(ours_sub, ref_sent, f"alignment + retrieval ({len(dev_ref)} sentences)")
    bad += compare(trans, ref_trans, "translation (2048 entries)")
    print(f"perplexity (not compared: other masks{', other sentences' if extrapolated else ''}):"
          f" train ours {ppl_train:.1f} reference {ref_ppl_train:.1f}, dev ours {ppl_dev:.1f} "
          f"reference {ref_ppl_dev:.1f}")

    star = "*" if extrapolated else ""
    print(f"\n{'seconds':30}{'ours':>9}{'reference':>12}{'ref/ours':>10}")
    for part in ours:
        mark = star if part != "translation" else ""
        print(f"{part:30}{ours[part]:>9.2f}{reference[part]:>11.1f}{mark:1}"
              f"{reference[part] / ours[part]:>10.1f}")
    best, ref_total = min(totals), sum(reference.values())
    print(f"{'total (ours: evaluate())':30}{best:>9.2f}{ref_total:>11.1f}{star:1}"
          f"{ref_total / best:>10.1f}")
    if extrapolated:
        print(f"* extrapolated linearly from {len(dev_ref)}/{len(dev)} dev and {len(train_ref)}/"
              f"{len(train)} train sentences; reference retrieval timed at full size")
    if len(totals) > 1:
        print("ours, every evaluate(): " + ", ".join(f"{t:.2f}" for t in totals) + " s")
    print(f"\nspeed-up (reference / ours): {ref_total / best:.0f}×; scores "
          + ("agree" if not bad else f"DIFFER on {len(bad)} keys (see above)"))
    print("reproduce: python bench/evaluate_speed.py " + " ".join(
        f"--{k.replace('_', '-')} {shlex.quote(str(v))}" for k, v in vars(args).items()
        if v is not None))
    if bad:
        raise SystemExit(f"the reference and ours differ on {len(bad)} scores")


if __name__ == "__main__":
    main()
