"""A real HTTP receiver on the host for the guest's webhook alerts (the ``alerts`` scenario).

It checks each POST's signature with :mod:`memras.alerts.signing`, the code the webhook
hook signs with (the lab sits above production code and reaches no plugin).
"""

from __future__ import annotations

import http.server
import json
import threading
from typing import Any

from memras.alerts.signing import SCHEMA_HEADER, SIGNATURE_HEADER, verify_signature


class WebhookReceiver:
    """Listens on 127.0.0.1 (a free port) and keeps every delivery: its JSON body, whether
    its signature verified, and its schema header."""

    def __init__(self, secret: str) -> None:
        self.deliveries: list[dict[str, Any]] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.deliveries.append({
                    "body": json.loads(body),
                    "signed": verify_signature(body, secret, self.headers.get(SIGNATURE_HEADER)),
                    "schema_header": self.headers.get(SCHEMA_HEADER)})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_: object) -> None:  # keep pytest output clean
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
