"""Keep credentials out of logs, messages and the stored key document."""

from __future__ import annotations

import re

_USERINFO_RE = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")


def redact_url(url: str) -> str:
    """`https://user:token@host/x` -> `https://****@host/x`; the whole userinfo is hidden
    because tokens are often given as the user name."""
    return _USERINFO_RE.sub(lambda m: f"{m.group('scheme')}****@", url)


def redact_text(text: str) -> str:
    """Redact every URL with credentials inside free text (installer output, commands)."""
    return redact_url(text)
