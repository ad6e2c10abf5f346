"""``python -m kiln``: the Kiln shell (``python -m kiln shell``), or any ``kiln`` command:
``python -m kiln sql -e "SELECT 1"``, ``python -m kiln executor --driver URL``."""

from __future__ import annotations

import sys

from kiln import _kiln


def main(argv: list[str] | None = None) -> int:
    """Runs the ``kiln`` command line; with no arguments, the interactive shell."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        args = ["shell"]
    return _kiln.cli(args)


if __name__ == "__main__":
    sys.exit(main())
