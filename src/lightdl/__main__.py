"""Entry point: `python -m lightdl ...` (or the `lightdl` script)."""

from __future__ import annotations

import sys


def main() -> None:
    args = sys.argv[1:]
    if "--help" in args or "-h" in args:
        from lightdl.cli_help import print_help

        print_help()
        sys.exit(0)
    from lightdl.app import run_cli

    sys.exit(run_cli())


if __name__ == "__main__":
    main()
