"""Command line: thin commands over the library (the only module that parses arguments).

  xlmr-dynamics demo                          pretrain a tiny replica, sweep it, write the report
  xlmr-dynamics sweep --config paper [--config.key=value ...]
  xlmr-dynamics probe --checkpoint P --task pos --train-lang en --eval-langs en,tr,el
  xlmr-dynamics align --checkpoint P --pairs fr,ro        (SimAlign methods, every layer)
  xlmr-dynamics bpc --checkpoint P --langs en,fr          (MLM bits per character)
  xlmr-dynamics report RESULTS_DIR
  xlmr-dynamics pretrain --config demo [--config.key=value ...]
  xlmr-dynamics convert SRC DST

Config overrides use the flax/big_vision style `--config.key=value` (any key of the config file);
only commands with a `--config` option take them, and any other unknown argument is an error.
User errors (a bad config, missing file, locked results dir ...: USER_ERRORS) print one line
`xlmr-dynamics COMMAND: error: ...` and exit with status 2; anything else keeps its traceback.
`probe`, `align` and `bpc` are one-checkpoint sweeps: they print a table and write the same tidy
results rows as `sweep`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


# Exceptions that mean bad user input, not a bug: module -> class names. A class whose module was
# never imported cannot have been raised, so only imported modules are looked at (no heavy imports).
USER_ERRORS = {
    "xlmr_dynamics.align": ("AlignmentError",),
    "xlmr_dynamics.analysis": ("AnalysisError",),
    "xlmr_dynamics.bpc": ("BPCError",),
    "xlmr_dynamics.config": ("ConfigError",),
    "xlmr_dynamics.convert": ("CheckpointError",),
    "xlmr_dynamics.data.lines": ("DataError",),
    "xlmr_dynamics.demo_data": ("DemoDataError",),
    "xlmr_dynamics.pretrain": ("PretrainError",),
    "xlmr_dynamics.report": ("ReportError",),
    "xlmr_dynamics.results": ("ResultsError", "ResultsLockedError"),
    "xlmr_dynamics.tasks": ("TaskInputError",),
    "xlmr_dynamics.tokenizer": ("TokenizerError",),
    "xlmr_dynamics.torchfile": ("TorchFileError",),
}


def _user_errors() -> tuple[type[BaseException], ...]:
    """The USER_ERRORS classes of the imported modules, and FileNotFoundError (a path given by the user)."""
    found = [getattr(sys.modules[m], n) for m, names in USER_ERRORS.items() if m in sys.modules for n in names]
    return (FileNotFoundError, *found)


def _overrides(parser: argparse.ArgumentParser, args, extra: list[str]) -> list[str]:
    """`key=value` overrides from the `--config.key=value` arguments; any other extra is an error."""
    takes = getattr(args, "config", None) is not None
    bad = [a for a in extra if not (takes and a.startswith("--config.") and "=" in a)]
    if bad:
        parser.error(f"unrecognized arguments: {' '.join(bad)}")
    return [a.removeprefix("--config.") for a in extra]


def _distributed_settings(args, cfg) -> tuple[str | None, int | None, int | None]:
    """(coordinator_address, num_processes, process_id) for init_distributed: each flag if given, else
    the config's `distributed.*` key; unset ("", 0, -1) is None (JAX_* variables or auto-detect)."""
    conf = cfg.get("distributed") or {}
    address, n, pid = (conf.get(k) if getattr(args, k) is None else getattr(args, k)
                       for k in ("coordinator_address", "num_processes", "process_id"))
    return address or None, n or None, None if pid is None or pid < 0 else pid


def _init_distributed(args, cfg) -> None:
    from xlmr_dynamics import sharding as S

    S.init_distributed(*_distributed_settings(args, cfg))


def _add_distributed(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("multi-process (auto-detected on TPU pods, Slurm and Open MPI); each flag "
                             "overrides the config's distributed.* key, which overrides JAX_* variables")
    g.add_argument("--coordinator-address", default=None, help="host:port of process 0")
    g.add_argument("--num-processes", type=int, default=None)
    g.add_argument("--process-id", type=int, default=None, help="negative: auto")


def _cmd_convert(args, _overrides) -> int:
    from xlmr_dynamics.convert import convert_checkpoint

    dst = convert_checkpoint(args.src, args.dst, num_heads=args.num_heads)
    print(f"wrote {dst}")
    return 0


def _cmd_sweep(args, overrides) -> int:
    from xlmr_dynamics.config import load_config

    cfg = load_config(args.config, overrides)
    _init_distributed(args, cfg)
    from xlmr_dynamics.sweep import run_sweep

    out = run_sweep(cfg, progress=not args.quiet)
    print(f"results: {out}")
    return 0


def _one_checkpoint(args, overrides: list[str], task_overrides: list[str]) -> int:
    from xlmr_dynamics.config import load_config

    ckpt = Path(args.checkpoint)
    base = [f"checkpoints.paths={(f'{args.step}={ckpt}',)!r}", "checkpoints.random_init=False",
            f"results_dir={args.results_dir}"]
    if args.data_root:
        base.append(f"data_root={args.data_root}")
    if args.tokenizer:
        base.append(f"checkpoints.tokenizer={args.tokenizer}")
    cfg = load_config(args.config, base + task_overrides + overrides)
    _init_distributed(args, cfg)
    import jax

    from xlmr_dynamics.results import read_results
    from xlmr_dynamics.sweep import run_sweep

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


def _cmd_probe(args, overrides) -> int:
    train = args.train_lang
    evals = [x for x in args.eval_langs.split(",") if x] if args.eval_langs else [train]
    if args.task == "xnli":
        ov = ["tasks=('xnli',)", f"xnli.langs=('{train}',)", f"xnli.cross_langs={tuple(evals)!r}"]
    else:
        ov = [f"tasks=('{args.task}',)", f"ud.langs=('{train}',)", f"ud.cross_langs={tuple(evals)!r}"]
    return _one_checkpoint(args, overrides, ov)


def _cmd_align(args, overrides) -> int:
    pairs = tuple(x for x in args.pairs.split(",") if x)
    return _one_checkpoint(args, overrides, ["tasks=('align',)", f"align.pairs={pairs!r}",
                                             f"align.method={args.method}"])


def _cmd_bpc(args, overrides) -> int:
    langs = tuple(x for x in args.langs.split(",") if x)
    return _one_checkpoint(args, overrides, ["tasks=('bpc',)", f"bpc.langs={langs!r}"])


def _cmd_report(args, _overrides) -> int:
    from xlmr_dynamics.report import make_report

    kw = dict(threshold=args.threshold, reference=args.reference)
    if args.lang_table:
        kw["lang_table"] = args.lang_table
    if args.steps:
        kw["steps_for_transfer"] = [int(s) for s in args.steps.split(",")]
    index = make_report(args.results_dir, args.out, **kw)
    print(f"report: {index}")
    return 0


def _cmd_pretrain(args, overrides) -> int:
    from xlmr_dynamics.config import load_config

    cfg = load_config(args.config, overrides)
    _init_distributed(args, cfg)
    from xlmr_dynamics.demo import pretrain_from_config

    paths = pretrain_from_config(cfg)
    print(f"{len(paths)} checkpoints under {paths[-1].parent if paths else cfg.pretrain.out_dir}")
    return 0


def _cmd_demo(args, overrides) -> int:
    from xlmr_dynamics.config import load_config
    from xlmr_dynamics.demo import run_demo

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
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    overrides = _overrides(parser, args, extra)
    try:
        return args.func(args, overrides)
    except _user_errors() as e:
        print(f"xlmr-dynamics {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
