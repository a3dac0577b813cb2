"""python -m lightdl.report DIR: write DIR/report/index.html comparing the runs of a sweep or runs folder."""

from __future__ import annotations

import argparse
import sys

from lightdl.errors import ConfigError

EXIT_CONFIG = 2  # as lightdl.app.EXIT_CONFIG, without importing Hydra's app machinery


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lightdl.report",
        description="Compare the runs of a sweep (or of any folder of runs) in one self-contained "
        "HTML page with plots: DIR/report/index.html, and the PNGs beside it.",
    )
    parser.add_argument("dir", help="a multirun sweep folder, or a folder holding run folders")
    args = parser.parse_args(argv)
    from lightdl.report.write import write_report

    try:
        index = write_report(args.dir)
    except ConfigError as exc:
        print(f"lightdl.report: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"report: {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
