"""Keep credentials out of logs, messages and the stored key document."""

from __future__ import annotations

import hashlib
import re

_USERINFO_RE = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")


# query parameters that carry secrets in signed or token URLs (?sig=, ?token=, ?api_key=)
_SECRET_QUERY_RE = re.compile(
    r"(?P<name>[?&][^=&\s#]*(?:token|key|secret|password|passwd|sig|auth)[^=&\s#]*=)"
    r"[^&\s#]+", re.IGNORECASE)


def redact_url(url: str) -> str:
    """`https://user:token@host/x?sig=abc` -> `https://****@host/x?sig=****`, also inside
    free text (log lines, installer output); the whole userinfo is hidden because tokens are
    often given as the user name."""
    url = _USERINFO_RE.sub(lambda m: f"{m.group('scheme')}****@", url)
    return _SECRET_QUERY_RE.sub(lambda m: f"{m.group('name')}****", url)


def secret_digest(value: str) -> str:
    """What the cache keeps of a value that may be a secret (a ${VAR}, a conda variable):
    enough to notice a change, nothing to recover it from."""
    return hashlib.sha256(value.encode()).hexdigest()[:16]
