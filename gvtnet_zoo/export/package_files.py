"""Whether every file a package names lies inside it: what ``upload`` may send (DESIGN.md §9).

The description looked at is the one bioimageio.spec loads (its own ``open_bioimageio_yaml`` chooses among
rdf.yaml, bioimageio.yaml, NAME.rdf.yaml, ... in a zip or folder), so a decoy beside it changes nothing. Every
string in it, at any depth and under any field name (known to the spec or not, format 0.4 or 0.5), is read as a
possible file name; then what bioimageio.spec itself would pack (``get_package_content``) is checked as well.
http(s) URLs keep their own treatment: ``trust.refuse_downloads`` refuses the fetched ones before this runs, and
links for people (cite.url, git_repo) name no file.
"""

from __future__ import annotations

import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

from ..errors import UserError

_REMOTE = ("http://", "https://", "ftp://")
# absolute on any system: /x, ~/x or ~user/x, C:\x or C:/x, \\server\share
_ABSOLUTE = re.compile(r"^(/|~[^\s/\\]*([/\\]|$)|[A-Za-z]:[\\/]|\\\\)")


@dataclass(frozen=True)
class RawDescription:
    """The description as written, as bioimageio.spec chose it: its file name, content and the package folder
    its relative names start from (None for a zip, whose names are members)."""

    file_name: str
    content: dict[str, Any]
    folder: Optional[Path]


def raw_description(source: Path) -> RawDescription:
    """The description bioimageio.spec loads from ``source`` (zip, folder or the description file), unvalidated."""
    from bioimageio.spec.utils import open_bioimageio_yaml

    try:
        # a Path, not a str: for a str that is not a file the spec would look the name up online
        opened = open_bioimageio_yaml(Path(source))
    except Exception as err:  # noqa: BLE001 - the reader raises many kinds for a broken package
        raise UserError(f"cannot read the description of {source}: {str(err).splitlines()[0][:300]}") from None
    root = opened.original_root
    folder = Path(root).resolve() if isinstance(root, (str, Path)) else None
    return RawDescription(str(opened.original_file_name), dict(opened.content), folder)


def string_fields(value: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """(field path, value) of every string in a YAML document, e.g. ('attachments[2].source', 'x.csv')."""
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from string_fields(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from string_fields(item, f"{where}[{index}]")


def _climbs_out(name: str) -> bool:
    """Whether a relative name leaves its folder through '..' (either slash; 'a/../b' stays in)."""
    depth = 0
    for part in re.split(r"[\\/]", name):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False


def _links_out(name: str, folder: Path) -> bool:
    """Whether ``name`` in the package folder exists and resolves (through links) out of it."""
    try:
        path = folder / name
        return (path.exists() or path.is_symlink()) and not path.resolve().is_relative_to(folder)
    except (OSError, ValueError):  # too long, a NUL: no file of that name
        return False


def why_outside(value: str, folder: Optional[Path]) -> Optional[str]:
    """Why the string ``value`` names a file outside the package, or None (not a file outside, or a URL)."""
    name = value.strip()
    lowered = name.lower()
    if not name or lowered.startswith(_REMOTE):
        return None
    if lowered.startswith("file:"):
        return "a file:// URL"
    if _ABSOLUTE.match(name):
        return "an absolute path"
    if _climbs_out(name):
        return "a path out of the package ('..')"
    if folder is not None and "\n" not in name and _links_out(name, folder):
        return "a link out of the package"
    return None


def _packed_outside(descr: Any, folder: Optional[Path]) -> Iterator[tuple[str, str, str]]:
    """(label, source, why) for each file bioimageio.spec would pack from outside the package."""
    from bioimageio.spec import get_package_content
    from bioimageio.spec.utils import RelativeFilePath, ZipPath

    try:
        with warnings.catch_warnings():  # pydantic warns about the sources it cannot serialize; they fail below
            warnings.simplefilter("ignore")
            content = get_package_content(descr)
    except Exception as err:  # noqa: BLE001 - whatever stops the spec from listing the files stops the upload
        yield "the package's files", "", f"bioimageio.spec cannot list them: {str(err).splitlines()[0][:200]}"
        return
    for name, item in content.items():
        source = getattr(item, "source", None)
        if source is None:  # the description itself, written anew
            continue
        where = source.absolute() if isinstance(source, RelativeFilePath) else source
        label = f"the file {name!r} bioimageio.spec would pack"  # repr: a name with a newline stays one line
        if isinstance(where, (ZipPath, zipfile.Path)):
            if _climbs_out(where.at):
                yield label, where.at, "a path out of the package ('..')"
        elif isinstance(where, Path):
            if folder is None:
                yield label, str(where), "a file beside the zip, not in it"
            elif not where.resolve().is_relative_to(folder):
                yield label, str(where), "a file outside the package folder"
        # else a URL: trust.refuse_downloads has refused it already


def files_outside(source: Path, descr: Any = None) -> list[str]:
    """'field: value (why)' for each file the description names outside the package: every string of the
    description bioimageio.spec loads, then (``descr`` given) what the spec would pack."""
    raw = raw_description(source)
    outside = [f"{field}: {value!r:.200} ({why})" for field, value in string_fields(raw.content)
               if (why := why_outside(value, raw.folder))]
    if descr is not None and not outside:  # the spec's list is the second line of defence
        outside = [f"{label}: {value!r:.200} ({why})" for label, value, why in _packed_outside(descr, raw.folder)]
    return outside


def refuse_files_outside(source: Path, descr: Any) -> None:
    """UserError naming the first field (path and value) that names a file outside the package."""
    outside = files_outside(source, descr)
    if outside:
        more = f" (and {len(outside) - 1} more)" if len(outside) > 1 else ""
        raise UserError(f"{source} names a file outside the package, {outside[0]}{more}; nothing was sent: "
                        "keep every file inside the package and name it by a relative path")
