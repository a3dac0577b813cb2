"""Search spaces: YAML entries or Hydra sweep strings -> Optuna distributions, and sampled values -> overrides.

An entry is a mapping (`{type: float, low: 1e-4, high: 1e-1, log: true}`, `{type: int, low: 1, high: 4,
step: 1}`, `{type: categorical, choices: [[64], [128, 64]]}`) or a Hydra sweep string (`choice(a,b)`,
`a,b`, `range(1,5)`, `interval(0.1,1)`, `tag(log,interval(1e-4,1e-1))`). Categorical choices are kept
in Optuna as their override strings (`[128,64]`), which any storage can hold; the space maps them back.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lightdl.errors import ConfigError

TYPES = ("float", "int", "categorical")
NUMERIC_KEYS = ("type", "low", "high", "log", "step")
SPEC_KEYS = (*NUMERIC_KEYS, "choices")
SWEEP_HINT = "a mapping with `type` (float, int, categorical) or a sweep such as choice(a,b), range(1,5), interval(0.1,1)"


@dataclass
class Param:
    """One searched key: its Optuna distribution and, for categoricals, choice string -> value."""

    key: str
    distribution: Any
    values: dict[str, Any] = field(default_factory=dict)

    def override(self, sampled: Any) -> str:
        """`key=value` for the job that runs this sample."""
        return f"{self.key}={sampled if self.values else to_override(sampled)}"

    def value(self, sampled: Any) -> Any:
        """The plain value behind a sample (the list [128, 64] for the choice '[128,64]')."""
        return self.values.get(sampled, sampled) if self.values else sampled

    def probe(self) -> Any:
        """A sample that must compose whenever any does: the low end or the first choice."""
        dist = self.distribution
        return dist.choices[0] if self.values else dist.low


def to_override(value: Any) -> str:
    """A Python value in Hydra's override grammar: [128,64], {a:1}, true, null, 'quoted text'."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(to_override(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{to_override(v)}" for k, v in value.items()) + "}"
    text = str(value)
    if re.fullmatch(r"[A-Za-z_][\w./-]*", text) and text not in ("true", "false", "null"):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def parse_space(params: Any, parser: Any, prefix: str = "hydra.sweeper.params") -> dict[str, Param]:
    """hydra.sweeper.params -> {key: Param}; nested mappings without spec keys are joined with dots."""
    found: dict[str, Param] = {}
    if params is None:
        return found
    for key, entry in params.items():
        if isinstance(entry, DictConfig | dict) and not set(entry) & set(SPEC_KEYS):
            nested = parse_space(entry, parser, f"{prefix}.{key}")
            found.update({f"{key}.{k}": replace(p, key=f"{key}.{k}") for k, p in nested.items()})
        else:
            found[str(key)] = parse_entry(str(key), entry, parser, f"{prefix}.{key}")
    return found


def parse_entry(key: str, entry: Any, parser: Any, where: str) -> Param:
    """One entry of the space; a bad one raises ConfigError naming `where` and what is allowed."""
    if isinstance(entry, DictConfig | dict):
        spec = OmegaConf.to_container(entry) if isinstance(entry, DictConfig) else dict(entry)
        return _from_spec(key, spec, where)
    if isinstance(entry, str):
        try:
            override = parser.parse_override(f"{key}={entry}")
        except Exception:
            override = None
        if override is not None and override.is_sweep_override():
            return from_sweep(override, where)
    raise ConfigError(f"{where}={entry!r} is not a search entry; write {SWEEP_HINT}.")


def _from_spec(key: str, spec: dict, where: str) -> Param:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    kind = spec.get("type")
    if kind not in TYPES:
        raise ConfigError(
            f"{where}.type={kind!r} is not a search type; use one of {', '.join(TYPES)}."
        )
    allowed = ("type", "choices") if kind == "categorical" else NUMERIC_KEYS
    unknown = sorted(set(spec) - set(allowed))
    if unknown:
        raise ConfigError(
            f"{where} has unknown key(s) {', '.join(unknown)}; a {kind} entry takes {', '.join(allowed)}."
        )
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}.choices must be a non-empty list of values.")
        values = {to_override(c): c for c in choices}
        return Param(key, CategoricalDistribution(list(values)), values)
    low, high, log, step = (spec.get(k) for k in ("low", "high", "log", "step"))
    number, noun = (int, "an integer") if kind == "int" else ((int, float), "a finite number")
    for name, bound in (("low", low), ("high", high)):
        if isinstance(bound, bool) or not isinstance(bound, number) or not math.isfinite(bound):
            raise ConfigError(f"{where}.{name} must be {noun}, got {bound!r}.")
    if low > high:
        raise ConfigError(f"{where}: low ({low}) must not exceed high ({high}).")
    if log and low <= 0:
        raise ConfigError(f"{where}: log: true needs low > 0, got low={low}.")
    if log and step is not None:
        raise ConfigError(f"{where}: use either log: true or a step, not both.")
    if step is not None and (isinstance(step, bool) or not isinstance(step, number) or step <= 0):
        raise ConfigError(f"{where}.step must be positive and {noun}, got {step!r}.")
    if kind == "int":
        return Param(key, IntDistribution(low, high, log=bool(log), step=step or 1))
    return Param(key, FloatDistribution(float(low), float(high), log=bool(log), step=step))


def from_sweep(override: Any, where: str) -> Param:
    """A Hydra sweep override (choice, comma list, range, interval with optional log tag) as a Param."""
    from hydra.core.override_parser.types import IntervalSweep, RangeSweep

    key = override.get_key_element().lstrip("+~")
    sweep = override.value()
    if isinstance(sweep, IntervalSweep):
        spec = {"type": "float", "low": sweep.start, "high": sweep.end, "log": "log" in sweep.tags}
        if isinstance(sweep.start, int) and isinstance(sweep.end, int):
            spec["type"] = "int"
        return _from_spec(key, spec, where)
    ints = isinstance(sweep, RangeSweep) and all(
        isinstance(v, int) for v in (sweep.start, sweep.stop, sweep.step)
    )
    if ints and sweep.step > 0 and sweep.stop > sweep.start:
        last = sweep.start + sweep.step * ((sweep.stop - 1 - sweep.start) // sweep.step)
        return _from_spec(
            key, {"type": "int", "low": sweep.start, "high": last, "step": sweep.step}, where
        )
    values = dict(zip(override.sweep_string_iterator(), override.sweep_iterator(), strict=True))
    if not values:
        raise ConfigError(f"{where} sweeps over no values; give at least one choice.")
    from optuna.distributions import CategoricalDistribution

    return Param(key, CategoricalDistribution(list(values)), values)
