"""The ``webhook`` hook: POST the alert as JSON (schema ``memras.alert/v1``).

Options (``[alerts.hooks.webhook]``)::

    url = "https://alerts.example.net/memras"  # user:password@ in it: sent as Basic auth
    secret = "shared-secret"        # or secret_file = "/etc/memras/webhook.key"
    timeout = "10s"
    ca_file = "/etc/memras/ca.pem"  # trust this CA (TLS verification stays on)
    verify = true                   # false only when set explicitly; never the default
    headers = { Authorization = "Bearer …" }   # or { Authorization_file = "/etc/memras/auth" }

With a secret, ``X-Memras-Signature: sha256=<hex>`` is the HMAC-SHA256 of the exact
body bytes; receivers recompute it and compare in constant time. Any 2xx response is
success; other statuses, TLS and connection errors are failed attempts. The body
also carries ``X-Memras-Schema: memras.alert/v1``. Standard library only (urllib).

A ``*_file`` secret must be private (``chmod 600``): see
:func:`memras.alerts.hooks.resolve_secret_files`. Error texts name the URL with its
credentials and token parameters redacted (the dispatcher redacts every hook's errors).
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from memras.alerts.alert import PAYLOAD_SCHEMA, Alert
from memras.alerts.config import parse_duration
from memras.alerts.hooks import AlertHook
from memras.alerts.signing import SCHEMA_HEADER, SIGNATURE_HEADER, sign
from memras.errors import HookError

DEFAULT_TIMEOUT_S = 10.0


class WebhookHook(AlertHook):
    name = "webhook"
    sends_resolved = True

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self.url = str(self.option("url", required=True))
        if not self.url.startswith(("http://", "https://")):
            raise HookError(f"alert hook webhook: url {self.url!r} must be http(s)://")
        self.secret = self._secret()
        self.timeout_s = parse_duration(self.option("timeout", DEFAULT_TIMEOUT_S),
                                        what="hooks.webhook.timeout")
        self.headers = {str(k): str(v) for k, v in dict(self.option("headers", {})).items()}
        self._url_password = urllib.parse.urlsplit(self.url).password
        self.url, basic = _split_credentials(self.url)
        if basic and not any(k.lower() == "authorization" for k in self.headers):
            self.headers["Authorization"] = basic
        self.ssl_context = self._ssl_context()

    def secret_values(self) -> list[str]:
        """The options' secrets, and the Basic credentials taken from the URL."""
        auth = self.headers.get("Authorization", "")
        extra = [v for v in (auth, self._url_password) if v]
        return list(dict.fromkeys([*super().secret_values(), *extra]))

    def _secret(self) -> str | None:
        secret = self.option("secret")  # secret_file is read in by AlertHook.__init__
        return None if secret is None else str(secret)

    def _ssl_context(self) -> ssl.SSLContext:
        verify = self.option("verify", True)
        if verify is not True and verify is not False:
            raise HookError("alert hook webhook: verify must be true or false")
        try:
            context = ssl.create_default_context(cafile=self.option("ca_file"))
        except (OSError, ssl.SSLError) as exc:
            raise HookError(f"alert hook webhook: cannot load ca_file: {exc}") from exc
        if verify is False:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def body(self, alert: Alert) -> bytes:
        return json.dumps(alert.to_payload(), sort_keys=True).encode()

    def send(self, alert: Alert) -> None:
        body = self.body(alert)
        headers = {"Content-Type": "application/json", SCHEMA_HEADER: PAYLOAD_SCHEMA,
                   "User-Agent": "memras-webhook/1", **self.headers}
        if self.secret is not None:
            headers[SIGNATURE_HEADER] = sign(body, self.secret)
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s,
                                        context=self.ssl_context) as response:
                response.read(1024)
        except urllib.error.HTTPError as exc:
            raise HookError(f"webhook: {self.url} answered HTTP {exc.code} {exc.reason}") from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise HookError(f"webhook: cannot POST to {self.url}: {reason}") from exc


def _split_credentials(url: str) -> tuple[str, str | None]:
    """``http://user:pw@host/x`` -> (``http://host/x``, ``Basic <base64 user:pw>``).

    urllib would take ``user:pw@host`` for the host name; the credentials go in an
    Authorization header instead (RFC 7617), which also keeps them out of error texts."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal
    netloc = host + (f":{parts.port}" if parts.port is not None else "")
    user = urllib.parse.unquote(parts.username or "")
    password = urllib.parse.unquote(parts.password or "")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc)), f"Basic {token}"
