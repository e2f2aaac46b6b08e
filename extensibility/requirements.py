"""Read requirements files the way pip reads them, into one normalised value.

Follows pip's order: join `\\` continuations, drop comments, expand `${VAR}`, then split a
line into its requirement and its options. Everything malformed is reported with the file,
the line number and the offending text, before any install starts.

One deliberate difference from pip: a relative local path in a requirement line is taken
relative to the file that contains it (pip uses the working directory), because a deployment's
files travel together and the entrypoint's working directory is not the user's choice.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from packaging.requirements import InvalidRequirement
from packaging.requirements import Requirement as Pep508Requirement

from extensibility.errors import RequestInvalid
from extensibility.fingerprint import fingerprint_path, fingerprint_wheelhouse, sha256_bytes
from extensibility.image import canonical_name
from extensibility.inputs import read_request_file
from extensibility.redact import redact_url, shown

# Bounds on what one request may make us read: a hostile or broken file fails fast, clearly
MAX_INCLUDE_DEPTH = 32
MAX_FILES = 256
MAX_LINE = 64 << 10  # characters of one logical line (continuations joined)
_BOM = b"\xef\xbb\xbf"
_ENV_VAR_RE = re.compile(r"\$\{([A-Z0-9_]+)\}")
_VCS_PREFIXES = ("git+", "hg+", "svn+", "bzr+")
_URL_SCHEMES = ("http", "https", "ssh", "git", "svn", "bzr", "ftp", "sftp")
_ARCHIVE_SUFFIXES = (".whl", ".zip", ".tar.gz", ".tgz", ".tar.bz2", ".tbz", ".tar.xz", ".tar")
_HASH_RE = re.compile(r"^(sha256|sha384|sha512):[0-9a-fA-F]+$")

# option -> (attribute, takes a value)
_FILE_OPTIONS: dict[str, tuple[str, bool]] = {
    "-r": ("requirement", True), "--requirement": ("requirement", True),
    "-c": ("constraint", True), "--constraint": ("constraint", True),
    "-e": ("editable", True), "--editable": ("editable", True),
    "-i": ("index_url", True), "--index-url": ("index_url", True),
    "--extra-index-url": ("extra_index_urls", True),
    "-f": ("find_links", True), "--find-links": ("find_links", True),
    "--trusted-host": ("trusted_hosts", True),
    "--only-binary": ("only_binary", True),
    "--no-binary": ("no_binary", True),
    "--use-feature": ("use_feature", True),
    "--no-index": ("no_index", False),
    "--pre": ("pre", False),
    "--require-hashes": ("require_hashes", False),
    "--prefer-binary": ("prefer_binary", False),
}
_REQUIREMENT_OPTIONS = {
    "--hash": "hash", "--config-settings": "config", "--global-option": "config",
}


@dataclass(frozen=True)
class Origin:
    path: Path
    lineno: int
    text: str

    def __str__(self) -> str:
        return f"{self.path}:{self.lineno}" if self.lineno else str(self.path)


@dataclass(frozen=True)
class Requirement:
    install_text: str  # what the installer is given (absolute paths)
    key_text: str  # canonical and location-independent (local contents by hash)
    name: str | None  # canonical project name, when the line names one
    origin: Origin
    editable: bool = False
    hashes: tuple[str, ...] = ()
    extra_options: tuple[str, ...] = ()
    local: tuple[str, str] | None = None  # (absolute path, fingerprint) of a local artifact
    version: str | None = None  # a lock file's entry: the exact version it installs

    def installer_line(self) -> str:
        parts = [f"-e {self.install_text}" if self.editable else self.install_text]
        parts += [f"--hash={h}" for h in self.hashes]
        parts += list(self.extra_options)
        return " ".join(parts)


@dataclass(frozen=True)
class IndexOptions:
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    no_index: bool = False
    pre: bool = False
    require_hashes: bool = False
    prefer_binary: bool = False
    only_binary: tuple[str, ...] = ()
    no_binary: tuple[str, ...] = ()
    trusted_hosts: tuple[str, ...] = ()


@dataclass(frozen=True)
class RequirementsSpec:
    requirements: tuple[Requirement, ...]
    constraints: tuple[Requirement, ...]
    options: IndexOptions
    files: tuple[Path, ...]  # every file read, the top one first
    # path -> sha256 of the bytes the parser read (the warm shortcut re-checks the includes)
    digests: Mapping[str, str] = field(default_factory=dict)
    # local inputs that take part (find-links folders), path -> fingerprint
    local_inputs: Mapping[str, str] = field(default_factory=dict)
    # what the warm shortcut re-checks too (warm.py): ${VAR} names used -> value (None: unset),
    # and local requirement paths -> fingerprint
    variables: Mapping[str, str | None] = field(default_factory=dict)
    local_files: Mapping[str, str] = field(default_factory=dict)
    # every option line, for rules that must cite where an option was given
    option_lines: tuple[tuple[str, str | None, Origin], ...] = ()
    # a lock file's selection (lockfile/read.py): installed exactly as it is, without
    # dependencies or resolution
    exact: bool = False


@dataclass
class _Parser:
    env: Mapping[str, str]
    requirements: list[Requirement] = field(default_factory=list)
    constraints: list[Requirement] = field(default_factory=list)
    options: IndexOptions = field(default_factory=IndexOptions)
    files: list[Path] = field(default_factory=list)
    digests: dict[str, str] = field(default_factory=dict)
    local_inputs: dict[str, str] = field(default_factory=dict)
    variables: dict[str, str | None] = field(default_factory=dict)
    option_lines: list[tuple[str, str | None, Origin]] = field(default_factory=list)

    def parse_file(self, path: Path, *, constraint: bool, stack: tuple[Path, ...],
                   data: bytes | None = None) -> None:
        """Parse `path` (`data`: its bytes, when the caller has read them already)."""
        real = path.resolve()
        if real in stack:
            chain = " -> ".join(str(p) for p in (*stack, real))
            raise RequestInvalid(f"requirements files include each other: {chain}",
                                 fix="remove the circular -r/-c include")
        if len(stack) >= MAX_INCLUDE_DEPTH or len(self.files) >= MAX_FILES:
            raise RequestInvalid(
                f"{path}: too many included files (more than {MAX_FILES} in all, or nested "
                f"deeper than {MAX_INCLUDE_DEPTH})", fix="flatten the -r/-c includes")
        if data is None:
            data = read_request_file(path, "requirements file")
        try:
            text = data.removeprefix(_BOM).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RequestInvalid(f"{path}: not UTF-8 text ({exc.reason})",
                                 fix="save the requirements file as UTF-8") from None
        self.files.append(path)
        self.digests[str(path)] = sha256_bytes(data)
        for name in _ENV_VAR_RE.findall(text):
            self.variables[name] = self.env.get(name)
        for lineno, line in _logical_lines(text, self.env):
            self._parse_line(Origin(path, lineno, line), constraint, (*stack, real))

    def _parse_line(self, origin: Origin, constraint: bool, stack: tuple[Path, ...]) -> None:
        if len(origin.text) > MAX_LINE:
            raise _invalid(origin, f"the line is longer than {MAX_LINE} characters")
        if not origin.text.replace("\t", " ").isprintable():
            raise _invalid(origin, "the line holds a control character (from a ${VAR} value "
                           "with a newline?)", fix="remove it; a ${VAR} must expand to text "
                           "on one line")
        args, option_text = _break_args_options(origin.text)
        try:
            tokens = shlex.split(option_text)
        except ValueError as exc:
            raise _invalid(origin, f"cannot split options ({exc})") from None
        if args:
            self._add_requirement(origin, args, tokens, constraint, editable=False)
            return
        for option, value in _iter_options(origin, tokens):
            self._apply_option(origin, option, value, constraint, stack)

    def _apply_option(self, origin: Origin, option: str, value: str | None,
                      constraint: bool, stack: tuple[Path, ...]) -> None:
        attribute, _ = _FILE_OPTIONS[option]
        self.option_lines.append((attribute, value, origin))
        base = origin.path.parent
        if attribute in ("requirement", "constraint"):
            assert value is not None
            if "://" in value:
                raise _invalid(origin, "remote requirements files are not supported",
                               fix="download the file next to this one and include it "
                               "by a relative path")
            included = base / value
            if not _safe(included.exists):
                raise _invalid(origin, "the included file does not exist",
                               fix=f"fix the path; it is relative to the including file's "
                               f"folder {base}")
            self.parse_file(included, constraint=constraint or attribute == "constraint",
                            stack=stack)
        elif attribute == "editable":
            assert value is not None
            self._add_requirement(origin, value, [], constraint, editable=True)
        elif attribute == "use_feature":
            pass  # pip feature flags change pip's behaviour, not what gets installed
        elif attribute == "find_links":
            assert value is not None
            local = base / value
            if "://" not in value and _safe(local.is_dir):
                self.local_inputs[str(local.absolute())] = fingerprint_wheelhouse(local)
                value = str(local.absolute())
            self.options = replace(self.options, find_links=(*self.options.find_links, value))
        elif attribute == "index_url":
            self.options = replace(self.options, index_url=value)
        else:
            # a flag becomes True, a repeatable option gains a value
            current = getattr(self.options, attribute)
            changes: dict[str, object] = {attribute: True if value is None else (*current, value)}
            self.options = replace(self.options, **changes)  # type: ignore[arg-type]

    def _add_requirement(self, origin: Origin, text: str, tokens: list[str],
                         constraint: bool, *, editable: bool) -> None:
        hashes: list[str] = []
        extra: list[str] = []
        for option, value in _iter_requirement_options(origin, tokens):
            if _REQUIREMENT_OPTIONS[option] == "hash":
                if not _HASH_RE.match(value):
                    raise _invalid(origin, f"malformed hash {shown(value)}",
                                   fix="write --hash=sha256:<64 hex digits>")
                hashes.append(value)
            else:
                extra.append(f"{option}={shlex.quote(value)}")
        requirement = _classify(origin, text, editable)
        requirement = replace(requirement, hashes=tuple(hashes), extra_options=tuple(extra))
        (self.constraints if constraint else self.requirements).append(requirement)


def parse_requirements(path: Path, env: Mapping[str, str],
                       data: bytes | None = None) -> RequirementsSpec:
    """Parse `path` (`data`: its bytes, if already read) and everything it includes.
    `env` is used for ${VAR} expansion only."""
    parser = _Parser(env)
    parser.parse_file(path, constraint=False, stack=(), data=data)
    return _spec(parser)


def parse_embedded(path: Path, lines: Sequence[tuple[int, str]], env: Mapping[str, str],
                   extra: Sequence[tuple[Origin, str]] = (),
                   digest: str | None = None) -> RequirementsSpec:
    """Requirement lines that live inside another file (a conda file's `pip:` section), each
    with its line number there; `extra` adds requirements made elsewhere (conda dependencies
    translated to PEP 508), each cited by its own origin. Relative paths (`-r`, local
    packages) are taken relative to `path`'s folder."""
    parser = _Parser(env)
    parser.files.append(path)
    if digest is not None:
        parser.digests[str(path)] = digest
    for origin, text in extra:
        parser._add_requirement(origin, text, [], False, editable=False)
    for lineno, raw in lines:
        for name in _ENV_VAR_RE.findall(raw):
            parser.variables[name] = env.get(name)
        for _, line in _logical_lines(raw, env):
            parser._parse_line(Origin(path, lineno, line), False, (path.resolve(),))
    return _spec(parser)


def _spec(parser: _Parser) -> RequirementsSpec:
    return RequirementsSpec(
        requirements=tuple(parser.requirements),
        constraints=tuple(parser.constraints),
        options=parser.options,
        files=tuple(parser.files),
        digests=dict(parser.digests),
        local_inputs=dict(parser.local_inputs),
        variables=dict(parser.variables),
        option_lines=tuple(parser.option_lines),
        local_files={r.local[0]: r.local[1] for r in (*parser.requirements, *parser.constraints)
                     if r.local},
    )


def _logical_lines(text: str, env: Mapping[str, str]) -> Iterator[tuple[int, str]]:
    pending: list[str] = []
    first = 0
    for lineno, raw in enumerate(text.splitlines(), start=1):
        if raw.endswith("\\") and not raw.lstrip().startswith("#"):
            if not pending:
                first = lineno
            pending.append(raw[:-1])
            continue
        if pending:
            pending.append(raw)
            line, number = "".join(pending), first
            pending = []
        else:
            line, number = raw, lineno
        line = _strip_comment(line).strip()
        if line:
            yield number, _ENV_VAR_RE.sub(lambda m: env.get(m.group(1), m.group(0)), line)
    if pending:  # the file ended inside a continuation
        line = _strip_comment("".join(pending)).strip()
        if line:
            yield first, _ENV_VAR_RE.sub(lambda m: env.get(m.group(1), m.group(0)), line)


def _safe(test: Callable[[], bool]) -> bool:
    """A file test that answers False, not OSError, for a name too long or unreadable."""
    try:
        return test()
    except (OSError, ValueError):
        return False


def _strip_comment(line: str) -> str:
    """pip's comment rule (a `#` at the start or after white space), in linear time."""
    at = line.find("#")
    while at != -1:
        if at == 0 or line[at - 1].isspace():
            return line[:at]
        at = line.find("#", at + 1)
    return line


def _break_args_options(line: str) -> tuple[str, str]:
    """pip's split: the requirement is every token before the first one starting with '-'."""
    tokens = line.split(" ")
    args: list[str] = []
    for index, token in enumerate(tokens):
        if token.startswith("-"):
            return " ".join(args), " ".join(tokens[index:])
        args.append(token)
    return " ".join(args), ""


def _iter_options(origin: Origin, tokens: list[str]) -> Iterator[tuple[str, str | None]]:
    index = 0
    while index < len(tokens):
        token = tokens[index]
        option, value = _split_option(token, _FILE_OPTIONS)
        if option is None:
            raise _invalid(origin, f"unknown or misplaced option {shown(token)}",
                           fix="see `pip help install` for what a requirements file accepts")
        if _FILE_OPTIONS[option][1]:
            if value is None:
                index += 1
                if index >= len(tokens):
                    raise _invalid(origin, f"option {option} needs a value")
                value = tokens[index]
        elif value is not None:
            raise _invalid(origin, f"option {option} takes no value")
        yield option, value
        index += 1


def _iter_requirement_options(origin: Origin, tokens: list[str]) -> Iterator[tuple[str, str]]:
    index = 0
    while index < len(tokens):
        option, value = _split_option(tokens[index], _REQUIREMENT_OPTIONS)
        if option is None:
            raise _invalid(origin, f"option {shown(tokens[index])} is not allowed after a "
                           "requirement", fix="put global options on a line of their own")
        if value is None:
            index += 1
            if index >= len(tokens):
                raise _invalid(origin, f"option {option} needs a value")
            value = tokens[index]
        yield option, value
        index += 1


def _split_option(token: str, known: Mapping[str, object]) -> tuple[str | None, str | None]:
    if token in known:
        return token, None
    if token.startswith("--") and "=" in token:
        name, value = token.split("=", 1)
        return (name, value) if name in known else (None, None)
    if len(token) > 2 and not token.startswith("--") and token[:2] in known:
        return token[:2], token[2:]  # short option with its value attached: -rfile
    return None, None


def _invalid(origin: Origin, reason: str, fix: str | None = None) -> RequestInvalid:
    """FILE:LINE and the reason; never the line itself (an included file may be anything,
    `-r /proc/self/environ` included: its contents stay out of logs)."""
    return RequestInvalid(f"{origin}: {reason}", fix=fix or "correct or remove this line")



def _classify(origin: Origin, text: str, editable: bool) -> Requirement:
    is_url = "://" in text or text.startswith(_VCS_PREFIXES)
    looks_like_path = (
        text.startswith((".", "/", "~"))
        or os.sep in text.split(";")[0].split("[")[0]
        or text.split(";")[0].strip().lower().endswith(_ARCHIVE_SUFFIXES)
    )
    if is_url and not _is_pep508_url(text):
        return _url_requirement(origin, text, editable)
    if not is_url and (looks_like_path or editable):
        return _path_requirement(origin, text, editable)
    try:
        parsed = Pep508Requirement(text)
    except InvalidRequirement as exc:
        raise _invalid(origin, f"not a valid requirement ({_first_line(str(exc))})",
                       fix="write NAME, NAME==VERSION, NAME>=X,<Y, a URL or a local path") from None
    name = canonical_name(parsed.name)
    key = name
    if parsed.extras:
        key += "[" + ",".join(sorted(canonical_name(e) for e in parsed.extras)) + "]"
    if parsed.url:
        key += f" @ {_url_key(parsed.url)}"
    else:
        key += str(parsed.specifier)
    if parsed.marker:
        key += f"; {parsed.marker}"
    return Requirement(install_text=str(parsed), key_text=key, name=name, origin=origin,
                       editable=editable)


_NAMED_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(\[[^\]]*\])?\Z")


