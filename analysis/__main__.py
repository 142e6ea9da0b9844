"""`python -m analysis`: the same command as the MLproject entry point `analysis`."""

from entrypoints.analysis import command
from entrypoints.common import run_command

run_command(command)
