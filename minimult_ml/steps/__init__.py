"""The steps: for each MLproject step one function from its parameters to its run — find the
finished run made by the same code with the same parameters, or build it (DESIGN §3).

`runs` holds what they share (experiment per track, tags, code versions, the reuse decision);
`prepare`, `knn_space`, `pretrain`, `evaluate`, `xnli` and `kendall_tau` one step each. The
sweep over them is `minimult_ml.reproduction`; the command lines are `entrypoints/`.
"""