def _is_pep508_url(text: str) -> bool:
    """`name @ https://...` is a named requirement, not a bare URL."""
    name, at, rest = text.partition("@")
    return bool(at and rest.strip() and _NAMED_RE.match("".join(name.split())))


def _split_marker(text: str, separator: str) -> tuple[str, str]:
    if separator in text:
        left, marker = text.split(separator, 1)
        return left.strip(), marker.strip()
    return text.strip(), ""


def _url_requirement(origin: Origin, text: str, editable: bool) -> Requirement:
    url, marker = _split_marker(text, "; ")
    if url.startswith("file:"):
        local = Path(url[len("file://"):] if url.startswith("file://") else url[len("file:"):])
        return _path_requirement(origin, str(local) + (f"; {marker}" if marker else ""), editable)
    _check_url(origin, url)
    key = _url_key(url) + (f"; {marker}" if marker else "")
    return Requirement(install_text=text, key_text=key, name=_egg_name(url), origin=origin,
                       editable=editable)


def _check_url(origin: Origin, url: str) -> None:
    """A URL requirement the installers can fetch: a known scheme and a host."""
    from urllib.parse import urlsplit

    vcs = url.startswith(_VCS_PREFIXES)
    try:
        parts = urlsplit(url.split("+", 1)[1] if vcs else url)
    except ValueError:
        parts = None
    local_vcs = vcs and parts is not None and parts.scheme == "file" and bool(parts.path)
    fetchable = parts is not None and parts.scheme in _URL_SCHEMES and bool(parts.hostname)
    if not (local_vcs or fetchable):
        raise _invalid(origin, "not a valid URL requirement (a URL needs a scheme such as "
                       "https and a host)", fix="write the URL in full, e.g. "
                       "https://host/path/name-1.0-py3-none-any.whl, or NAME @ URL")


