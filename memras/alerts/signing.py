"""The webhook signature: what the ``webhook`` hook sends and what a receiver checks.

``X-Memras-Signature: sha256=<hex>`` is the HMAC-SHA256 of the exact body bytes under
the shared secret; ``X-Memras-Schema`` names the payload's schema. Kept in the core so
receivers (the lab's, a user's) verify with the same code the hook signs with.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Memras-Signature"
SCHEMA_HEADER = "X-Memras-Schema"


def sign(body: bytes, secret: str) -> str:
    """The signature header value: ``sha256=`` + hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, secret: str, header: str | None) -> bool:
    """Does ``header`` sign ``body`` with ``secret``? (constant-time comparison)"""
    return header is not None and hmac.compare_digest(sign(body, secret), header)
