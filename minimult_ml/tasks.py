"""The zero-shot transfer tasks by name (paper §5.1, Table 3): their labels and metric names.

`xnli` is the paper's (English NLI, tested on XNLI; needs the hub or local files); `bible-genre`
labels each verse of the embedded Bibles with its division of the canon, in every language
(offline). A task's accuracies are logged as `<metric>/<lang>` (zero-shot),
`<metric>_majority/<lang>` (the majority-class baseline) and `<metric>_in_language/<lang>`
(fine-tuned and tested in the language itself).
"""

from __future__ import annotations

from dataclasses import dataclass

from minimult_ml import genre, nli
from minimult_ml.errors import InputError


@dataclass(frozen=True)
class Task:
    name: str
    labels: tuple[str, ...]
    metric: str  # the prefix of its zero-shot accuracies' metric names, + language code
    title: str  # what a table's column says
    every_language: bool  # training data in every language (so an in-language bound)
    examples: str  # what one example is, in plural (a confusion matrix counts them)

    def accuracy(self, lang: str, kind: str = "") -> str:
        """The metric name of a language's accuracy: zero-shot (""), "majority" or
        "in_language"."""
        return f"{self.metric.removesuffix('/')}{'_' + kind if kind else ''}/{lang}"


TASKS = {t.name: t for t in (
    Task("bible-genre", genre.DIVISIONS, "genre_acc/", "Bible genre", every_language=True,
         examples="verses"),
    Task("xnli", nli.LABELS, "xnli_acc/", "XNLI", every_language=False,
         examples="sentence pairs"),
)}


def task(name: str) -> Task:
    if name not in TASKS:
        raise InputError(f"unknown task {name!r}; the tasks are {', '.join(TASKS)}")
    return TASKS[name]
