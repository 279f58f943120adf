"""``python -m release.cli``: the ``synthgate`` command (for environments without the console script)."""

from release.cli.main import main

main()
