"""``python -m governance.cli``: the CLI (as torchrun starts it on every rank)."""

from governance.cli import main

main()
