"""A stand-in for bioimage.io's artifact manager on 127.0.0.1, speaking what ``bioimageio.spec.upload`` sends:
POST .../create (JSON: parent_id, alias, type, manifest, version) -> {"id": ...}; POST .../put_file (JSON:
artifact_id, file_path) -> a JSON string, the URL to PUT the file to; PUT that URL (multipart); POST .../edit
(JSON: artifact_id, version, manifest with status). Every request is recorded."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

BASE = "/public/services/artifact-manager"


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class ArtifactManager:
    """``url`` is what BIOIMAGEIO_HYPHA_UPLOAD points at; ``requests`` what arrived, in order."""

    port: int = 0
    requests: list[Request] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{BASE}/create"

    def uploaded(self) -> dict[str, bytes]:
        """file path -> the body of its PUT (multipart: the file's bytes are inside)."""
        return {r.path.rsplit("/", 1)[-1]: r.body for r in self.requests if r.method == "PUT"}


def serve() -> Iterator[ArtifactManager]:
    """Run the stand-in in a thread for the length of the ``with`` (a generator for contextlib/pytest)."""
    manager = ArtifactManager()

    class Handler(BaseHTTPRequestHandler):
        def _record(self) -> Request:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            request = Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            manager.requests.append(request)
            return request

        def _reply(self, value: Any) -> None:
            data = json.dumps(value).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            request = self._record()
            if self.path == f"{BASE}/create":
                self._reply({"id": "bioimage-io/affable-shark"})
            elif self.path == f"{BASE}/put_file":
                target = request.json()["file_path"]
                self._reply(f"http://127.0.0.1:{manager.port}/uploads/affable-shark/{target}")
            elif self.path == f"{BASE}/edit":
                self._reply({"id": "bioimage-io/affable-shark"})
            else:
                self.send_error(404)

        def do_PUT(self) -> None:  # noqa: N802
            self._record()
            self._reply("")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    manager.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield manager
    finally:
        server.shutdown()
        server.server_close()
