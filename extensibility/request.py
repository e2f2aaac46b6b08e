"""Which of the contract's inputs a start uses: first set wins (lib path, conda, requirements)."""

from __future__ import annotations

from pathlib import Path

from extensibility.errors import (
    CondaFileNotFound,
    LibPathNotFound,
    RequirementsNotFound,
)
from extensibility.lockfile import is_lock_file
from extensibility.log import Log
from extensibility.redact import redact_url
from extensibility.settings import Settings

NONE = "none"
LIB_PATH = "lib_path"
CONDA = "conda"
REQUIREMENTS = "requirements"
_NOT_FOUND = {LIB_PATH: LibPathNotFound, CONDA: CondaFileNotFound,
              REQUIREMENTS: RequirementsNotFound}


class Request:
    """Which input a start uses: its kind, its file or folder, the variable that named it."""

    def __init__(self, kind: str, path: Path | None = None, variable: str | None = None,
                 ignored: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.path = path
        self.variable = variable
        # variables that were set but lost to an earlier one in the precedence order
        self.ignored = ignored

    @property
    def installs(self) -> bool:
        """Whether packages are installed for it (a requirements or conda file)."""
        return self.kind in (REQUIREMENTS, CONDA)

    @property
    def is_lock(self) -> bool:
        """A requirements variable naming a PEP 751 lock file (`pylock.toml`,
        `pylock.NAME.toml`): installed as locked, nothing resolved (lockfile/)."""
        return self.kind == REQUIREMENTS and self.path is not None and is_lock_file(self.path)

    def describe(self) -> str:
        if self.kind == NONE:
            return "no extra packages requested"
        kind = "lock file" if self.is_lock else self.kind.replace("_", " ")
        return f"{kind} {self.path} (from {self.variable})"


def log_request(request: Request, log: Log) -> None:
    log.phase("inputs", request.describe())
    for variable in request.ignored:
        log.warning("inputs", f"{variable} is ignored: {request.variable} takes precedence")


def resolve_request(settings: Settings) -> Request:
    candidates: list[tuple[str, str, str]] = []  # (kind, variable, value), in precedence order
    if settings.extra_python_lib_path:
        candidates.append((LIB_PATH, "AZUREML_EXTRA_PYTHON_LIB_PATH",
                           settings.extra_python_lib_path))
    if settings.conda_yaml_abs_path:
        candidates.append((CONDA, "AZUREML_EXTRA_CONDA_YAML_ABS_PATH",
                           settings.conda_yaml_abs_path))
    if settings.conda_yaml:
        candidates.append((CONDA, "AZUREML_EXTRA_CONDA_YAML", settings.conda_yaml))
    if settings.requirements_txt:
        candidates.append((REQUIREMENTS, "AZUREML_EXTRA_REQUIREMENTS_TXT",
                           settings.requirements_txt))
    if not candidates:
        return Request(NONE)
    kind, variable, value = candidates[0]
    ignored = tuple(var for _, var, _ in candidates[1:])
    if "://" in value:
        raise _NOT_FOUND[kind](
            f"{variable} is a URL ({redact_url(value)}): it must name a "
            f"{'folder' if kind == LIB_PATH else 'file'} the container can read",
            fix="download or mount it, and set the variable to its path (relative to the "
            f"entry-script folder {settings.entry_script_dir}, or absolute)")
    if variable == "AZUREML_EXTRA_CONDA_YAML_ABS_PATH":
        path = Path(value)
    else:
        path = settings.entry_script_dir / value  # an absolute value stays absolute
    if kind == LIB_PATH:
        if not path.is_dir():
            raise LibPathNotFound(
                f"{variable}={value!r}: folder {path} does not exist",
                fix=f"mount the pre-installed packages at {path}, or set {variable} "
                f"relative to the entry-script folder {settings.entry_script_dir}",
            )
    elif kind == CONDA:
        if not path.is_file():
            raise CondaFileNotFound(
                f"{variable}={value!r}: file {path} does not exist",
                fix=f"put the conda file at {path}",
            )
    elif not path.is_file():
        raise RequirementsNotFound(
            f"{variable}={value!r}: file {path} does not exist",
            fix=f"put the requirements file at {path} (paths are relative to the "
            f"entry-script folder {settings.entry_script_dir}) or give an absolute path",
        )
    return Request(kind, path.absolute(), variable, ignored)
