"""Keeping packages readable by older bioimage.io readers (ilastik bundles bioimageio.spec 0.5.9.x)."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

from ruyaml import YAML

# The last model format whose readers take documentation and covers as plain paths; newer readers
# (bioimageio.spec >= 0.5.11) convert such a description on loading, so both generations accept it.
PLAIN_PATHS_FORMAT = "0.5.9"


def plain_file_references(package: Path) -> None:
    """Rewrite the zip's rdf.yaml with ``documentation`` and ``covers`` as plain paths, format 0.5.9.

    ilastik's bundled bioimageio.spec 0.5.9.x rejects the {source, sha256} mappings that newer
    writers produce; bioimageio.spec 0.5.12 rejects plain paths in a 0.5.12 description but converts
    them in one that declares format 0.5.9.
    """
    yaml = YAML()  # round-trip YAML 1.2, as bioimage.io reads and writes it ('off' stays a string)
    with zipfile.ZipFile(package) as archive:
        rdf = yaml.load(archive.read("rdf.yaml"))
        entries = [(info, archive.read(info.filename)) for info in archive.infolist() if info.filename != "rdf.yaml"]
    source = lambda ref: ref["source"] if isinstance(ref, dict) else ref  # noqa: E731
    if "documentation" in rdf:
        rdf["documentation"] = source(rdf["documentation"])
    rdf["covers"] = [source(c) for c in rdf.get("covers", [])]
    rdf["format_version"] = PLAIN_PATHS_FORMAT
    tmp = package.with_name(package.name + ".rewrite")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        text = io.StringIO()
        yaml.dump(rdf, text)
        archive.writestr("rdf.yaml", text.getvalue())
        for info, data in entries:
            archive.writestr(info, data)
    os.replace(tmp, package)
