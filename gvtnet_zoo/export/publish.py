"""Before bioimage.io: the checks an upload must pass, and the collection's partner rules (bioimageio.core,
ilastik, deepImageJ) as far as they run here, each a row of one table.

The collection (github.com/bioimage-io/collection, scripts/check_compatibility_*.py) tests core with
``determinism="full"``; ilastik 1.4.2 runs bioimageio.core 0.10.2 / spec 0.5.9.1 and loads TorchScript, else
the state dict, never ONNX, with one input and one output; deepImageJ runs headless Fiji with JDLL's engines
(DEEPIMAGEJ_ENGINES), one input. Rules that need those programs are listed as not run.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from .package_files import files_outside, raw_description
from .zoo_test import FormatResult

PASS, FAIL, NOT_APPLICABLE, NOT_RUN = "pass", "FAIL", "n/a", "not run"
DEEPIMAGEJ_OPSET = 17
# deepImageJ 3 installs its engines through JDLL (EngineInstall.basicEngineInstallation: PyTorch 1.13.1 for 1.x and
# the newest 2.x it lists, 2.0.0) and runs weights on the engine of their major version: our PyTorch 2 archives on
# 2.0.0; benchmarks/results/torchscript_compat.md loads them in 2.0.1
DEEPIMAGEJ_ENGINES = f"PyTorch 2.0.0 for TorchScript written by PyTorch 2 (1.13.1 for 1.x), ONNX opset {DEEPIMAGEJ_OPSET}"
# what templates and examples put where a person belongs
PLACEHOLDER_NAMES = {"", "author", "authors", "name", "your name", "first last", "unknown", "todo", "tbd", "me",
                     "someone", "gvtnet-zoo developers", "anonymous"}
PLACEHOLDER_LICENSES = {"", "unknown", "todo", "tbd", "other", "none", "noassertion"}


def placeholder_authors(authors: Sequence[str]) -> Optional[str]:
    """The first author (``Name;affiliation;orcid``) whose name is a placeholder such as "Your Name", or None; none
    given counts as "" (a placeholder too)."""
    names = [a.split(";")[0].strip() for a in authors] or [""]
    return next((n for n in names if n.lower() in PLACEHOLDER_NAMES), None)


@dataclass(frozen=True)
class Check:
    """One row: what was checked, the result (pass / FAIL / n/a / not run) and why."""

    name: str
    status: str
    why: str


def format_checks(title: str, checks: Sequence[Check]) -> str:
    """A plain-text table under ``title``."""
    width = max(len(c.name) for c in checks)
    return "\n".join([title] + [f"  {c.name:{width}s}  {c.status:7s}  {c.why}" for c in checks])


def failed(checks: Sequence[Check]) -> list[Check]:
    return [c for c in checks if c.status == FAIL]


def package_bytes(source: Path, relative: str) -> Optional[bytes]:
    """A file of the package (zip, folder or the folder of its rdf.yaml), None if it is not there."""
    try:
        if source.is_file() and zipfile.is_zipfile(source):  # as bioimageio.spec tells a zip: by its content
            with zipfile.ZipFile(source) as archive:
                return archive.read(relative)
        return ((source if source.is_dir() else source.parent) / relative).read_bytes()
    except (KeyError, OSError):
        return None


def package_text(source: Path, relative: str) -> Optional[str]:
    data = package_bytes(source, relative)
    return None if data is None else data.decode("utf-8", errors="replace")


def validation_section(readme: str) -> Optional[str]:
    """The text of the model card's '## Validation' section (up to the next heading of level 1 or 2)."""
    match = re.search(r"^##\s+Validation\s*$(.*?)(?=^#{1,2}\s|\Z)", readme, re.MULTILINE | re.DOTALL)
    return match.group(1).strip() if match else None


def _test_rows(label: str, results: Sequence[FormatResult]) -> list[Check]:
    return [Check(f"{label} {r.weight_format}", PASS if r.passed else FAIL,
                  "bioimageio.core test_model" if r.passed else (r.failures or ["failed"])[0][:200]) for r in results]


def package_root(source: Path) -> Path:
    """The folder a package's relative paths start from: the package folder, or the rdf's or the zip's folder."""
    return (source if source.is_dir() else source.parent).resolve()


def upload_checks(source: Path, descr: Any, tests: Sequence[FormatResult], token_set: Optional[bool]) -> list[Check]:
    """What an upload needs: the zoo's tests, real authors and licence, a '## Validation' section with the
    run's metrics, no ``id``, and (``token_set`` not None) the upload token."""
    rows = _test_rows("test_model", tests)
    names = [str(a.name).strip() for a in getattr(descr, "authors", None) or []]
    placeholders = [n for n in names if n.lower() in PLACEHOLDER_NAMES]
    rows.append(Check("authors", FAIL if not names or placeholders else PASS,
                      "none; give --author 'Name;affiliation;orcid' when packaging" if not names else
                      f"placeholder {placeholders[0]!r}; name the real authors" if placeholders else ", ".join(names)))
    licence = str(getattr(descr, "license", "") or "")
    rows.append(Check("licence", FAIL if licence.lower() in PLACEHOLDER_LICENSES else PASS,
                      f"{licence or 'none'}; choose an SPDX id with --license" if licence.lower() in PLACEHOLDER_LICENSES
                      else f"{licence} (an SPDX id; make sure it is yours to choose)"))
    documentation = getattr(descr, "documentation", None)
    documentation = str(getattr(documentation, "source", documentation) or "")  # a FileDescr (0.5) or a path
    readme = package_text(source, documentation) if documentation and "://" not in documentation else None
    section = validation_section(readme or "")
    rows.append(Check("model card ## Validation", PASS if section and re.search(r"\d", section) else FAIL,
                      "no documentation file in the package" if readme is None else
                      "no '## Validation' section; say what data it was validated on, with the metrics" if section is None
                      else "the section has no metrics (numbers)" if not re.search(r"\d", section) else
                      f"{len(section.splitlines())} lines with metrics"))
    outside = files_outside(source, descr)
    rows.append(Check("files inside the package", FAIL if outside else PASS,
                      f"{outside[0]} lies outside the package; keep every file in it, named by a relative path"
                      + (f" (and {len(outside) - 1} more)" if len(outside) > 1 else "") if outside
                      else "every file the description names, and every file bioimageio.spec would pack, lies in the package"))
    model_id = getattr(descr, "id", None)
    rows.append(Check("no id", FAIL if model_id else PASS,
                      f"the description has id {model_id}: a new upload gets its id from bioimage.io; remove it"
                      if model_id else "bioimage.io assigns one"))
    if token_set is not None:
        rows.append(Check("upload token", PASS if token_set else FAIL,
                          "BIOIMAGEIO_HYPHA_UPLOAD_TOKEN is set" if token_set else
                          "set BIOIMAGEIO_HYPHA_UPLOAD_TOKEN (bioimage.io > API > hypha-rpc token)"))
    return rows


