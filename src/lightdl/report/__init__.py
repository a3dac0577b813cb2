"""The comparison report of a sweep or of a folder of runs: a self-contained HTML page and PNG figures.

`python -m lightdl.report <dir>` or `write_report(dir)`; see lightdl.report.write.
"""

from __future__ import annotations

from pathlib import Path


def write_report(sweep_dir: str | Path) -> Path:
    """Write <sweep_dir>/report/index.html and its PNGs; returns the page's path (imports on first use)."""
    from lightdl.report.write import write_report as write

    return write(sweep_dir)
