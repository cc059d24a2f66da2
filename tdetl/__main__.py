"""``python -m tdetl``: the CLI as a program."""

from .program import main

main()
