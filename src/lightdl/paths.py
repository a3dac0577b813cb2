"""Where lightdl's configs live: inside the installed wheel, or at the top of a checkout."""

from __future__ import annotations

from pathlib import Path


def conf_dir() -> Path:
    """The `conf/` folder: the copy shipped in the wheel if present, else the checkout's top-level one."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "conf", here.parents[1] / "conf"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise FileNotFoundError(
        f"lightdl's conf/ folder was not found next to {here} or in the checkout."
    )


def defaults() -> dict[str, tuple[str, ...]]:
    """Group -> default option(s), in the order config.yaml's defaults list gives them."""
    found: dict[str, tuple[str, ...]] = {}
    for line in (conf_dir() / "config.yaml").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("- ") and ":" in line:
            name, value = (part.strip() for part in line[2:].split(":", 1))
            found[name] = tuple(v.strip() for v in value.strip("[]").split(","))
    return found


def group_names() -> list[str]:
    """Config groups in the order config.yaml lists them (Hydra's own `hydra` group left out)."""
    return [name for name in defaults() if name != "hydra"]


def options(group: str) -> list[str]:
    """Option names of a group: the YAML files in conf/<group>/."""
    return sorted(p.stem for p in (conf_dir() / group).glob("*.yaml"))


def describe(group: str, option: str) -> str:
    """First line of an option's header comment: what the concept is."""
    for line in (conf_dir() / group / f"{option}.yaml").read_text().splitlines():
        line = line.strip()
        if line.startswith("#") and not line.startswith("# @package"):
            return line.lstrip("# ").strip()
        if line and not line.startswith("#"):
            break
    return ""


def chosen(group: str) -> str | None:
    """The option chosen for `group` in the running Hydra app (None outside one, as in tests)."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().runtime.choices.get(group) if HydraConfig.initialized() else None
