"""Which of the user's lines an installer's failure is about, and what the index answered.

Before its error an installer names every package it looked at ("Collecting scikit-learn
(from -r requirements.txt (line 2))"), so only its error section is read: from pip's first
`ERROR:` line, from uv's first `error:` (or cross-marked) line. A line of the request is
involved when the section names its package, or (pip) cites its line of the request file we
wrote. A held package is in conflict only when the section says something *depends on* it:
a version of the user's own pin that was never released is not the server's business.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from extensibility.redact import redact_url
from extensibility.requirements import Requirement, RequirementsSpec

_SECTION_STARTS = ("ERROR:", "error:", "\u00d7")  # uv marks an error with a cross
# pip: "-r /cache/envs/KEY/.extensibility/requirements.txt (line 3)"
_LINE_REFERENCE = re.compile(r"-r (?P<path>\S+) \(line (?P<line>\d+)\)")
# what an index says when it refuses the credentials (or their absence)
_REFUSED = re.compile(r"\b(?P<status>401|403)\b[^\n]*?(?:Error|Unauthorized|Forbidden|"
                      r"Credentials|Client Error)|"
                      r"(?:Unauthorized|Forbidden)[^\n]*\b(?P<s2>401|403)\b", re.IGNORECASE)


def error_section(output: str) -> str:
    """The installer's own error text: everything from its first error line on."""
    lines = output.splitlines()
    for index, line in enumerate(lines):
        if line.lstrip().startswith(_SECTION_STARTS):
            return "\n".join(lines[index:])
    return ""


def _name_pattern(name: str) -> str:
    """A canonical name as installers print it (Flask, flask_cors, zope.interface)."""
    return "[-_.]".join(re.escape(part) for part in re.split(r"[-_.]+", name))


def mentions(text: str, name: str) -> bool:
    return re.search(rf"(?<![\w.-]){_name_pattern(name)}(?![\w-])", text,
                     re.IGNORECASE) is not None


def depended_on(text: str, name: str) -> bool:
    """Whether the section says that something depends on `name` (pip: "depends on",
    uv: "depend on")."""
    return re.search(rf"\bdepends? on {_name_pattern(name)}(?![\w-])", text,
                     re.IGNORECASE) is not None


def involved(spec: RequirementsSpec, section: str, written: str,
             excluded: Iterable[str] = ()) -> list[Requirement]:
    """The request's lines the section is about, in request order: by package name, or by
    pip's reference to a line of `written` (the requirements file given to the installer,
    one line per requirement of `spec`). `excluded`: names not to cite by name."""
    skip = set(excluded)
    cited = {int(match.group("line")) for match in _LINE_REFERENCE.finditer(section)
             if match.group("path") == written}
    return [requirement for number, requirement in enumerate(spec.requirements, start=1)
            if number in cited or (requirement.name and requirement.name not in skip
                                   and mentions(section, requirement.name))]


def describe(lines: Sequence[Requirement]) -> str:
    return "\n".join(f"  {r.origin}: {r.origin.text!r}" for r in lines)


def index_refusal(output: str) -> tuple[str, str] | None:
    """(HTTP status, the line saying so) when an index refused with 401 or 403."""
    match = _REFUSED.search(output)
    if match is None:
        return None
    start = output.rfind("\n", 0, match.start()) + 1
    end = output.find("\n", match.end())
    line = output[start:end if end != -1 else len(output)].strip()
    return match.group("status") or match.group("s2"), redact_url(line)[:300]
