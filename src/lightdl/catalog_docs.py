"""docs/catalog.md: every group and option, generated from conf/'s YAML header comments (no torch import).

python -m lightdl.catalog_docs           # (re)write docs/catalog.md  (`make docs`)
python -m lightdl.catalog_docs --check   # exit 1 when docs/catalog.md is out of date
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from lightdl.paths import conf_dir, defaults, group_names, options

CATALOG = Path(__file__).resolve().parents[2] / "docs" / "catalog.md"
SKIPPED_GROUPS = ("hydra", "paths")
SKIPPED_KEYS = ("_target_", "_partial_", "defaults")
GLOBAL_GROUPS = (
    "experiment",
    "cure",
    "compression",
    "transfer_stage",
    "hparams_search",
)  # `# @package _global_` presets: list what they override


def header(group: str, option: str) -> str:
    """All leading comment lines of an option's file, joined into one paragraph."""
    parts = []
    for line in (conf_dir() / group / f"{option}.yaml").read_text().splitlines():
        line = line.strip()
        if line.startswith("# @package"):
            continue
        if line and not line.startswith("#"):
            break
        if text := line.lstrip("#").strip():
            parts.append(text)
    return " ".join(parts)


def _escape(text: str) -> str:
    """Keep `<run>`, `a*b` and the like literal in Markdown (code spans are left alone)."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):
        parts[i] = "".join("\\" + c if c in "\\*<" else c for c in parts[i])
    return "`".join(parts)


def _load(group: str, option: str) -> dict[str, Any]:
    node = OmegaConf.to_container(OmegaConf.load(conf_dir() / group / f"{option}.yaml"))
    return node if isinstance(node, dict) else {}


def is_list_group(group: str) -> bool:
    """A group whose files are keyed by their option name (`l2: {...}`), combined as `group=[a,b]`."""
    nodes = {option: _load(group, option) for option in options(group)}
    # each file holds its own key (checkpoint.yaml may add a companion key: checkpoint_last)
    return any(nodes.values()) and all(not n or o in n for o, n in nodes.items())


def _value(v: Any) -> str:
    if v is None or isinstance(v, bool):
        return {None: "null", True: "true", False: "false"}[v]
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_value(x)}" for k, x in v.items()) + "}"
    return str(v) if v != "" else '""'


def _flatten(node: dict[str, Any], prefix: str) -> list[tuple[str, str]]:
    found = []
    for key, v in node.items():
        if key in SKIPPED_KEYS:
            continue
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(v, dict) and v:
            found.extend(_flatten(v, name))
        else:
            found.append((name, _value(v)))
    return found


def _overrides(node: dict[str, Any]) -> list[str]:
    """An experiment preset's settings, written as command-line overrides."""
    found = []
    for entry in node.get("defaults", []):
        if isinstance(entry, dict):
            for key, v in entry.items():
                found.append(f"{key.removeprefix('override').strip().lstrip('/')}={_value(v)}")
    hydra = node.pop("hydra", {}) or {}
    found.extend(f"{k}={v}" for k, v in _flatten(node, ""))
    sweep = (hydra.get("sweeper") or {}).get("params") or {}
    found.extend(
        f"{k}={_value(v)}  ({'searched' if isinstance(v, dict) else 'swept: one job each'})"
        for k, v in sweep.items()
    )
    return found


def _option(group: str, option: str, is_default: bool, listed: bool) -> list[str]:
    node = _load(group, option)
    choice = f"[{option}]" if listed else option
    title = f"### {group}={option}" + (" (default)" if is_default else "")
    lines = [title, "", _escape(header(group, option)) or "(no description)", ""]
    lines += [f"    python -m lightdl {group}={choice}", ""]
    if group in GLOBAL_GROUPS:
        settings = [f"- `{o}`" for o in _overrides(dict(node))]
        lines += ["Sets:", "", *settings] if settings else ["Sets nothing."]
        if (node.get("hydra") or {}).get("mode") == "MULTIRUN":
            lines += [
                "",
                "Runs as a sweep; its table lands in `<sweep dir>/summary.md` and `summary.csv`.",
            ]
        return [*lines, ""]
    bases = [str(e) for e in node.get("defaults", []) if isinstance(e, str) and e != "_self_"]
    if bases:
        lines += ["Extends " + ", ".join(f"`{group}={b}`" for b in bases) + ".", ""]
    prefix = group if not listed else f"{group}.{option}"
    body = node.get(option, {}) if listed else node
    params = [f"- `{k}` = `{v}`" for k, v in _flatten(body, prefix)]
    lines += params if params else ["No parameters."]
    return [*lines, ""]


def catalog() -> str:
    """The Markdown text of docs/catalog.md."""
    groups = [g for g in group_names() if g not in SKIPPED_GROUPS]
    default_options = defaults()
    lines = [
        "# lightdl option catalog",
        "",
        "Every config group and option, generated from the header comments of",
        "`conf/<group>/<option>.yaml` by `make docs` (`python -m lightdl.catalog_docs`): do not edit",
        "by hand. `python -m lightdl --help` prints the one-line version.",
        "",
        "Groups: " + " · ".join(f"[{g}](#{g})" for g in groups),
        "",
    ]
    for group in groups:
        chosen = default_options.get(group, ())
        listed = is_list_group(group)
        lines += [f"## {group}", ""]
        lines.append("Default: " + ", ".join(f"`{c}`" for c in chosen) + ".")
        if listed:
            lines[-1] += f" A list group: combine options as `{group}=[a,b]`."
        lines.append("")
        for option in options(group):
            lines += _option(group, option, option in chosen, listed)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = catalog()
    if "--check" in args:
        if not CATALOG.is_file() or CATALOG.read_text() != text:
            print("docs/catalog.md is stale: run `make docs`", file=sys.stderr)
            return 1
        return 0
    CATALOG.parent.mkdir(parents=True, exist_ok=True)
    CATALOG.write_text(text)
    print("wrote docs/catalog.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
