"""bench/gpu_check.sh cannot rot unseen: its --smoke mode runs the same script on the CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .conftest import ROOT


def test_gpu_check_smoke_runs_every_check_and_appends_the_figures(small_prepared: Path,
                                                                  tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    env = os.environ | {"PYTHON": sys.executable, "RESULTS": str(results),
                        "DATA": str(small_prepared), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(["bash", "bench/gpu_check.sh", "--smoke"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    text = results.read_text()
    assert "## GPU check (smoke: CPU, toy sizes)" in text
    for check in ("fp32, compile=false", "bf16, compile=false", "AdamW", "`original`, 1 epochs",
                  "`evaluate`, 120 dev pairs", "| ours fp32 |", "| Trainer group_by_length |",
                  "Matmul peak"):
        assert check in text, check
    assert "FAILED" not in text and text.count("| ok: last loss") == 2