def _path_requirement(origin: Origin, text: str, editable: bool) -> Requirement:
    location, marker = _split_marker(text, ";")
    extras = ""
    bracket = location.rfind("[") if location.endswith("]") else -1
    if bracket != -1 and "]" not in location[bracket:-1]:
        location, extras = location[:bracket], location[bracket:]
    path = Path(os.path.expanduser(location))
    if not path.is_absolute():
        path = origin.path.parent / path
    if not _safe(path.exists):
        raise _invalid(origin, "the local path does not exist",
                       fix=f"fix the path; it is relative to the requirements file's folder "
                       f"{origin.path.parent}")
    if path.is_dir() and not ((path / "pyproject.toml").is_file() or (path / "setup.py").is_file()):
        raise _invalid(origin, "the local folder is not a Python project (no pyproject.toml "
                       "or setup.py)")
    absolute = str(path.absolute())
    suffix = extras + (f"; {marker}" if marker else "")
    fingerprint = fingerprint_path(path)
    key = f"local:{path.name} {fingerprint}{suffix}"
    return Requirement(install_text=absolute + suffix, key_text=key, name=None, origin=origin,
                       editable=editable, local=(absolute, fingerprint))


def _url_key(url: str) -> str:
    return redact_url(url)


def _egg_name(url: str) -> str | None:
    match = re.search(r"[#&]egg=([A-Za-z0-9._-]+)", url)
    return canonical_name(match.group(1)) if match else None


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else text
