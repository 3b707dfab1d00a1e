"""Config files: loading `configs/*.py` (`get_config()` -> ConfigDict) and `--config.key=value` overrides.

Owns: `load_config(spec, overrides)`, `config_hash`, `find_config`. Configs are data: Python files in
`configs/` defining `get_config(arg=None)` that return an `ml_collections.ConfigDict`, as in the flax
examples and big_vision. A spec is a path (`configs/paper.py`), a name resolved in the repo's
`configs/` folder (`paper`), optionally followed by `:arg` passed to `get_config`. Overrides are
`key.sub=value` strings; values are parsed as Python literals when possible and type-checked by
ConfigDict (a typo in a key is an error naming the key). A tuple key takes a Python tuple, one value
or a comma-separated list (numbers: also space-separated), each element converted to the type of the default's elements (an
empty default: ints if every element is one, else as given). The lang -> value maps in MAPPINGS take
new keys (`ud.treebanks.en=UD_English-GUM`).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import json
from pathlib import Path

import ml_collections

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
MAPPINGS = ("ud.treebanks", "bpc.files")  # lang -> str maps (also nested, sweep.ud...): overrides add keys


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


def _as_type(item, typ: type):
    """`item` as `typ` (int, float or str), or None if it is not one."""
    if isinstance(item, bool):
        return None
    if isinstance(item, typ):
        return item
    if typ is float and isinstance(item, int):
        return float(item)
    if typ is not str and isinstance(item, str):
        try:
            return typ(item)
        except ValueError:
            return None
    return None


def _element_type(old: tuple, items: list) -> type | None:
    """Type the new elements must have: that of `old`'s elements; for an empty `old`, int if every
    item is one, else None (keep the items as given)."""
    types = {type(v) for v in old}
    if len(types) == 1 and types <= {int, float, str}:
        return types.pop()
    if not old and items and all(_as_type(v, int) is not None for v in items):
        return int
    return None


def _parse_tuple(key: str, old: tuple, text: str) -> tuple:
    """`text` as a value for tuple key `key`: a tuple/list literal, one value or a comma/space list."""
    new = _parse_value(text)
    if isinstance(new, (tuple, list)):
        items = list(new)
    else:
        # Commas separate; whitespace too, unless the elements are strings (paths may hold spaces).
        raw = new if isinstance(new, str) else text
        items = [v.strip() for v in raw.split(",") if v.strip()]
        spaced = [v for item in items for v in item.split()]
        if {type(v) for v in old} <= {int, float} and (old or all(_as_type(v, int) is not None for v in spaced)):
            items = spaced
    typ = _element_type(old, items)
    if typ is None:
        return tuple(items)
    out = tuple(_as_type(v, typ) for v in items)
    bad = [v for v, o in zip(items, out) if o is None]
    if bad:
        raise ConfigError(f"override {key}={text!r}: element {bad[0]!r} is not {typ.__name__} "
                          f"({key} holds {typ.__name__}s)")
    return out


def _coerce(key: str, old, text: str):
    """`text` parsed as a new value for `key`, whose current value is `old`."""
    if isinstance(old, tuple):
        return _parse_tuple(key, old, text)
    new = _parse_value(text)
    if isinstance(old, str) and not isinstance(new, str):
        return text
    if isinstance(old, float) and isinstance(new, int) and not isinstance(new, bool):
        return float(new)
    return new


def _is_mapping(path: str) -> bool:
    return any(path == m or path.endswith("." + m) for m in MAPPINGS)


def apply_override(cfg: ml_collections.ConfigDict, override: str) -> None:
    key, sep, value = override.partition("=")
    key = key.strip().removeprefix("--config.").removeprefix("config.")
    if not sep:
        raise ConfigError(f"override {override!r} is not of the form key=value")
    *parents, leaf = key.split(".")
    node = cfg
    for i, part in enumerate(parents):
        if not isinstance(node, ml_collections.ConfigDict) or part not in node:
            raise ConfigError(f"unknown config key {'.'.join(parents[:i + 1])!r} in override {override!r}")
        node = node[part]
    if not isinstance(node, ml_collections.ConfigDict):
        raise ConfigError(f"unknown config key {key!r} ({'.'.join(parents)} is not a section)")
    if leaf in node:
        old = node[leaf]
    elif _is_mapping(".".join(parents)):
        old = ""
    else:
        raise ConfigError(f"unknown config key {key!r} (known under it: {sorted(node.keys())})")
    new = _coerce(key, old, value)
    try:
        node[leaf] = new
    except (TypeError, ValueError) as e:
        raise ConfigError(f"override {override!r}: {e}") from e


def _build(mod, path: Path, arg: str | None):
    """`mod.get_config(arg)`; a variant the file does not take is a ConfigError naming the file."""
    if arg is None:
        return mod.get_config()
    if not inspect.signature(mod.get_config).parameters:
        raise ConfigError(f"{path}: this config takes no variant (got {arg!r})")
    try:
        return mod.get_config(arg)
    except ValueError as e:
        raise ConfigError(f"{path}: bad variant {arg!r} ({e})") from e


def load_config(spec: str, overrides: list[str] | tuple[str, ...] = ()) -> ml_collections.ConfigDict:
    """Load `spec` (path or name, optional `:arg`), apply overrides, lock it and return it."""
    path, arg = find_config(spec)
    mod = load_module(path)
    if not hasattr(mod, "get_config"):
        raise ConfigError(f"{path}: defines no get_config()")
    cfg = _build(mod, path, arg)
    cfg = ml_collections.ConfigDict(cfg)
    for o in overrides:
        apply_override(cfg, o)
    cfg.lock()
    return cfg


def config_hash(cfg: ml_collections.ConfigDict) -> str:
    """Stable short hash of a config's content (provenance column of every result row)."""
    blob = json.dumps(cfg.to_dict(), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
