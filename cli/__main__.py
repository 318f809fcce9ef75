"""``python -m inrstore.cli``: the same as the ``inrstore`` command."""

from inrstore.cli.app import main

main()
