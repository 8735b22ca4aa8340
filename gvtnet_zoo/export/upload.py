"""``gvtnet-zoo upload`` and ``test --partners``: the checks first (export/publish.py), then bioimageio.spec's own
upload to bioimage.io's artifact manager; nothing is sent unless every check passes."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, Callable, Optional

from ..errors import PackageFailed
from .package_files import refuse_files_outside
from .publish import FAIL, Check, failed, format_checks, package_root, partner_checks, upload_checks
from .zoo_test import formats_to_test, run_zoo_tests


def _token_set() -> bool:
    """Whether bioimageio.spec has an upload token (from BIOIMAGEIO_HYPHA_UPLOAD_TOKEN or its .env); never read out."""
    from bioimageio.spec import settings

    token = settings.hypha_upload_token
    value = token.get_secret_value() if hasattr(token, "get_secret_value") else token
    # a placeholder copied from documentation ("...", "<token>", "TOKEN") is no token
    return bool(value) and value.strip(". <>").lower() not in {"", "token", "your-token", "your_token", "xxx"}


def check_package(source: Path, weight_format: Optional[str], partners: bool, for_upload: bool,
                  echo: Callable[[str], None] = print) -> tuple[Any, list[Check]]:
    """(the description, every check row) printed as tables: the upload checks, then (``partners``) the
    partner rules. The package must not name remote files (trust.refuse_downloads), nor, for an upload, files
    outside it (refused before any test runs)."""
    from ..trust import read_description, refuse_downloads

    descr = read_description(source)
    refuse_downloads(descr, source, False)
    if for_upload:
        refuse_files_outside(source, descr)
    # with the partners, test once, as the collection does (determinism="full"); both tables show these runs
    tests = run_zoo_tests(source, formats_to_test(descr, weight_format, echo),
                          determinism="full" if partners else "seed_only")
    rows = upload_checks(source, descr, tests, _token_set() if for_upload else None)
    echo(format_checks(f"before upload ({source.name}):", rows))
    if partners:
        partner_rows = partner_checks(source, descr, tests)
        echo(format_checks("partner compatibility (as bioimage.io's collection checks):", partner_rows))
        rows += partner_rows
    return descr, rows


def _inside(source: Path, item: Any) -> str:
    """Where a file of the package lies: its path in the zip or the package folder (a file outside shows whole)."""
    if isinstance(item, zipfile.Path):
        return item.at
    if isinstance(item, dict):
        return "the description, written anew"
    path = Path(str(getattr(item, "source", item)))
    if not path.is_absolute():
        return str(path)  # relative to the package's root, as the rdf names it
    root = package_root(source)
    return str(path.resolve().relative_to(root)) if path.resolve().is_relative_to(root) else str(path.resolve())


def upload_package(source: Path, dry_run: bool, echo: Callable[[str], None] = print) -> Optional[str]:
    """Check, then upload with ``bioimageio.spec.upload``; returns the staged model's URL (None for a dry run).
    Raises PackageFailed, having sent nothing, when a check fails."""
    from bioimageio.spec import get_package_content, settings, upload

    descr, rows = check_package(source, None, partners=False, for_upload=True, echo=echo)
    if failed(rows):
        names = ", ".join(c.name for c in rows if c.status == FAIL)
        raise PackageFailed(f"not uploaded: {names} failed; nothing was sent")
    content = get_package_content(descr)
    if dry_run:
        listed = ", ".join(f"{name} ({_inside(source, content[name])})" for name in sorted(content))
        echo(f"would send {len(content)} files to {settings.hypha_upload} (create, put_file, edit): {listed}")
        return None
    url = str(upload(descr))
    echo(f"uploaded {source.name}: staged for review at {url}")
    return url