def _onnx_opset(source: Path, descr: Any) -> Optional[int]:
    """The default-domain opset of the ONNX weights (read from the file), None when there are none here."""
    import onnx

    weights = getattr(descr.weights, "onnx", None)
    if weights is None:
        return None
    data = package_bytes(source, str(weights.source))
    if data is None:
        return None
    model = onnx.load_model_from_string(data)
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def _axes_rules(raw: dict[str, Any]) -> list[str]:
    """deepImageJ's reading of axes: every space axis with an explicit id, input sizes fixed or min/step, output
    sizes fixed or a reference to an input axis. Returns the problems."""
    problems = []
    for kind in ("inputs", "outputs"):
        for tensor in raw.get(kind) or []:
            for axis in tensor.get("axes") or []:
                if not isinstance(axis, dict) or axis.get("type") != "space":
                    continue
                where = f"{tensor.get('id', '?')}.{axis.get('id', '?')}"
                size = axis.get("size")
                if "id" not in axis:
                    problems.append(f"space axis of {tensor.get('id', '?')} without an explicit id")
                elif kind == "inputs" and not (isinstance(size, int) or isinstance(size, dict) and {"min", "step"} <= set(size)):
                    problems.append(f"input size of {where} is neither fixed nor min/step")
                elif kind == "outputs" and not (isinstance(size, int) or isinstance(size, dict) and "tensor_id" in size
                                                and size.get("tensor_id") in {t.get("id") for t in raw.get("inputs") or []}):
                    problems.append(f"output size of {where} is neither fixed nor a reference to an input axis")
    return problems


def partner_checks(source: Path, descr: Any, full_determinism: Sequence[FormatResult]) -> list[Check]:
    """The collection's per-partner compatibility rules, and what of them could not run here."""
    rows = _test_rows("core: determinism=full", full_determinism)
    rows.append(Check("core: runtime as described", NOT_RUN,
                      "the collection builds the package's own environment; this ran in the current one"))
    inputs, outputs = len(descr.inputs), len(descr.outputs)
    weights = {f for f in ("torchscript", "pytorch_state_dict", "onnx") if getattr(descr.weights, f, None) is not None}
    if inputs != 1 or outputs != 1:
        why = f"ilastik takes one input and one output; this model has {inputs} and {outputs}"
        rows.append(Check("ilastik: one input, one output", NOT_APPLICABLE, why))
    else:
        rows.append(Check("ilastik: one input, one output", PASS, "yes"))
        loadable = [f for f in ("torchscript", "pytorch_state_dict") if f in weights]
        rows.append(Check("ilastik: weights it loads", PASS if loadable else FAIL,
                          f"{loadable[0]} (ilastik takes torchscript, else the state dict)" if loadable else
                          "ilastik never loads ONNX; add torchscript weights"))
        rows.append(Check("ilastik: test_model in its environment", NOT_RUN,
                          "bioimageio.core 0.10.2 + spec 0.5.9.1 (ilastik 1.4.2): gvtnet-zoo's CI runs it on its packages"))
    if inputs != 1:
        rows.append(Check("deepImageJ: one input", NOT_APPLICABLE, f"deepImageJ takes one input; this model has {inputs}"))
        return rows
    rows.append(Check("deepImageJ: one input", PASS, "yes"))
    opset = _onnx_opset(source, descr)
    if opset is not None:
        rows.append(Check(f"deepImageJ: ONNX opset <= {DEEPIMAGEJ_OPSET}", PASS if opset <= DEEPIMAGEJ_OPSET else FAIL,
                          f"opset {opset}" + ("" if opset <= DEEPIMAGEJ_OPSET else "; export with an older opset")))
    else:
        rows.append(Check(f"deepImageJ: ONNX opset <= {DEEPIMAGEJ_OPSET}", NOT_APPLICABLE,
                          "no ONNX weights" + ("; deepImageJ runs the TorchScript ones" if "torchscript" in weights else "")))
    problems = _axes_rules(raw_description(source).content)  # as written: defaults not filled in
    rows.append(Check("deepImageJ: axes and sizes it reads", FAIL if problems else PASS,
                      "; ".join(problems[:3]) if problems else "explicit space axis ids; sizes fixed, min/step or references"))
    rows.append(Check("deepImageJ: headless Fiji", NOT_RUN, f"needs Fiji with deepImageJ ({DEEPIMAGEJ_ENGINES})"))
    return rows
