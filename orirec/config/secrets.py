"""Credentials in URIs and settings, masked for anything printed, logged or written to a manifest.

A URI's userinfo (``user:pass@`` -> ``***@``) and the values of query parameters that carry secrets
(``X-Amz-Signature``, ``X-Amz-Credential``, ``token``, ``password``, ``sig``, ...) are masked; the rest stays
readable. Used by the tracking messages, ``orirec launch`` and the Ray job submitter.
"""

from __future__ import annotations

import re

__all__ = ["has_credentials", "redact_setting", "redact_uri"]

_SENSITIVE_PARAM = re.compile(r"signature|credential|token|passw|pwd|secret|api[-_]?key|^sig$|^key$|^auth", re.I)
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^?#]*)@")


def redact_uri(value: str) -> str:
    """``value`` with URI credentials masked: the userinfo (``user:pass@`` -> ``***@``) and the values of
    query parameters that carry secrets (``X-Amz-Signature``, ``X-Amz-Credential``, ``token``, ``password``,
    ``sig``, ...). Anything that is no URI comes back unchanged."""
    m = _USERINFO.match(value)
    if m and (":" in m.group(2) or "/" not in m.group(2)):
        value = f"{m.group(1)}***@{value[m.end() :]}"
    if "?" not in value:
        return value
    head, _, rest = value.partition("?")
    query, hash_, frag = rest.partition("#")
    parts = []
    for item in query.split("&"):
        k, eq, _v = item.partition("=")
        parts.append(f"{k}=***" if eq and _SENSITIVE_PARAM.search(k) else item)
    return f"{head}?{'&'.join(parts)}{hash_}{frag}"


def has_credentials(value: str) -> bool:
    """True when :func:`redact_uri` would mask part of ``value``."""
    return redact_uri(value) != value


def redact_setting(setting: str) -> str:
    """A ``key=value`` override (or a bare value) with the value's URI credentials masked."""
    key, eq, value = setting.partition("=")
    return f"{key}={redact_uri(value)}" if eq else redact_uri(setting)
