"""``python -m scheduler.cli``: the same as the ``costwise`` console script."""

from .main import main

main()
