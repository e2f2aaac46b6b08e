"""Read a conda environment file (`environment.yml`, MLflow's `conda.yaml`) completely.

Every entry keeps its line, so a malformed file or match spec fails before any install with
the file, the line, the entry and the reason. Nothing is translated here (translate.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from extensibility.errors import RequestInvalid
from extensibility.redact import shown
from extensibility.requirements import Origin

MAX_SPEC = 1000  # characters of one match spec: real ones are short; bounds every regex here
_KNOWN_KEYS = {"name", "channels", "dependencies", "variables", "prefix"}
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*")
_BRACKET_RE = re.compile(r"^\[(?P<body>[^\]]*)\]$")
_BRACKET_ITEM_RE = re.compile(
    r"\s*(?P<key>\w+)\s*=\s*(?:'(?P<single>[^']*)'|\"(?P<double>[^\"]*)\"|(?P<bare>[^,'\"]*?))"
    r"\s*(?:,|$)")


@dataclass(frozen=True)
class MatchSpec:
    """A conda match spec, split into its parts (all text as written, None when absent)."""

    name: str
    version: str | None  # conda version spec, e.g. "1.2.*", ">=1,<2", "==1.2"
    build: str | None
    channel: str | None
    origin: Origin

    def __str__(self) -> str:
        text = f"{self.channel}::" if self.channel else ""
        text += self.name
        if self.version:
            text += f" {self.version}"
        if self.build:
            text += f" {self.build}"
        return text


@dataclass(frozen=True)
class CondaFile:
    path: Path
    name: str | None
    channels: tuple[str, ...]
    dependencies: tuple[MatchSpec, ...]
    pip: tuple[tuple[int, str], ...]  # (line, text) of each entry of the `pip:` section
    variables: Mapping[str, str] = field(default_factory=dict)
    ignored_keys: tuple[str, ...] = ()


def read_conda_file(path: Path, data: bytes) -> CondaFile:
    """Parse `data`, the bytes of the conda file at `path` (read once by the caller)."""
    import yaml  # only a conda request pays for it

    try:
        text = data.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestInvalid(f"{path}: not UTF-8 text ({exc.reason})",
                             fix="save the conda file as UTF-8") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        raise RequestInvalid(f"{path}: nested too deeply to be a conda file",
                             fix="a conda file is a flat mapping of name, channels, "
                             "dependencies and variables") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RequestInvalid(f"{where}: not valid YAML: {problem}",
                             fix="correct the YAML syntax (indentation, quotes, colons)") from None
    if root is None:
        raise RequestInvalid(f"{path}: the conda file is empty",
                             fix="list the packages under `dependencies:`")
    return _Reader(path).read(root)


@dataclass
class _Reader:
    path: Path

    def read(self, root: Any) -> CondaFile:
        import yaml

        if not isinstance(root, yaml.MappingNode):
            raise self._invalid(root, "the top level must be a mapping (name:, channels:, "
                                "dependencies:)")
        entries = {self._scalar(key, "a key"): value for key, value in root.value}
        name = self._scalar(entries["name"], "name") if "name" in entries else None
        channels = tuple(self._scalar(item, "a channel")
                         for item in self._sequence(entries.get("channels"), "channels"))
        dependencies: list[MatchSpec] = []
        pip: list[tuple[int, str]] = []
        for item in self._sequence(entries.get("dependencies"), "dependencies"):
            if isinstance(item, yaml.MappingNode):
                pip.extend(self._pip_section(item))
            else:
                text = self._scalar(item, "a dependency")
                dependencies.append(parse_match_spec(self._origin(item, text)))
        variables = {}
        node = entries.get("variables")
        if node is not None and not _is_null(node):
            if not isinstance(node, yaml.MappingNode):
                raise self._invalid(node, "`variables` must be a mapping of NAME: value")
            for key, value in node.value:
                variables[self._scalar(key, "a variable name")] = self._scalar(value, "a value")
        if not dependencies and not pip:
            raise self._invalid(root, "no dependencies are listed")
        ignored = tuple(sorted(set(entries) - _KNOWN_KEYS))
        return CondaFile(self.path, name, channels, tuple(dependencies), tuple(pip),
                         variables, ignored)

    def _pip_section(self, node: Any) -> list[tuple[int, str]]:
        keys = [self._scalar(key, "a key") for key, _ in node.value]
        if keys != ["pip"]:
            raise self._invalid(node, f"a mapping among the dependencies must be `pip:` "
                                f"alone, not {', '.join(keys)}")
        items = self._sequence(node.value[0][1], "pip")
        return [(item.start_mark.line + 1, self._scalar(item, "a pip requirement"))
                for item in items]

    def _sequence(self, node: Any, what: str) -> list[Any]:
        import yaml

        if node is None or _is_null(node):
            return []
        if not isinstance(node, yaml.SequenceNode):
            raise self._invalid(node, f"`{what}` must be a list (`- item` lines)")
        return list(node.value)

    def _scalar(self, node: Any, what: str) -> str:
        import yaml

        if not isinstance(node, yaml.ScalarNode) or _is_null(node):
            raise self._invalid(node, f"expected {what} (a single value) here")
        return str(node.value)

    def _origin(self, node: Any, text: str) -> Origin:
        return Origin(self.path, node.start_mark.line + 1, text)

    def _invalid(self, node: Any, reason: str) -> RequestInvalid:
        return RequestInvalid(f"{self.path}:{node.start_mark.line + 1}: {reason}",
                              fix="see docs/conda.md for the accepted layout")


def _is_null(node: Any) -> bool:
    return bool(node.tag == "tag:yaml.org,2002:null")


def parse_match_spec(origin: Origin) -> MatchSpec:
    """A dependency line of an environment file, as conda reads it: by py-rattler's
    MatchSpec when it is installed, else by `parse_match_spec_here` (tested on one table)."""
    text = origin.text.strip()
    if len(text) > MAX_SPEC:
        raise _bad_spec(origin, f"longer than {MAX_SPEC} characters")
    if text.startswith("::"):  # rattler takes an empty channel; conda does not
        raise _bad_spec(origin, "empty channel before `::`")
    try:
        import rattler
    except ImportError:
        return parse_match_spec_here(origin)
    try:
        spec = rattler.MatchSpec(text)
    except Exception as exc:  # rattler's own error classes: a malformed spec
        raise _bad_spec(origin, shown(str(exc).splitlines()[0] if str(exc) else "")) from None
    if spec.name is None:
        raise _bad_spec(origin, "it does not start with a package name")
    version = str(spec.version) if spec.version is not None else None
    channel = spec.channel.name if spec.channel is not None else None
    if version is not None:
        _check_version(origin, version)
    return MatchSpec(spec.name.normalized, version, spec.build or None, channel, origin)


_OPERATOR_SPACE_RE = re.compile(r"(==|!=|>=|<=|~=|>|<)\s+")
_SEPARATOR_SPACE_RE = re.compile(r"\s*([,|])\s*")


def parse_match_spec_here(origin: Origin) -> MatchSpec:
    """`pkg`, `pkg=1.2`, `pkg=1.2.*`, `pkg>=1,<2`, `pkg >= 1.2`, `pkg==1.2`, `pkg=1.2=build`,
    `pkg 1.2 build`, `channel::pkg`, `pkg[version='>=1',build=py*,channel=conda-forge]`."""
    text = origin.text.strip()
    if len(text) > MAX_SPEC:
        raise _bad_spec(origin, f"longer than {MAX_SPEC} characters")
    channel = None
    if "::" in text:
        channel, text = (part.strip() for part in text.split("::", 1))
        if not channel:
            raise _bad_spec(origin, "empty channel before `::`")
    match = _NAME_RE.match(text)
    if not match:
        raise _bad_spec(origin, "it does not start with a package name")
    name, rest = match.group(0), text[match.end():].strip()
    rest = _SEPARATOR_SPACE_RE.sub(r"\1", _OPERATOR_SPACE_RE.sub(r"\1", rest))
    version: str | None = None
    build: str | None = None
    bracket = _BRACKET_RE.match(rest)
    if bracket:
        body, position = bracket.group("body").strip(), 0
        while position < len(body):
            parsed = _BRACKET_ITEM_RE.match(body, position)
            if parsed is None or parsed.end() == position or \
                    parsed.group("key") not in ("version", "build", "channel"):
                raise _bad_spec(origin, f"unsupported bracket entry {shown(body[position:])} "
                                "(version=, build= and channel= are understood)")
            position = parsed.end()
            value = next(v for v in parsed.group("single", "double", "bare") if v is not None)
            if parsed.group("key") == "version":
                version = value.strip()
            elif parsed.group("key") == "build":
                build = value.strip()
            else:
                channel = value.strip()
    elif rest.startswith("=") and not rest.startswith("=="):
        version, _, build_part = rest[1:].partition("=")
        if not version:
            raise _bad_spec(origin, "`=` must be followed by a version")
        # `pkg=1.2` is fuzzy (1.2.*); with a build string the version is exact (as conda)
        version = f"=={version}" if build_part else _fuzzy(version)
        build = build_part or None
    elif rest:
        words = rest.split()
        if len(words) > 2:
            version, build = "".join(words[:-1]), words[-1]  # `>=1, <2 build`
        else:
            version = words[0]
            build = words[1] if len(words) == 2 else None
    if version is not None:
        _check_version(origin, version)
    return MatchSpec(name.lower(), version, build, channel, origin)


def _fuzzy(version: str) -> str:
    return version if version.endswith("*") else f"{version}.*"


_CLAUSE_RE = re.compile(r"^(==|!=|>=|<=|>|<|~=|=)?\s*([0-9*][A-Za-z0-9_.!+*-]*)$")


def _check_version(origin: Origin, version: str) -> None:
    for alternative in version.split("|"):
        for clause in alternative.split(","):
            if not _CLAUSE_RE.match(clause.strip()):
                raise _bad_spec(origin, f"malformed version constraint {shown(clause.strip())}")


def _bad_spec(origin: Origin, reason: str) -> RequestInvalid:
    return RequestInvalid(f"{origin}: not a conda match spec ({reason})",
                          fix="write NAME, NAME=1.2, NAME>=1,<2, NAME=1.2=BUILD or "
                          "CHANNEL::NAME")
