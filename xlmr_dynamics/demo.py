"""The README's main job: pretrain a tiny XLM-R replica on shipped text, sweep its checkpoints, report.

Owns: `run_demo(cfg)` (tokenizer -> pretraining -> sweep -> report, each step resumable and skipped
when its output is complete) and `pretrain_from_config(cfg)` (the `pretrain` command). Everything
runs offline from `xlmr_dynamics/demo_data` (see its README for sources and licences).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from pathlib import Path

from xlmr_dynamics.config import ConfigError


def demo_data_root() -> Path:
    from xlmr_dynamics import demo_data

    return Path(demo_data.ROOT)


def _text_by_lang(cfg) -> dict[str, list[str]]:
    from xlmr_dynamics import data as D

    root = Path(cfg.pretrain_data.dir or demo_data_root() / "text")
    if not root.is_absolute() and cfg.data_root:
        root = Path(cfg.data_root) / root
    out = {}
    for lang in cfg.pretrain_data.langs:
        path = root / f"{lang}{cfg.pretrain_data.suffix}"
        if not path.exists():
            raise ConfigError(f"pretrain_data: no text for {lang!r} at {path}")
        out[lang] = D.load_text(path)
    return out


TOKENIZER_SETTINGS = "settings.json"


def _tokenizer_settings(cfg, lines_by_lang: dict[str, list[str]]) -> dict:
    """What determines the demo tokenizer: vocab size, seed, languages and a hash of the text."""
    h = hashlib.sha256()
    for lang in sorted(lines_by_lang):
        h.update(json.dumps([lang, lines_by_lang[lang]]).encode())
    return {"vocab_size": int(cfg.tokenizer.vocab_size), "seed": int(cfg.seed),
            "langs": sorted(lines_by_lang), "text_sha256": h.hexdigest()[:16]}


def _changes(old: dict, new: dict) -> str:
    return ", ".join(f"{k}: {old.get(k)} -> {new[k]}" for k in new if old.get(k) != new[k])


def ensure_tokenizer(cfg, lines_by_lang: dict[str, list[str]]) -> Path:
    """The demo SentencePiece model (XLM-R layout), trained unless one with the same settings exists.

    The settings are kept in `tokenizer/settings.json`; when they changed the model is retrained
    (pretraining then refuses the old checkpoints in this out_dir: its fingerprint covers the ids).
    """
    from xlmr_dynamics.results import atomic_write_bytes
    from xlmr_dynamics.tokenizer import SPM_FILE, train_sentencepiece

    out = Path(cfg.out_dir) / "tokenizer"
    model, meta = out / SPM_FILE, out / TOKENIZER_SETTINGS
    want = _tokenizer_settings(cfg, lines_by_lang)
    old = json.loads(meta.read_text()) if meta.exists() else None
    if old == want and model.exists():
        return model
    if model.exists():
        why = _changes(old, want) if old else "no settings recorded"
        print(f"[demo] retraining the tokenizer in {out} ({why})", file=sys.stderr)
    meta.unlink(missing_ok=True)  # a kill while training must not leave old settings beside a new model
    lines = [line for lang in sorted(lines_by_lang) for line in lines_by_lang[lang]]
    model = Path(train_sentencepiece(lines, out, want["vocab_size"], seed=want["seed"]))
    atomic_write_bytes(meta, json.dumps(want, indent=2).encode())
    return model


def _pretrain_config(cfg):
    from xlmr_dynamics.pretrain import PretrainConfig

    known = {f.name for f in dataclasses.fields(PretrainConfig)}
    kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in cfg.pretrain.to_dict().items()}
    unknown = sorted(set(kw) - known)
    if unknown:
        raise ConfigError(f"pretrain: unknown keys {unknown} (known: {sorted(known)})")
    return PretrainConfig(**kw)


def pretrain_from_config(cfg, tokenizer_path: Path | None = None) -> list[Path]:
    """Pretrain per `cfg.pretrain` on `cfg.pretrain_data`; returns checkpoint paths (resumable)."""
    from xlmr_dynamics.pretrain import pretrain
    from xlmr_dynamics.tokenizer import load_tokenizer

    lines = _text_by_lang(cfg)
    tok = load_tokenizer(tokenizer_path or ensure_tokenizer(cfg, lines))
    return pretrain(_pretrain_config(cfg), tok, lines, Path(cfg.out_dir) / "checkpoints")


def run_demo(cfg, *, progress: bool = True) -> Path:
    """Pretrain, sweep every checkpoint on every task, write the report; returns index.html."""
    from xlmr_dynamics.config import apply_override
    from xlmr_dynamics.report import make_report
    from xlmr_dynamics.sweep import run_sweep

    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = _text_by_lang(cfg)
    tok_path = ensure_tokenizer(cfg, lines)
    print(f"[demo] tokenizer: {tok_path}", file=sys.stderr)
    ckpts = pretrain_from_config(cfg, tok_path)
    print(f"[demo] {len(ckpts)} checkpoints in {out / 'checkpoints'}", file=sys.stderr)
    sweep_cfg = cfg.sweep.copy_and_resolve_references()
    sweep_cfg.unlock()
    for o in (f"checkpoints.dir={out / 'checkpoints'}", f"checkpoints.tokenizer={tok_path}",
              f"results_dir={out / 'results'}", f"data_root={cfg.data_root or demo_data_root()}"):
        apply_override(sweep_cfg, o)
    sweep_cfg.lock()
    results = run_sweep(sweep_cfg, progress=progress)
    index = make_report(results, out / "report", threshold=sweep_cfg.report.threshold,
                        reference=sweep_cfg.report.reference)
    return Path(index)
