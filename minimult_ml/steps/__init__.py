"""The steps: for each MLproject step one function from its parameters to its run — find the
finished run made by the same code with the same parameters, or build it (DESIGN §3).

`runs` holds what they share (experiment per track, tags, code versions, the reuse decision);
`prepare`, `knn_space`, `pretrain`, `evaluate`, `xnli` and `kendall_tau` one step each. The
sweep over them is `minimult_ml.reproduction`; the command lines are `entrypoints/`.
"""

# Which finished run a step may reuse instead of building: one with the same parameters made by
# the step's current code, one made by any code, or none (see `runs.choose`).
REUSE = ("same-code", "any", "never")
