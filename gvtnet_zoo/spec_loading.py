"""Reading spec files: YAML, ``--set section.key=value`` overrides, and one-line error messages."""

from __future__ import annotations

import copy
import typing
from pathlib import Path
from typing import Any, Iterable, Sequence

import yaml
from pydantic import BaseModel, ValidationError

from .config import ARCHITECTURES, Spec
from .errors import UserError
from .resources import resource_dir


TOP_LEVEL_KEYS = ("name", "description")  # the spec's own values; every other key lies in a section
SECTIONS = tuple(key for key in Spec.model_fields if key not in TOP_LEVEL_KEYS)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"data.patch_size=[16,32,32]"`` -> (["data", "patch_size"], [16, 32, 32]); the value is YAML."""
    key, sep, raw_value = text.partition("=")
    path = key.strip().split(".")
    if not sep or not all(path):
        raise UserError(f"--set expects section.key=value (e.g. train.lr=0.001) or name=value, got {text!r}")
    if len(path) < 2 and path[0] not in TOP_LEVEL_KEYS:
        what = "a section" if path[0] in SECTIONS else "not a top-level key"
        raise UserError(f"--set {text}: {path[0]!r} is {what}; give section.key=value with a section of "
                        f"{', '.join(SECTIONS)} (e.g. model.depth=3), or a top-level key without a section: "
                        + ", ".join(f"{k}=value" for k in TOP_LEVEL_KEYS))
    try:
        value = yaml.safe_load(raw_value)
    except yaml.YAMLError as err:
        raise UserError(f"--set {key}: the value {raw_value!r} is not valid YAML ({err.problem})") from None
    return path, value


def apply_overrides(raw: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """A copy of the spec mapping ``raw`` with each ``section.key=value`` override applied."""
    result = copy.deepcopy(raw)
    for text in overrides:
        path, value = parse_override(text)
        node = result
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise UserError(f"--set {'.'.join(path)}: '{part}' holds a value, not a section")
            node = child
        node[path[-1]] = value
    return result


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _allowed_keys(loc: Sequence[int | str]) -> tuple[list[str], list[str]]:
    """Follow a pydantic error location through the spec models: (the key's path, keys allowed beside it)."""
    model: type[BaseModel] = Spec
    names: list[str] = []
    parts = list(loc)
    while len(parts) > 1:
        name = parts.pop(0)
        field = model.model_fields.get(str(name))
        if field is None:
            break
        names.append(str(name))
        candidates = _models_in(field.annotation)
        if len(candidates) > 1:  # a tagged union: pydantic puts the tag in the location
            tag = parts.pop(0)
            candidates = [m for m in candidates if m.model_fields["architecture"].default == tag
                          or tag in typing.get_args(m.model_fields["architecture"].annotation)]
        if len(candidates) != 1:
            break
        model = candidates[0]
    names.append(str(parts[-1]))
    return names, sorted(model.model_fields)


def _unknown_key(loc: Sequence[int | str], overrides: Sequence[str]) -> str:
    """"unknown key 'model.dpth' (from --set model.dpth=3): model has no key 'dpth'; its keys: ..."."""
    path, allowed = _allowed_keys(loc)
    given = next((text for text in overrides if parse_override(text)[0][: len(path)] == path), None)
    origin = f" (from --set {given})" if given else ""
    section = ".".join(path[:-1]) or "the spec"
    return f"unknown key '{'.'.join(path)}'{origin}: {section} has no key '{path[-1]}'; its keys: {', '.join(allowed)}"


def _dotted(loc: Sequence[int | str]) -> str:
    """('model', 'gvtnet', 'depth') -> 'model.depth': pydantic's union tags are not keys of the file."""
    out = ""
    for i, part in enumerate(loc):
        if i > 0 and loc[i - 1] == "model" and part in ARCHITECTURES:
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def describe_validation_error(err: ValidationError, source: str, overrides: Sequence[str] = ()) -> str:
    """One line for all problems of a spec, each naming the key and what to do; an unknown key names the
    ``--set`` among ``overrides`` that gave it and lists the keys of its section."""
    problems = []
    for item in err.errors():
        loc, kind = item["loc"], item["type"]
        if kind == "extra_forbidden":
            problems.append(_unknown_key(loc, overrides))
        elif kind == "union_tag_invalid":
            problems.append(f"{_dotted(loc)}.architecture {item['input'].get('architecture')!r} is not known; "
                            f"use one of {item['ctx']['expected_tags']}")
        elif kind == "missing":
            problems.append(f"missing key '{_dotted(loc)}'")
        else:
            where = _dotted(loc)
            message = item["msg"].removeprefix("Value error, ")
            problems.append(f"{where}: {message}" if where else message)
    return f"invalid spec {source}: " + "; ".join(problems)


def spec_from_mapping(raw: Any, source: str = "<spec>", overrides: Iterable[str] = ()) -> Spec:
    """Validate a spec mapping (as read from YAML) after applying overrides."""
    if not isinstance(raw, dict):
        raise UserError(f"invalid spec {source}: expected a mapping of sections (name, model, data, train, export)")
    overrides = list(overrides)
    try:
        return Spec.model_validate(apply_overrides(raw, overrides))
    except ValidationError as err:
        raise UserError(describe_validation_error(err, source, overrides)) from None


def bundled_specs_dir() -> Path:
    """The folder of the specs that ship with gvtnet-zoo (model_specs/ of the repository)."""
    return resource_dir("model_specs")


def bundled_spec_names() -> list[str]:
    """Names of the shipped specs, e.g. 'gvtnet-label-free'."""
    return sorted(p.stem for p in bundled_specs_dir().glob("*.yaml"))


def resolve_spec_path(path_or_name: str | Path) -> Path:
    """A spec file path, or the name of a shipped spec ('gvtnet-label-free') -> an existing file."""
    path = Path(path_or_name)
    if path.is_file():
        return path
    bundled = bundled_specs_dir() / f"{path.name}.yaml"
    if path.suffix == "" and path.parent == Path(".") and bundled.is_file():
        return bundled
    raise UserError(
        f"spec file {path} not found; give the path of a YAML spec or the name of a shipped one "
        f"({', '.join(bundled_spec_names())})"
    )


def load_spec(path: str | Path, overrides: Iterable[str] = ()) -> Spec:
    """Read and validate a YAML spec file (or a shipped spec by name); ``overrides`` are ``section.key=value``."""
    path = resolve_spec_path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"cannot parse spec {path}{where}: {getattr(err, 'problem', err)}; fix the YAML syntax") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read spec {path}: {err}") from None
    return spec_from_mapping(raw, str(path), overrides)


def dump_spec(spec: Spec) -> str:
    """The fully resolved spec (every default written out) as YAML."""
    return yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)
