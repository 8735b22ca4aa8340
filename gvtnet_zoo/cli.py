"""The ``gvtnet-zoo`` command: parse, load the spec, call one API function, turn user errors into one line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from .errors import UserError


def _summary(args: argparse.Namespace) -> None:
    from .models import build_model, count_parameters
    from .models.summary import format_summary, summarize
    from .spec_loading import load_spec

    spec = load_spec(args.spec, args.set)
    model = build_model(spec)
    in_channels = getattr(spec.model, "in_channels", 1)
    rows = summarize(model, (1, in_channels, *spec.data.patch_size))
    print(f"{spec.name}: {spec.model.architecture}, input 1x{in_channels}x{'x'.join(map(str, spec.data.patch_size))}")
    print(format_summary(rows, count_parameters(model)))


def _demo(args: argparse.Namespace) -> None:
    from .demo import run_demo

    run_demo(Path(args.out))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gvtnet-zoo",
        description="GVTNets and U-Net baselines for augmented microscopy, packaged for the BioImage Model Zoo.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    summary = sub.add_parser("summary", help="print a spec's network block by block with parameter counts")
    summary.add_argument("spec", help="a spec YAML file, or the name of a shipped spec (e.g. gvtnet-label-free)")
    summary.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                         help="override a spec value (YAML), e.g. --set model.depth=3; repeatable")
    summary.set_defaults(run=_summary)
    demo = sub.add_parser("demo", help="show what gvtnet-zoo does today on the shipped specs")
    demo.add_argument("--out", default="demo-out", help="folder for the demo's report (default: demo-out)")
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except UserError as err:
        print(f"gvtnet-zoo: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
