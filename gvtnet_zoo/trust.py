"""Packages from others: reading a description, what it would download, and whose code it would run.

A package is untrusted (DESIGN.md §9). Reading its rdf.yaml fetches nothing; files it names by URL
are refused before any request unless the user allows downloads (bioimageio.core then checks each
file's sha256 from the rdf); the Python code of a state dict's architecture runs by default only
when it is byte for byte the network file this gvtnet-zoo writes itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Optional

from .errors import UserError

# Fields whose URLs bioimageio.core would download: file sources, the model card and the covers.
# Links for people (cite.url, git_repo, links, uploader) are never fetched and are not checked.
_FETCHED_FIELDS = frozenset({
    "source", "source_file", "documentation", "covers", "attachments", "files",
    "test_inputs", "test_outputs", "sample_inputs", "sample_outputs",
})


def read_description(source: str | Path) -> Any:
    """The valid model description of a package (zip, folder or rdf.yaml), read without any I/O checks.

    Older formats (0.4) are converted to the current one in memory, so that one code path pads, tiles
    and crops every model; a description that does not convert is used as written.
    """
    from bioimageio.spec import InvalidDescr, load_model_description

    if not Path(source).exists():
        raise UserError(f"model {source} not found; give a bioimage.io package (.zip), its folder or its rdf.yaml")
    try:
        descr = load_model_description(str(source), format_version="latest", perform_io_checks=False)
        if isinstance(descr, InvalidDescr):
            descr = load_model_description(str(source), perform_io_checks=False)
    except Exception as err:  # noqa: BLE001 - the reader raises many kinds for a broken package
        raise UserError(f"cannot read the model {source}: {str(err).splitlines()[0][:300]}") from None
    if isinstance(descr, InvalidDescr):
        errors = descr.validation_summary.errors
        first = f"{'.'.join(map(str, errors[0].loc))}: {errors[0].msg}" if errors else "invalid description"
        raise UserError(f"{source} is not a valid bioimage.io model ({first[:300]})")
    return descr


def _is_url(value: Any) -> bool:
    from bioimageio.spec._internal.url import HttpUrl
    from pydantic import AnyUrl

    if isinstance(value, (HttpUrl, AnyUrl)):
        return True
    return isinstance(value, str) and value.lower().startswith(("http://", "https://", "ftp://"))


def _walk(value: Any, location: tuple[str, ...], fetched: bool) -> Iterator[tuple[str, str]]:
    from pydantic import BaseModel

    if fetched and _is_url(value):
        yield ".".join(location), str(value)
    elif isinstance(value, BaseModel) and not _is_url(value):
        for name in type(value).model_fields:
            yield from _walk(getattr(value, name, None), (*location, name), fetched or name in _FETCHED_FIELDS)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _walk(item, (*location, str(index)), fetched)
    elif isinstance(value, dict) and location[:1] != ("config",):  # config holds data, not files to fetch
        for key, item in value.items():
            yield from _walk(item, (*location, str(key)), fetched or str(key) in _FETCHED_FIELDS)


def remote_files(descr: Any) -> list[tuple[str, str]]:
    """(field, URL) of every file the description names by URL, in field order."""
    return list(_walk(descr, (), False))


def refuse_downloads(descr: Any, source: str | Path, allow_download: bool) -> None:
    """UserError naming the first remote file unless downloads are allowed."""
    remote = remote_files(descr)
    if remote and not allow_download:
        field, url = remote[0]
        more = f" (and {len(remote) - 1} more)" if len(remote) > 1 else ""
        raise UserError(f"{source} names a remote file, {field}: {url}{more}; gvtnet-zoo downloads nothing unless "
                        "you add --allow-download (each file is then checked against the rdf's sha256)")


def architecture_origin(descr: Any) -> Optional[str]:
    """Where a state dict's network code comes from ('the package's file X' or 'the installed library Y'), or None."""
    weights = getattr(descr.weights, "pytorch_state_dict", None)
    if weights is None:
        return None
    architecture = weights.architecture
    source = getattr(architecture, "source", None) or getattr(architecture, "source_file", None)
    if source is not None:
        return f"the package's file {source}"
    library = getattr(architecture, "import_from", None) or getattr(architecture, "module_name", None)
    return f"the installed library {library}"


def runs_our_own_code(descr: Any) -> bool:
    """Whether the state dict's architecture file is exactly the network file this gvtnet-zoo writes."""
    from bioimageio.spec.utils import get_reader

    from .export.architecture import architecture_source

    weights = getattr(descr.weights, "pytorch_state_dict", None)
    source = getattr(getattr(weights, "architecture", None), "source", None)
    if source is None or _is_url(source):
        return False
    try:
        packaged = get_reader(source).read()
    except Exception:  # noqa: BLE001 - unreadable means: not ours
        return False
    return packaged == architecture_source().encode()
