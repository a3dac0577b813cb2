"""`python -m lightdl.describe <group> [option]`: what an option is, its parameters and an example.

Reads conf/ only (no torch import, so it answers at once): the option file's header comment (the
concept), each parameter with its default and its inline `# comment`, and a command that uses it.
Without an option, every option of the group is described.
"""

from __future__ import annotations

import re
import shutil
import sys
import textwrap

from lightdl.catalog_docs import GLOBAL_GROUPS, _flatten, _load, _overrides, header, is_list_group
from lightdl.errors import did_you_mean
from lightdl.paths import conf_dir, defaults, group_names, options

USAGE = """\
usage: python -m lightdl.describe <group> [option]

Describes a config group's options: the concept, parameters with defaults, an example command.
  python -m lightdl.describe optimizer adam
  python -m lightdl.describe regularizer
"""
COLUMN = 40  # longest `key = default` whose comment stays on its line
KEY_LINE = re.compile(r"^(\s*)([\w./-]+):(.*)$")


def groups() -> list[str]:
    """Config groups: config.yaml's in its order, then any other folder of options (hydra/launcher)."""
    found = [g for g in group_names() if (conf_dir() / g).is_dir()]
    extra = sorted(
        str(d.relative_to(conf_dir()))
        for d in conf_dir().rglob("*")
        if d.is_dir() and any(d.glob("*.yaml"))
    )
    return found + [g for g in extra if g not in found]


def _package(group: str, option: str) -> str | None:
    """The `# @package` line's target, if the option file has one."""
    for line in (conf_dir() / group / f"{option}.yaml").read_text().splitlines():
        if line.startswith("# @package"):
            return line.split(None, 2)[2].strip()
    return None


def inline_comments(group: str, option: str) -> dict[str, str]:
    """Dotted key (as under the file's top level) -> the `# comment` on its line, with the
    indented comment lines that continue it."""
    found: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    last: str | None = None
    for line in (conf_dir() / group / f"{option}.yaml").read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            if last is not None and line[: len(line) - len(line.lstrip())]:
                found[last] += " " + stripped.lstrip("#").strip()
            continue
        last = None
        match = KEY_LINE.match(line)
        if not match or stripped.startswith("-"):
            continue
        indent, key, rest = len(match.group(1)), match.group(2), match.group(3)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, key))
        comment = re.search(r"\s#\s?(.*)$", rest)
        if comment:
            last = ".".join(k for _, k in stack)
            found[last] = comment.group(1).strip()
    return found


def _parameters(group: str, option: str, listed: bool) -> list[tuple[str, str, str]]:
    """(full key, default, comment) for each parameter of a group option."""
    node = _load(group, option)
    package = _package(group, option)
    base = group.replace("/", ".") if package in (None, "_group_") else package
    body = node.get(option, {}) if listed else node
    comments = inline_comments(group, option)  # keyed as in the file: `lam`, or `l2.lam` listed
    return [
        (key, value, comments.get(key.removeprefix(base + "."), ""))
        for key, value in _flatten(body, f"{base}.{option}" if listed else base)
    ]


def _example(group: str, option: str, listed: bool, params: list[tuple[str, str, str]]) -> str:
    """A command that selects the option (list groups keep their default members) and sets its
    first simple parameter to its default."""
    choice = option
    if listed:
        kept = [d for d in defaults().get(group, ()) if d not in ("none", "null", option)]
        choice = "[" + ",".join([*kept, option] if option != "none" else ["none"]) + "]"
    words = ["python -m lightdl", f"{group}={choice}"]
    simple = [(k, v) for k, v, _ in params if "${" not in v and not v.startswith(("[", "{"))]
    if simple:
        words.append(f"{simple[0][0]}={simple[0][1]}")
    return " ".join(words)


def _parameter_lines(params: list[tuple[str, str, str]], width: int) -> list[str]:
    """`key = default  # comment` rows, comments aligned; a long key = value gets its comment on
    the lines below instead."""
    pad = max((len(f"{k} = {v}") for k, v, _ in params if len(f"{k} = {v}") <= COLUMN), default=0)
    lines = []
    for key, value, comment in params:
        text = f"{key} = {value}"
        if not comment:
            lines.append(f"    {text}")
        elif len(text) <= COLUMN:
            indent = " " * (pad + 8)
            lines += textwrap.wrap(
                f"{text:<{pad}}  # {comment}",
                width,
                initial_indent="    ",
                subsequent_indent=indent,
            )
        else:
            lines.append(f"    {text}")
            lines += textwrap.wrap(
                comment, width, initial_indent="      # ", subsequent_indent=" " * 8
            )
    return lines


def describe_option(group: str, option: str, listed: bool, width: int) -> str:
    """The text block for one option."""
    mark = " (default)" if option in defaults().get(group, ()) else ""
    lines = [f"{group}={option}{mark}"]
    concept = header(group, option) or "(no description)"
    lines += textwrap.wrap(concept, width - 2, initial_indent="  ", subsequent_indent="  ")
    node = _load(group, option)
    is_global = group in GLOBAL_GROUPS or _package(group, option) == "_global_"
    bases = [str(e) for e in node.get("defaults", []) if isinstance(e, str) and e != "_self_"]
    if bases:
        lines.append("  Extends: " + ", ".join(f"{group}={b}" for b in bases))
    params: list[tuple[str, str, str]] = []
    if is_global:
        settings = _overrides(dict(node))
        lines.append("  Sets:" if settings else "  Sets nothing.")
        lines += [f"    {s}" for s in settings]
    else:
        params = _parameters(group, option, listed)
        lines.append("  Parameters (default):" if params else "  No parameters.")
        lines += _parameter_lines(params, width)
    lines += ["  Example:", f"    {_example(group, option, listed and not is_global, params)}"]
    return "\n".join(lines)


def describe(group: str, option: str | None = None) -> str:
    """The description of one option, or of every option of `group`."""
    width = min(shutil.get_terminal_size((100, 20)).columns, 120)
    listed = is_list_group(group)
    chosen = [option] if option else options(group)
    blocks = [describe_option(group, o, listed, width) for o in chosen]
    if option is None:
        default = ", ".join(defaults().get(group, ())) or "none"
        note = f"; a list group: combine as {group}=[a,b]" if listed else ""
        blocks.insert(0, f"group {group}: {len(chosen)} options, default {default}{note}")
    return "\n\n".join(blocks) + "\n"


def check(args: list[str]) -> str | None:
    """The one-sentence error for bad arguments, or None."""
    if len(args) > 2:
        return f"expected a group and at most one option, got {len(args)} words: {' '.join(args)}."
    names = groups()
    if args[0] not in names:
        return (
            f"unknown group '{args[0]}'; choose one of: {', '.join(names)}."
            f"{did_you_mean(args[0], names)}"
        )
    if len(args) == 2 and args[1] not in options(args[0]):
        choices = options(args[0])
        return (
            f"unknown option '{args[1]}' for group '{args[0]}'; choose one of: "
            f"{', '.join(choices)}.{did_you_mean(args[1], choices)}"
        )
    return None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(USAGE + "\nGroups: " + ", ".join(groups()))
        return 0
    problem = check(args)
    if problem:
        print(f"lightdl: error: {problem}", file=sys.stderr)
        return 2
    print(describe(args[0], args[1] if len(args) == 2 else None), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
