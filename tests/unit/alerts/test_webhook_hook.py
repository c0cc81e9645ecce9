"""The webhook hook against real HTTP and HTTPS receivers on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest
from memras.plugins.alerts.webhook import WebhookHook

from memras.alerts.alert import Alert, AlertKind, Severity
from memras.alerts.signing import verify_signature
from memras.errors import HookError

from .conftest import HttpReceiver, TlsFiles

V1_KEYS = {"schema", "id", "time", "kind", "severity", "state", "dimm", "message", "verdict",
           "rule_ids", "evidence", "dedup_key", "repeats", "ack", "resolved_at", "test"}


def _alert() -> Alert:
    return Alert(kind=AlertKind.UE, severity=Severity.CRITICAL, message="uncorrected error",
                 dimm_id="mc0-dimm0", dimm_label="DIMM\x1b]0;A1", verdict="failing",
                 rule_ids=("ue-any",), evidence={"ue_count": 1}, id=5)


def test_post_carries_v1_schema_and_a_verifiable_hmac(http_receiver: HttpReceiver) -> None:
    WebhookHook({"url": http_receiver.url, "secret": "s3cret"}).send(_alert())
    (request,) = http_receiver.requests
    payload = request.json()
    assert set(payload) == V1_KEYS
    assert payload["schema"] == "memras.alert/v1"
    assert payload["dimm"] == {"id": "mc0-dimm0", "label": "DIMM\x1b]0;A1",  # verbatim
                              "name": None}  # no host: no slot label
    assert request.headers["Content-Type"] == "application/json"
    expected = "sha256=" + hmac.new(b"s3cret", request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Memras-Signature"] == expected
    assert verify_signature(request.body, "s3cret", request.headers["X-Memras-Signature"])
    assert not verify_signature(request.body, "other", request.headers["X-Memras-Signature"])


def test_secret_file_and_extra_headers(http_receiver: HttpReceiver, tmp_path: Path) -> None:
    (tmp_path / "key").write_text("from-file\n")
    (tmp_path / "key").chmod(0o600)
    (tmp_path / "auth").write_text("Bearer from-auth-file\n")
    (tmp_path / "auth").chmod(0o400)
    hook = WebhookHook({"url": http_receiver.url, "secret_file": str(tmp_path / "key"),
                        "headers": {"Authorization_file": str(tmp_path / "auth"),
                                    "X-Other": "plain"}})
    hook.send(_alert())
    (request,) = http_receiver.requests
    assert verify_signature(request.body, "from-file", request.headers["X-Memras-Signature"])
    assert request.headers["Authorization"] == "Bearer from-auth-file"
    assert request.headers["X-Other"] == "plain"
    assert sorted(hook.secret_values()) == ["Bearer from-auth-file", "from-file"]


def test_without_secret_no_signature_header(http_receiver: HttpReceiver) -> None:
    WebhookHook({"url": http_receiver.url}).send(_alert())
    assert "X-Memras-Signature" not in http_receiver.requests[0].headers


def test_http_error_status_is_a_hook_error(http_receiver: HttpReceiver) -> None:
    http_receiver.fail_first = 1
    with pytest.raises(HookError, match="HTTP 503"):
        WebhookHook({"url": http_receiver.url}).send(_alert())


def test_https_verifies_with_the_given_ca(https_receiver: HttpReceiver,
                                          tls_files: TlsFiles) -> None:
    WebhookHook({"url": https_receiver.url, "ca_file": str(tls_files.cert)}).send(_alert())
    assert json.loads(https_receiver.requests[0].body)["id"] == 5


def test_https_rejects_an_untrusted_cert_by_default(https_receiver: HttpReceiver) -> None:
    with pytest.raises(HookError, match="CERTIFICATE_VERIFY_FAILED"):
        WebhookHook({"url": https_receiver.url}).send(_alert())
    assert https_receiver.requests == []


def test_verify_false_only_when_explicit(https_receiver: HttpReceiver) -> None:
    WebhookHook({"url": https_receiver.url, "verify": False}).send(_alert())
    assert len(https_receiver.requests) == 1
    with pytest.raises(HookError, match="verify must be true or false"):
        WebhookHook({"url": https_receiver.url, "verify": "no"})


def test_unreachable_receiver_and_bad_url() -> None:
    with pytest.raises(HookError, match="cannot POST"):
        WebhookHook({"url": "http://127.0.0.1:9/none", "timeout": 2}).send(_alert())
    with pytest.raises(HookError, match="must be http"):
        WebhookHook({"url": "ftp://127.0.0.1/"})
