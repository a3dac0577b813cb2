"""`python -m lightdl --help`: every group, its options and what each one is, read from conf/ (no torch import)."""

from __future__ import annotations

import shutil
import textwrap

from lightdl.paths import defaults, describe, group_names, options

USAGE = """\
lightdl: train any composition of config groups with PyTorch Lightning.

Usage:
  python -m lightdl [group=option ...] [key=value ...]       one run
  python -m lightdl -m group=a,b key=1,2                     a sweep (multirun)
  python -m lightdl regularizer=[l2,dropout] logger=[csv,wandb]   several options of a list group

Examples:
  python -m lightdl model=lstm optimizer=adam trainer.max_epochs=1
  python -m lightdl -m init=zeros,xavier_uniform,he_normal optimizer=sgd,adam
  python -m lightdl --cfg job model=gru      print the composed config and exit
  python -m lightdl --hydra-help             Hydra's own flags

Exit codes: 0 completed or stopped early, 1 failed, 2 bad configuration, 3 diverged (NaN loss).
Set LIGHTDL_DEBUG=1 to see tracebacks.
"""


def help_text() -> str:
    width = min(shutil.get_terminal_size((100, 20)).columns, 120)
    lines = [USAGE, "Config groups (== marks the default):"]
    default_options = defaults()
    pad = max([18, *(len(o) + 1 for g in group_names() for o in options(g))])
    for group in group_names():
        lines.append(f"\n  {group}")
        for option in options(group):
            mark = "==" if option in default_options.get(group, ()) else "  "
            head = f"    {mark} {option:<{pad}}"
            desc = describe(group, option)
            wrapped = textwrap.wrap(desc, width=max(width - len(head), 30)) or [""]
            lines.append(head + wrapped[0])
            lines.extend(" " * len(head) + rest for rest in wrapped[1:])
    return "\n".join(lines) + "\n"


def print_help() -> None:
    print(help_text(), end="")
