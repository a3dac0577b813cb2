"""Errors a user can fix, and how Hydra's composition errors are turned into one clear sentence."""

from __future__ import annotations

import difflib
import re


class ConfigError(ValueError):
    """A configuration value or combination that cannot work; the message names the key and the fix."""


class DataError(RuntimeError):
    """Data that is missing or corrupt; the message names the file or the places looked in."""


def closest(word: str, choices: list[str]) -> str | None:
    found = difflib.get_close_matches(word, choices, n=1, cutoff=0.5)
    return found[0] if found else None


def did_you_mean(word: str, choices: list[str], prefix: str = "") -> str:
    best = closest(word, choices)
    return f" Did you mean '{prefix}{best}'?" if best else ""


def describe_composition_error(exc: BaseException, args: list[str]) -> str:
    """One sentence for a Hydra composition error: unknown option, unknown key, bad override syntax."""
    from hydra.errors import MissingConfigException

    from lightdl.paths import group_names, options

    text = str(exc)
    if isinstance(exc, MissingConfigException):
        match = re.search(r"Could not find '([\w/]+)/([^']+)'", text)
        if match and match.group(1) in group_names():
            group, bad = match.groups()
            choices = options(group)
            return (
                f"unknown option '{bad}' for group '{group}'; choose one of: "
                f"{', '.join(choices)}.{did_you_mean(bad, choices)}"
            )
    match = re.search(r"Could not override '([^']+)'", text) or re.search(
        r"Key '([^']+)' is not in struct", text
    )
    if match:
        key = match.group(1)
        parent, _, leaf = key.rpartition(".")
        valid = _keys_at(parent, [a for a in args if not a.startswith(("-", key + "=", "+"))])
        hint = did_you_mean(leaf, valid, prefix=f"{parent}." if parent else "")
        listing = f" Valid keys of '{parent or 'the config'}': {', '.join(valid)}." if valid else ""
        group, _, option = parent.partition(".")
        if not valid and group in group_names() and option in options(group):
            listing = (
                f" Option '{option}' of group '{group}' is not selected: add {group}={option}."
            )
        return f"unknown key '{key}'.{hint}{listing}"
    return text.splitlines()[0] if text else type(exc).__name__


def _keys_at(parent: str, overrides: list[str]) -> list[str]:
    """Keys under `parent` in the config composed from the other overrides (empty if that fails)."""
    try:
        from hydra import compose, initialize_config_dir
        from omegaconf import OmegaConf

        from lightdl.paths import conf_dir

        simple = [o for o in overrides if "," not in o and "=" in o]
        with initialize_config_dir(str(conf_dir()), version_base="1.3"):
            cfg = compose("config", overrides=simple)
        node = OmegaConf.select(cfg, parent) if parent else cfg
        return sorted(k for k in node.keys() if not str(k).startswith("_")) if node else []
    except Exception:
        return []


def describe_instantiation_error(exc: BaseException, key: str, target: str | None) -> str | None:
    """Turn "unexpected keyword argument 'lrr'" from instantiating `key` into a sentence with a suggestion."""
    match = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
    if not match:
        return None
    bad = match.group(1)
    valid = _parameters(target)
    listing = f" Valid keys: {', '.join(valid)}." if valid else ""
    return f"unknown key '{key}.{bad}'.{did_you_mean(bad, valid, prefix=key + '.')}{listing}"


def _parameters(target: str | None) -> list[str]:
    """Keyword parameters of a Hydra `_target_` (empty if it cannot be inspected)."""
    if not target:
        return []
    try:
        import inspect

        from hydra.utils import get_object

        found = inspect.signature(get_object(target)).parameters.values()
        return [
            p.name
            for p in found
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            and p.name not in ("self", "params", "optimizer", "spec", "activation")
        ]
    except (ValueError, TypeError, ImportError, AttributeError):
        return []
