"""A prediction's inputs as the command line and the widgets give them: the mode and its flags, tile sizes, named
inputs, and the files of each sample (several inputs paired by file name)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

from ..errors import UserError
from ..image_io.files import collect_inputs
from .model import ZooModel


def parse_tile(text: Optional[str], dims: int, flag: str = "--tile", minimum: int = 1) -> Optional[dict[str, int]]:
    """'Z,Y,X' (or 'Y,X') -> {'z': Z, 'y': Y, 'x': X}, each at least ``minimum``."""
    if text is None:
        return None
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise UserError(f"{flag} expects integers like 32,256,256, got {text!r}") from None
    if len(values) not in (2, 3) or min(values) < minimum:
        raise UserError(f"{flag} expects 2 (Y,X) or 3 (Z,Y,X) sizes of at least {minimum}, got {text!r}")
    return dict(zip("zyx"[3 - len(values):], values))


def match_samples(model: ZooModel, inputs: Sequence[str | Path],
                   named: dict[str, list[str]]) -> list[dict[str, Path]]:
    """One mapping input id -> file per sample; several inputs are paired by file name."""
    ids = model.input_ids
    if len(ids) == 1 and not named:
        return [{ids[0]: f} for f in collect_inputs(inputs)]
    if inputs:
        raise UserError(f"the model takes {len(ids)} inputs ({', '.join(ids)}); give each as --input NAME=PATH")
    unknown = sorted(set(named) - set(ids))
    missing = [i for i in ids if i not in named]
    if unknown or missing:
        raise UserError(f"--input names must be the model's inputs {', '.join(ids)}"
                        + (f"; unknown: {', '.join(unknown)}" if unknown else "")
                        + (f"; missing: {', '.join(missing)}" if missing else ""))
    by_input = {i: {p.name: p for p in collect_inputs(named[i])} for i in ids}
    names = set.intersection(*(set(files) for files in by_input.values()))
    alone = sorted(set.union(*(set(files) for files in by_input.values())) - names)
    if alone:
        raise UserError(f"files without a partner of the same name in every input: {', '.join(alone[:10])}")
    return [{i: by_input[i][name] for i in ids} for name in sorted(names)]


def parse_named_inputs(items: Sequence[str]) -> dict[str, list[str]]:
    """['raw=a/', 'mask=b/'] -> {'raw': ['a/'], 'mask': ['b/']}."""
    named: dict[str, list[str]] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise UserError(f"--input expects NAME=PATH (a model input id and a file or folder), got {item!r}")
        named.setdefault(name, []).append(path)
    return named


def prediction_mode(args: Any) -> tuple[str, Optional[int]]:
    """predict's mode (auto, whole, tile, plain, global or patches) and --memory in bytes from the parsed flags;
    flags of different modes together are refused in one line."""
    if args.global_context and args.whole:
        raise UserError("--global-context already gives the whole image's result; give either it or --whole")
    if args.plain_tiles and (args.whole or args.global_context or args.patches is not None):
        other = "--whole" if args.whole else "--global-context" if args.global_context else "--patches"
        raise UserError(f"--plain-tiles and {other} are different modes (tiles each on their own, or not); give one "
                        "of them")
    mode = ("global" if args.global_context else "whole" if args.whole else "plain" if args.plain_tiles
            else "tile" if args.tile or args.memory is not None else "auto")
    memory = memory_budget(args)
    if args.patches is not None or args.overlap is not None:
        mode = _patch_mode(args)
    return mode, memory


def memory_budget(args: Any) -> int | None:
    """--memory in bytes (None: not given, or --tile gives the tile); refused with --whole and --patches."""
    if args.memory is None:
        return None
    from .budget import parse_memory  # imports torch: only when a budget is given (ONNX on the CPU runs without it)

    memory = parse_memory(args.memory)
    if args.whole or args.patches is not None:
        raise UserError(f"--memory sizes tiles; {'--whole' if args.whole else '--patches'} does not tile")
    return None if args.tile else memory


def _patch_mode(args: Any) -> str:
    """--patches (the original's cropped prediction) is a mode of its own: refuse the flags of the others."""
    if args.patches is None:
        raise UserError("--overlap applies to --patches; give --patches Z,Y,X (or Y,X) too")
    flags = (("--whole", args.whole), ("--tile", args.tile), ("--global-context", args.global_context),
             ("--plain-tiles", args.plain_tiles), ("--halo", args.halo))
    other = next((flag for flag, given in flags if given), None)
    if other:
        raise UserError(f"--patches and {other} are different modes (patches averaged as the original GVTNets "
                        "predicted, or tiles/whole image); give one of them")
    return "patches"
