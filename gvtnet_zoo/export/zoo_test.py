"""Running bioimageio.core's own test_model on a package, per weight format, summarized readably."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

from ..devices import onnx_providers, torch_devices

WEIGHT_FORMATS = ("pytorch_state_dict", "torchscript", "onnx")


@dataclass
class FormatResult:
    weight_format: str
    passed: bool
    failures: list[str] = field(default_factory=list)


def run_zoo_tests(package: Path, weight_formats: Sequence[str], determinism: str = "seed_only") -> list[FormatResult]:
    """bioimageio.core.test_model for each format on the devices that work here; failures list location and message.
    ``determinism="full"`` as the bioimage.io collection tests (deterministic algorithms, one thread)."""
    from bioimageio.core import test_model

    results = []
    for weight_format in weight_formats:
        devices = onnx_providers() if weight_format == "onnx" else torch_devices()
        summary = test_model(str(package), weight_format=weight_format, devices=devices, determinism=determinism)
        failures = []
        for detail in summary.details:
            if detail.status == "failed":
                messages = [f"{'.'.join(map(str, e.loc)) or '-'}: {e.msg}" for e in detail.errors] or ["failed"]
                failures.extend(f"{detail.name}: {m}" for m in messages)
        results.append(FormatResult(weight_format, summary.status != "failed" and not failures, failures))
    return results


def format_results(results: Sequence[FormatResult]) -> str:
    """One line per weight format, then the failing checks indented below it."""
    lines = []
    for result in results:
        lines.append(f"  {result.weight_format:20s} {'passed' if result.passed else 'FAILED'}")
        lines.extend(f"      {failure[:400]}" for failure in result.failures)
    return "\n".join(lines)


def weight_formats_in(descr: object) -> list[str]:
    """The weight formats a model description declares."""
    return [f for f in WEIGHT_FORMATS if getattr(getattr(descr, "weights", None), f, None) is not None]


def formats_to_test(descr: object, requested: Optional[str], echo: Callable[[str], None] = print) -> list[str]:
    """The weight formats to test: the one asked for, else every format whose code may run without trust (a
    state dict only when its network file is gvtnet-zoo's own). Raises UserError when none is left."""
    from ..errors import UserError
    from ..trust import architecture_origin, runs_our_own_code

    formats = [requested] if requested else weight_formats_in(descr)
    if not requested and "pytorch_state_dict" in formats and not runs_our_own_code(descr):
        formats.remove("pytorch_state_dict")
        echo(f"skipping pytorch_state_dict: its network is Python code from {architecture_origin(descr)}, not "
             "gvtnet-zoo's; if you trust it, test it with --weight-format pytorch_state_dict")
    if not formats:
        raise UserError(f"{getattr(descr, 'name', 'the package')} has no weights to test without running its code; "
                        "name --weight-format pytorch_state_dict if you trust it")
    return formats
