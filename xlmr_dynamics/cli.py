"""Command line: thin commands over the library (the only module that parses arguments).

  xlmr-dynamics demo                          pretrain a tiny replica, sweep it, write the report
  xlmr-dynamics sweep --config paper [--config.key=value ...]
  xlmr-dynamics probe --checkpoint P --task pos --train-lang en --eval-langs en,tr,el
  xlmr-dynamics align --checkpoint P --pairs fr,ro        (SimAlign methods, every layer)
  xlmr-dynamics bpc --checkpoint P --langs en,fr          (MLM bits per character)
  xlmr-dynamics report RESULTS_DIR
  xlmr-dynamics pretrain --config demo [--config.key=value ...]
  xlmr-dynamics convert SRC DST

Config overrides use the flax/big_vision style `--config.key=value` (any key of the config file).
`probe`, `align` and `bpc` are one-checkpoint sweeps: they print a table and write the same tidy
results rows as `sweep`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _split_overrides(extra: list[str]) -> list[str]:
    bad = [a for a in extra if not a.startswith("--config.")]
    if bad:
        raise SystemExit(f"xlmr-dynamics: unrecognised arguments {bad}")
    return [a[2:] for a in extra]


def _init_distributed(args) -> None:
    from xlmr_dynamics import sharding as S

    S.init_distributed(args.coordinator_address or None, args.num_processes or None,
                       None if args.process_id is None or args.process_id < 0 else args.process_id)


def _add_distributed(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("multi-process (auto-detected on TPU pods, Slurm and Open MPI)")
    g.add_argument("--coordinator-address", default="", help="host:port of process 0")
    g.add_argument("--num-processes", type=int, default=0)
    g.add_argument("--process-id", type=int, default=-1)


def _cmd_convert(args, _extra) -> int:
    from xlmr_dynamics.convert import convert_checkpoint

    dst = convert_checkpoint(args.src, args.dst, num_heads=args.num_heads)
    print(f"wrote {dst}")
    return 0


def _cmd_sweep(args, extra) -> int:
    _init_distributed(args)
    from xlmr_dynamics.config import load_config
    from xlmr_dynamics.sweep import run_sweep

    cfg = load_config(args.config, _split_overrides(extra))
    out = run_sweep(cfg, progress=not args.quiet)
    print(f"results: {out}")
    return 0


def _one_checkpoint(args, extra, task_overrides: list[str]) -> int:
    _init_distributed(args)
    import jax

    from xlmr_dynamics.config import load_config
    from xlmr_dynamics.results import read_results
    from xlmr_dynamics.sweep import run_sweep

    ckpt = Path(args.checkpoint)
    overrides = [f"checkpoints.paths=('{args.step}={ckpt}',)", "checkpoints.random_init=False",
                 f"results_dir={args.results_dir}"]
    if args.data_root:
        overrides.append(f"data_root={args.data_root}")
    if args.tokenizer:
        overrides.append(f"checkpoints.tokenizer={args.tokenizer}")
    cfg = load_config(args.config, overrides + task_overrides + _split_overrides(extra))
    out = run_sweep(cfg, progress=not args.quiet)
    if jax.process_index() == 0:
        df = read_results(out)
        df = df[df["step"] == args.step]
        if not df.empty:
            table = (df.groupby(["task", "train_lang", "eval_lang", "layer", "metric"])["value"].mean()
                     .unstack("metric").round(4))
            print(table.to_string())
        print(f"results: {out}")
    return 0


def _add_one_checkpoint(p: argparse.ArgumentParser, default_dir: str) -> None:
    p.add_argument("--checkpoint", required=True, help="HF dir, fairseq .pt, or converted dir")
    p.add_argument("--step", type=int, default=0, help="training step recorded in the rows")
    p.add_argument("--tokenizer", default="", help="default: found next to the checkpoint")
    p.add_argument("--data-root", default="", help="root of ud/, xnli/, alignment/, text/")
    p.add_argument("--config", default="default", help="base config (name or path)")
    p.add_argument("--results-dir", default=default_dir)
    p.add_argument("--quiet", action="store_true")
    _add_distributed(p)


def _cmd_probe(args, extra) -> int:
    train = args.train_lang
    evals = [x for x in args.eval_langs.split(",") if x] if args.eval_langs else [train]
    if args.task == "xnli":
        ov = ["tasks=('xnli',)", f"xnli.langs=('{train}',)", f"xnli.cross_langs={tuple(evals)!r}"]
    else:
        ov = [f"tasks=('{args.task}',)", f"ud.langs=('{train}',)", f"ud.cross_langs={tuple(evals)!r}"]
    return _one_checkpoint(args, extra, ov)


def _cmd_align(args, extra) -> int:
    pairs = tuple(x for x in args.pairs.split(",") if x)
    return _one_checkpoint(args, extra, ["tasks=('align',)", f"align.pairs={pairs!r}",
                                         f"align.method={args.method}"])


def _cmd_bpc(args, extra) -> int:
    langs = tuple(x for x in args.langs.split(",") if x)
    return _one_checkpoint(args, extra, ["tasks=('bpc',)", f"bpc.langs={langs!r}"])


def _cmd_report(args, _extra) -> int:
    from xlmr_dynamics.report import make_report

    kw = dict(threshold=args.threshold, reference=args.reference)
    if args.lang_table:
        kw["lang_table"] = args.lang_table
    if args.steps:
        kw["steps_for_transfer"] = [int(s) for s in args.steps.split(",")]
    index = make_report(args.results_dir, args.out, **kw)
    print(f"report: {index}")
    return 0


def _cmd_pretrain(args, extra) -> int:
    _init_distributed(args)
    from xlmr_dynamics.demo import pretrain_from_config
    from xlmr_dynamics.config import load_config

    cfg = load_config(args.config, _split_overrides(extra))
    paths = pretrain_from_config(cfg)
    print(f"{len(paths)} checkpoints under {paths[-1].parent if paths else cfg.pretrain.out_dir}")
    return 0


def _cmd_demo(args, extra) -> int:
    from xlmr_dynamics.config import load_config
    from xlmr_dynamics.demo import run_demo

    overrides = _split_overrides(extra)
    if args.out:
        overrides.append(f"out_dir={args.out}")
    cfg = load_config(args.config, overrides)
    index = run_demo(cfg, progress=not args.quiet)
    print(f"report: {index}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="xlmr-dynamics", description="When does a multilingual LM learn "
                                "what it knows? Probes, alignment and BPC over checkpoint series.")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("convert", help="convert a fairseq/HF checkpoint to the fast orbax format")
    c.add_argument("src")
    c.add_argument("dst")
    c.add_argument("--num-heads", type=int, default=None, help="for fairseq files without hyperparameters")
    c.set_defaults(func=_cmd_convert)

    s = sub.add_parser("sweep", help="run (or resume) a checkpoint sweep")
    s.add_argument("--config", required=True, help="configs/NAME.py path or name, optional :arg")
    s.add_argument("--quiet", action="store_true")
    _add_distributed(s)
    s.set_defaults(func=_cmd_sweep)

    pr = sub.add_parser("probe", help="probe one checkpoint (pos, arc_pred, arc_cls, xnli)")
    pr.add_argument("--task", required=True, choices=["pos", "arc_pred", "arc_cls", "xnli"])
    pr.add_argument("--train-lang", required=True)
    pr.add_argument("--eval-langs", default="", help="comma-separated; default: the train language")
    _add_one_checkpoint(pr, "results/probe")
    pr.set_defaults(func=_cmd_probe)

    al = sub.add_parser("align", help="word alignment en->xx on every layer of one checkpoint")
    al.add_argument("--pairs", default="fr,ro,hi,cs")
    al.add_argument("--method", default="argmax", choices=["argmax", "itermax", "match"])
    _add_one_checkpoint(al, "results/align")
    al.set_defaults(func=_cmd_align)

    b = sub.add_parser("bpc", help="MLM bits per character of one checkpoint")
    b.add_argument("--langs", default="en,fr,de")
    _add_one_checkpoint(b, "results/bpc")
    b.set_defaults(func=_cmd_bpc)

    r = sub.add_parser("report", help="HTML report (plots + CSVs) from a results directory")
    r.add_argument("results_dir")
    r.add_argument("--out", default=None)
    r.add_argument("--threshold", type=float, default=0.98)
    r.add_argument("--reference", default="best", choices=["best", "final"])
    r.add_argument("--lang-table", default=None, help="CSV with a 'lang' column and numeric columns")
    r.add_argument("--steps", default="", help="comma-separated steps for transfer matrices")
    r.set_defaults(func=_cmd_report)

    pt = sub.add_parser("pretrain", help="MLM-pretrain an XLM-R replica, saving a checkpoint series")
    pt.add_argument("--config", default="demo")
    _add_distributed(pt)
    pt.set_defaults(func=_cmd_pretrain)

    d = sub.add_parser("demo", help="offline end-to-end demo on shipped data (CPU, minutes)")
    d.add_argument("--config", default="demo")
    d.add_argument("--out", default="", help="output directory (default: the config's out_dir)")
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(func=_cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args, extra = build_parser().parse_known_args(argv)
    return args.func(args, extra)


if __name__ == "__main__":
    sys.exit(main())
