"""Config files: loading `configs/*.py` (`get_config()` -> ConfigDict) and `--config.key=value` overrides.

Owns: `load_config(spec, overrides)`, `config_hash`, `find_config`. Configs are data: Python files in
`configs/` defining `get_config(arg=None)` that return an `ml_collections.ConfigDict`, as in the flax
examples and big_vision. A spec is a path (`configs/paper.py`), a name resolved in the repo's
`configs/` folder (`paper`), optionally followed by `:arg` passed to `get_config`. Overrides are
`key.sub=value` strings; values are parsed as Python literals when possible and type-checked by
ConfigDict (a typo in a key is an error naming the key).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
from pathlib import Path

import ml_collections

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


class ConfigError(ValueError):
    """A config file or override is invalid; the message names the file or key."""


def find_config(spec: str) -> tuple[Path, str | None]:
    name, _, arg = spec.partition(":")
    p = Path(name)
    candidates = [p, CONFIG_DIR / name, CONFIG_DIR / f"{name}.py"]
    for c in candidates:
        if c.is_file():
            return c.resolve(), (arg or None)
    raise ConfigError(f"config {name!r} not found (looked at {', '.join(str(c) for c in candidates)})")


def load_module(path: Path):
    spec = importlib.util.spec_from_file_location(f"xlmr_dynamics_config_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(mod)
    except Exception as e:
        raise ConfigError(f"{path}: cannot load config ({type(e).__name__}: {e})") from e
    return mod


def _parse_value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def apply_override(cfg: ml_collections.ConfigDict, override: str) -> None:
    key, sep, value = override.partition("=")
    key = key.strip().removeprefix("--config.").removeprefix("config.")
    if not sep:
        raise ConfigError(f"override {override!r} is not of the form key=value")
    *parents, leaf = key.split(".")
    node = cfg
    for i, part in enumerate(parents):
        if part not in node:
            raise ConfigError(f"unknown config key {'.'.join(parents[:i + 1])!r} in override {override!r}")
        node = node[part]
    if leaf not in node:
        raise ConfigError(f"unknown config key {key!r} (known under it: {sorted(node.keys())})")
    old = node[leaf]
    new = _parse_value(value)
    if isinstance(old, tuple) and isinstance(new, (list, str)):
        new = tuple(new) if isinstance(new, list) else tuple(v for v in new.split(",") if v)
    if isinstance(old, str) and not isinstance(new, str):
        new = value
    if isinstance(old, float) and isinstance(new, int) and not isinstance(new, bool):
        new = float(new)
    try:
        node[leaf] = new
    except (TypeError, ValueError) as e:
        raise ConfigError(f"override {override!r}: {e}") from e


def load_config(spec: str, overrides: list[str] | tuple[str, ...] = ()) -> ml_collections.ConfigDict:
    """Load `spec` (path or name, optional `:arg`), apply overrides, lock it and return it."""
    path, arg = find_config(spec)
    mod = load_module(path)
    if not hasattr(mod, "get_config"):
        raise ConfigError(f"{path}: defines no get_config()")
    cfg = mod.get_config(arg) if arg is not None else mod.get_config()
    cfg = ml_collections.ConfigDict(cfg)
    for o in overrides:
        apply_override(cfg, o)
    cfg.lock()
    return cfg


def config_hash(cfg: ml_collections.ConfigDict) -> str:
    """Stable short hash of a config's content (provenance column of every result row)."""
    blob = json.dumps(cfg.to_dict(), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
