"""The experiment registry: modification names and paper IDs → one resolved, frozen config.

An exp is a paper ID (`0`, `8`, `21b`, `30`, `0-base`, …) or modification names joined by `;` or
`+`, in any order. Adding a modification means adding its name here and one transform where it
acts (`inputs` or `masking`); everything else reads the resolved config.

Two tracks share the registry: the lab (English + Fake-English, BERT-small, Tables 1–2) and the
real track (several real languages, BERT-base, Table 3), whose paper IDs end in "-base". The
track decides the defaults (paper Table 9 and §5.1) and which paper ID a combination gets.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path

from minimult_ml.errors import InputError

CONFIG_FILE = "training_config.json"  # a checkpoint's TrainConfig, beside the model

# Each modification and the config fields it sets (paper §2.3–2.4, §4), in canonical order (the
# paper's way of writing combinations); combined, they apply in this order.
MODIFICATIONS: dict[str, dict[str, object]] = {
    "lang-pos": {"lang_pos": True},
    "inv-order": {"inv_order": True},
    "shift-special": {"shift_special": True},
    "no-random": {"p_mask": 0.8, "p_keep": 0.2, "p_random": 0.0},  # the paper's (.8, .2, 0)
    # Each sentence is seen in one language only: twice the epochs.
    "no-parallel": {"no_parallel": True, "epochs": 200},
    "overparam": {"size": "base", "lr": 1e-4},
    "untrained": {"untrained": True},
    "knn-replace": {"p_mask": 0.5, "p_keep": 0.1, "p_random": 0.1, "p_knn": 0.3},  # paper §4
}
# What a track changes beside the modifications. The real track (paper §5.1): BERT-base,
# 2 epochs, knn among the 5 nearest neighbours.
TRACK_DEFAULTS: dict[str, dict[str, object]] = {
    "lab": {},
    "real": {"size": "base", "lr": 1e-4, "epochs": 2, "knn_k": 5},
}

PAPER_IDS: dict[str, tuple[str, ...]] = {
    "0": (), "1": ("lang-pos",), "2": ("shift-special",), "3": ("inv-order",),
    "4": ("no-random",), "5": ("lang-pos", "shift-special"), "6": ("lang-pos", "no-random"),
    "7": ("shift-special", "no-random"), "8": ("lang-pos", "shift-special", "no-random"),
    "9": ("lang-pos", "inv-order", "shift-special", "no-random"), "15": ("overparam",),
    "16": ("lang-pos", "overparam"), "17": ("lang-pos", "shift-special", "no-random", "overparam"),
    "18": ("untrained",), "19": ("untrained", "lang-pos"), "21": ("no-parallel",),
    "21b": ("lang-pos", "no-parallel"), "30": ("knn-replace",),
}
# The real-data runs of Table 3 (paper §5.1).
REAL_IDS: dict[str, tuple[str, ...]] = {
    "0-base": (), "3-base": ("inv-order",), "8-base": ("lang-pos", "shift-special", "no-random"),
    "30-base": ("knn-replace",),
}
TRACKS = tuple(TRACK_DEFAULTS)
# Modifications that only make sense with the lab's parallel English + Fake-English corpus.
LAB_ONLY = frozenset({"no-parallel", "overparam", "untrained"})
# The lab runs of Tables 1–2, in the paper's order.
LAB_IDS = ("0", "1", "2", "4", "5", "6", "7", "8", "15", "16", "17", "3", "9", "18", "19", "30",
           "21", "21b")

# Model sizes (paper §2.1 and Table 9): BERT-small divides BERT-base's widths by 12.
SIZES = {
    "small": {"hidden_size": 64, "num_hidden_layers": 12, "num_attention_heads": 1,
              "intermediate_size": 256},
    "base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
             "intermediate_size": 3072},
}


def canonical(modifications: frozenset[str]) -> str:
    return ";".join(m for m in MODIFICATIONS if m in modifications) or "original"


def parse(exp: str) -> frozenset[str]:
    """A paper ID or `;`/`+`-joined modification names → the set of modifications."""
    exp = exp.strip()
    if exp in PAPER_IDS or exp in REAL_IDS:
        return frozenset((PAPER_IDS | REAL_IDS)[exp])
    names = {n.strip() for n in re.split(r"[;+]", exp) if n.strip()} - {"original"}
    unknown = sorted(names - set(MODIFICATIONS))
    if unknown or not exp:
        raise InputError(f"unknown exp {exp!r} ({', '.join(unknown) or 'empty'}); valid: a paper "
                         f"ID ({', '.join([*PAPER_IDS, *REAL_IDS])}) or names joined by ';' or "
                         f"'+' from: original, {', '.join(MODIFICATIONS)}")
    return frozenset(names)


def named_track(exp: str) -> str | None:
    """The track an exp names by itself: "real" for the "-base" IDs, else None (either)."""
    return "real" if exp.strip() in REAL_IDS else None


def paper_id(modifications: frozenset[str], track: str = "lab") -> str:
    """The paper's ID of this combination in `track`, or "x" when the paper did not run it."""
    ids = REAL_IDS if track == "real" else PAPER_IDS
    return next((i for i, m in ids.items() if frozenset(m) == modifications), "x")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a pretraining run depends on; logged as params, one field each."""

    exp: str  # canonical modification names
    paper_id: str
    seed: int = 42
    track: str = "lab"  # lab (English + Fake-English) or real (real languages, Table 3)
    # model
    size: str = "small"
    dropout: float = 0.1  # BERT's hidden and attention dropout
    # data and input transforms
    lang_pos: bool = False
    shift_special: bool = False
    inv_order: bool = False
    invert: str = ""  # inv-order: the language reversed ("" = the second: Fake-English, German)
    no_parallel: bool = False
    max_length: int = 128
    # masking: (mask, keep, random, knn) of the selected 15%
    mlm_probability: float = 0.15
    p_mask: float = 0.8
    p_keep: float = 0.1
    p_random: float = 0.1
    p_knn: float = 0.0
    knn_k: int = 1
    # optimisation (paper Table 9)
    epochs: int = 100
    max_steps: int = 0  # > 0 stops early (tests, benchmarks)
    batch_size: int = 256
    micro_batch_size: int = 0  # 0 = batch_size; smaller uses gradient accumulation
    lr: float = 2e-3
    weight_decay: float = 0.01
    adam_eps: float = 1e-6
    warmup_steps: int = 50
    untrained: bool = False
    # engineering
    checkpoint_every: int = 0  # 0 = only at the end
    log_every: int = 10
    compile: str = "auto"  # auto = torch.compile on CUDA only; true / false

    @property
    def modifications(self) -> frozenset[str]:
        return parse(self.exp)

    def validate(self) -> None:
        checks = [
            (self.epochs > 0, f"epochs must be positive, got {self.epochs}"),
            (self.batch_size > 0, f"batch_size must be positive, got {self.batch_size}"),
            (self.micro_batch_size >= 0 and (self.micro_batch_size == 0
                                             or self.batch_size % self.micro_batch_size == 0),
             f"micro_batch_size must divide batch_size {self.batch_size}, "
             f"got {self.micro_batch_size}"),
            (self.max_steps >= 0, f"max_steps must be ≥ 0, got {self.max_steps}"),
            (self.lr > 0, f"lr must be positive, got {self.lr}"),
            (0 < self.mlm_probability < 1, f"mlm_probability must be in (0, 1), "
                                           f"got {self.mlm_probability}"),
            (min(self.p_mask, self.p_keep, self.p_random, self.p_knn) >= 0
             and abs(self.p_mask + self.p_keep + self.p_random + self.p_knn - 1) < 1e-6,
             "p_mask + p_keep + p_random + p_knn must be 1 and each ≥ 0, got "
             f"{self.p_mask}, {self.p_keep}, {self.p_random}, {self.p_knn}"),
            (self.knn_k >= 1, f"knn_k must be ≥ 1, got {self.knn_k}"),
            (self.checkpoint_every >= 0, f"checkpoint_every must be ≥ 0, "
                                         f"got {self.checkpoint_every}"),
            (self.size in SIZES, f"size must be one of {', '.join(SIZES)}, got {self.size!r}"),
            (self.compile in ("auto", "true", "false"),
             f"compile must be auto, true or false, got {self.compile!r}"),
            (self.track in TRACKS, f"track must be lab or real, got {self.track!r}"),
            (0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}"),
            (not self.invert or self.inv_order,
             f"invert={self.invert} names the language inv-order reverses; add inv-order to "
             "the exp"),
            (self.track == "lab" or not self.modifications & LAB_ONLY,
             f"{', '.join(sorted(self.modifications & LAB_ONLY))} belongs to the lab only (its "
             "parallel English + Fake-English corpus, BERT-small); the real track is BERT-base "
             "on non-parallel text"),
        ]
        for ok, message in checks:
            if not ok:
                raise InputError(message)

    @property
    def run_name(self) -> str:
        return f"{self.paper_id}-{self.exp}-s{self.seed}"


def inverted_languages(config: TrainConfig, codes: list[str]) -> tuple[int, ...]:
    """The indices of the languages inv-order reverses: `config.invert`, by default the second
    language (Fake-English in the lab, German in the paper's real track); none without it."""
    if not config.inv_order:
        return ()
    code = config.invert or codes[1]
    if code not in codes:
        raise InputError(f"invert={code}: the data has languages {', '.join(codes)}; name one "
                         "of them")
    return (codes.index(code),)


def resolve(exp: str, track: str | None = None, **overrides: object) -> TrainConfig:
    """The frozen config of an exp in a track (default: the one the exp names, else the lab):
    the paper's defaults for it, then explicit overrides."""
    mods = parse(exp)
    named = named_track(exp)
    if track is not None and named is not None and track != named:
        raise InputError(f"exp {exp} is a {named}-track exp, but the data is {track}-track data; "
                         f"pass the exp by its modification names ({canonical(mods)}) or "
                         f"{named}-track data")
    track = track or named or "lab"
    defaults: dict[str, object] = {"track": track}
    for name, fields in MODIFICATIONS.items():
        if name in mods:
            defaults |= fields
    defaults |= TRACK_DEFAULTS[track]
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise InputError(f"unknown parameter(s) {', '.join(unknown)}; valid: {', '.join(fields)}")
    given = {k: v for k, v in overrides.items() if v is not None}
    config = TrainConfig(exp=canonical(mods), paper_id=paper_id(mods, track),
                         **(defaults | given))
    config.validate()
    return config


def load_config(folder: Path) -> TrainConfig:
    """The training config saved beside a checkpoint (CONFIG_FILE), validated."""
    path = folder / CONFIG_FILE
    try:
        given = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{folder} has no {CONFIG_FILE}: pass a checkpoint folder written by "
                         "pretrain") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{path} is not a JSON training config ({err}); pass a checkpoint "
                         "folder written by pretrain") from None
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(given) - fields) if isinstance(given, dict) else ["(not an object)"]
    missing = sorted({"exp", "paper_id"} - set(given)) if isinstance(given, dict) else []
    if unknown or missing:
        raise InputError(f"{path}: unknown field(s) {', '.join(unknown) or 'none'}, missing "
                         f"{', '.join(missing) or 'none'}; pass a checkpoint folder written by "
                         "this version of pretrain")
    config = TrainConfig(**given)
    config.validate()
    return config
