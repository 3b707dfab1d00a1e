"""Command line: thin commands over the library (the only module that parses arguments).

Commands: `convert SRC DST`.
"""

from __future__ import annotations

import argparse
import sys


def _cmd_convert(args) -> int:
    from xlmr_dynamics.convert import convert_checkpoint

    dst = convert_checkpoint(args.src, args.dst, num_heads=args.num_heads)
    print(f"wrote {dst}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="xlmr-dynamics", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("convert", help="convert a fairseq/HF checkpoint to the fast orbax format")
    c.add_argument("src")
    c.add_argument("dst")
    c.add_argument("--num-heads", type=int, default=None, help="for fairseq files without hyperparameters")
    c.set_defaults(func=_cmd_convert)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
