"""Keep credentials out of logs, messages and the stored key document.

Redaction parses each URL the way a URL parser does, not with a pattern that stops at the
first `@`: the authority runs from after `scheme:/` or `scheme://` to the first `/`, `?`,
`#` or white space, and its userinfo runs up to the *last* `@` in it (pip and uv accept a
raw `@` inside a password). The single-slash form covers a URL that went through a path
join (`/app/https:/user:token@host/...`). Linear in the length of the text.
"""

from __future__ import annotations

import hashlib
import re

MASK = "****"
_AUTHORITY_END_RE = re.compile(r"[/?#\s]")
_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")
_MAX_SCHEME = 32
# a query parameter (name bounded, so matching stays linear) whose name says it is a secret
_QUERY_RE = re.compile(r"(?P<name>[?&][^=&\s#]{1,64}=)(?P<value>[^&\s#]+)")
_SECRET_NAMES = ("token", "key", "secret", "password", "passwd", "sig", "auth")
# the secret fields of a storage connection string (`...;AccountKey=...;...`)
_CONNECTION_RE = re.compile(r"(?i)(?P<name>\b(?:AccountKey|SharedAccessSignature|"
                            r"SharedAccessKey)=)(?P<value>[^;\s]+)")


def _has_scheme(text: str, colon: int) -> bool:
    start = colon
    while start > 0 and colon - start < _MAX_SCHEME and text[start - 1] in _SCHEME_CHARS:
        start -= 1
    return start < colon and text[start].isalpha()


def _redact_userinfo(text: str) -> str:
    parts: list[str] = []
    done = 0  # text[:done] is in parts already
    colon = text.find(":/")
    while colon != -1:
        begin = colon + 2 + (text.startswith("/", colon + 2))
        end_match = _AUTHORITY_END_RE.search(text, begin)
        end = end_match.start() if end_match else len(text)
        at = text.rfind("@", begin, end)
        if at != -1 and _has_scheme(text, colon):
            parts += [text[done:begin], MASK]
            done = at  # keep "@host..."
        colon = text.find(":/", max(end, colon + 2))
    parts.append(text[done:])
    return "".join(parts)


def _redact_query(text: str) -> str:
    def hide(match: re.Match[str]) -> str:
        name = match.group("name")
        return name + MASK if any(s in name.lower() for s in _SECRET_NAMES) else match.group(0)

    if "=" not in text:
        return text
    return _CONNECTION_RE.sub(lambda m: m.group("name") + MASK, _QUERY_RE.sub(hide, text))


def redact_url(text: str) -> str:
    """`https://user:token@host/x?sig=abc` -> `https://****@host/x?sig=****`, also inside
    free text (log lines, installer output, paths made from user values); the whole userinfo
    is hidden because tokens are often given as the user name. A connection string's
    `AccountKey=`, `SharedAccessSignature=` and `SharedAccessKey=` are hidden too."""
    if ":/" in text:
        text = _redact_userinfo(text)
    return _redact_query(text)


def secret_digest(value: str) -> str:
    """What the cache keeps of a value that may be a secret (a ${VAR}, a conda variable):
    enough to notice a change, nothing to recover it from."""
    return hashlib.sha256(value.encode()).hexdigest()[:16]


def shown(token: str) -> str:
    """A token of a user's file (an option name, a version clause) as an error may name it:
    short, printable and redacted. Errors never quote whole lines: an included file may be
    anything, `-r /proc/self/environ` included."""
    text = redact_url(token if len(token) <= 40 else token[:37] + "...")
    return repr(text if text.isprintable() else "(unprintable)")
