"""The warm shortcut in-process: a hit, each kind of miss, and a file changed during a build.

A build is stood in for by what it leaves in the store (an interpreter link and the marker):
the shortcut only looks at the note, the store and the inputs.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from extensibility import warm
from extensibility.image import Image
from extensibility.key import canonical_json
from extensibility.log import Log
from extensibility.request import REQUIREMENTS, Request
from extensibility.resolve import Resolved, resolve
from extensibility.settings import Settings
from extensibility.start import Start
from tests.wheels import build_wheel


class Setup:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.app = tmp_path / "app"
        self.app.mkdir()
        self.site = tmp_path / "image-site"
        self.site.mkdir()
        (self.site / "framework-1.0.dist-info").mkdir()
        self.wheels = self.app / "wheels"
        self.wheels.mkdir()
        build_wheel(self.wheels, "tinydep", "1.0")
        build_wheel(self.wheels, "greeting", "1.0", requires=["tinydep"])
        (self.app / "base.txt").write_text("tinydep\n")
        (self.app / "requirements.txt").write_text(
            "--no-index\n--find-links wheels\n-r base.txt\ngreeting==${GREETING}\n")
        self.env = {"GREETING": "1.0", "EXTENSIBILITY_CACHE_DIR": str(tmp_path / "cache"),
                    "AML_APP_ROOT": str(self.app), "AZUREML_ENTRY_SCRIPT": "score.py",
                    "AZUREML_EXTRA_REQUIREMENTS_TXT": "requirements.txt",
                    "PIP_CONFIG_FILE": "/dev/null", "UV_NO_CONFIG": "1", "PATH": "/usr/bin:/bin"}
        self.installer: tuple[str, str | None] = ("pip", None)
        self.python_version = "3.11.7"

    def start(self, changed: dict[str, str] | None = None, *, real: bool = False) -> Start:
        """A start over a stand-in image (`real`: this interpreter and its installer, as
        a child process running the CLI would see them)."""
        env = {**self.env, **(changed or {})}
        request = Request(REQUIREMENTS, self.app / "requirements.txt",
                          "AZUREML_EXTRA_REQUIREMENTS_TXT")
        if real:
            return Start(Settings.from_environ(env), env, ["true"], request)
        image = Image(executable=sys.executable, prefix=sys.prefix, version=self.python_version,
                      cache_tag="cpython-311", abiflags="", platform="linux-x86_64",
                      site_dirs=(str(self.site),))
        return Start(Settings.from_environ(env), env, ["true"], request, image=image,
                     installer=self.installer)


def log() -> Log:
    return Log("text")


def find(start: Start) -> Path | None:
    """The warm shortcut as a start takes it: its note's path first, then the lookup."""
    return warm.find(start, warm.note_path(start), log())


def stand_in_for_a_build(start: Start, resolved: Resolved) -> None:
    """What a completed build leaves: the interpreter and the marker (written last)."""
    store = start.store
    store.begin(resolved.key)
    python = store.env_dir(resolved.key) / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.symlink_to(sys.executable)
    store.publish(resolved.key, canonical_json(resolved.document),
                  {"request_file": str(start.request_path)})


def cold_start(setup: Setup, changed: dict[str, str] | None = None, *,
               real: bool = False) -> Resolved:
    start = setup.start(changed, real=real)
    resolved = resolve(start, log())
    stand_in_for_a_build(start, resolved)
    warm.remember(resolved, warm.note_path(start))
    return resolved


def test_an_unchanged_request_is_a_hit_without_parsing(tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    resolved = cold_start(setup)
    found = find(setup.start())
    assert found == setup.start().store.env_dir(resolved.key)


def _edit_include(s: Setup) -> None:
    (s.app / "base.txt").write_text("tinydep\nhello-cli\n")


def _edit_request(s: Setup) -> None:
    (s.app / "requirements.txt").write_text("--no-index\n--find-links wheels\n-r base.txt\n"
                                          "greeting\n")


def _new_wheel(s: Setup) -> None:
    build_wheel(s.wheels, "tinydep", "2.0")


def _image_package(s: Setup) -> None:
    (s.site / "numpy-2.0.0.dist-info").mkdir()


def _installer(s: Setup) -> None:
    s.installer = ("uv", "/nonexistent/uv")  # resolving never runs it


def _interpreter(s: Setup) -> None:
    s.python_version = "3.11.8"


MISSES: dict[str, tuple[Callable[[Setup], None], dict[str, str]]] = {
    "the request file": (_edit_request, {}),
    "an included file": (_edit_include, {}),
    "a ${VAR} value": (lambda s: None, {"GREETING": "1.0.0"}),
    "the find-links folder": (_new_wheel, {}),
    "the image's packages": (_image_package, {}),
    "an installer variable": (lambda s: None, {"PIP_PRE": "1"}),
    "the protection mode": (lambda s: None, {"EXTENSIBILITY_PROTECT": "off"}),
    "a policy rule": (lambda s: None, {"EXTENSIBILITY_NO_EXTRA_INDEX": "1"}),
    "the installer": (_installer, {}),
    "the interpreter": (_interpreter, {}),
}
# key document fields no start can change (a new schema is a new release of this project)
FIXED_FIELDS = {"schema"}


@pytest.mark.parametrize("what", sorted(MISSES))
def test_each_input_the_key_depends_on_makes_a_miss(what: str, tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    cold_start(setup)
    change, variables = MISSES[what]
    change(setup)
    assert find(setup.start(variables)) is None
    resolved = cold_start(setup, variables)  # the full path builds anew, then it is a hit
    assert find(setup.start(variables)) == \
        setup.start().store.env_dir(resolved.key)


def test_every_field_of_the_key_document_is_seen_by_the_warm_path(tmp_path: Path) -> None:
    """Each field of the key document is changed by one of MISSES, and each of those changes
    is a warm miss (the test above): a field added to key.py that no case here changes fails
    this test, so it cannot be forgotten by the warm digest and the note."""
    changed: set[str] = set()
    fields: set[str] = set()
    for number, what in enumerate(sorted(MISSES)):
        (tmp_path / str(number)).mkdir()
        setup = Setup(tmp_path / str(number))
        before = resolve(setup.start(), log()).document
        change, variables = MISSES[what]
        change(setup)
        after = resolve(setup.start(variables), log()).document
        changed |= {f for f in {*before, *after} if before.get(f) != after.get(f)}
        fields |= set(before)
    assert changed | FIXED_FIELDS == fields


def test_a_file_changed_during_the_build_is_not_noted_as_built(tmp_path: Path) -> None:
    """The note is written from what was read before the build, never re-read after."""
    setup = Setup(tmp_path)
    request, include = setup.app / "requirements.txt", setup.app / "base.txt"
    old_request, old_include = request.read_text(), include.read_text()
    start = setup.start()
    resolved = resolve(start, log())
    # the build runs; meanwhile a rollout updates both mounted files
    request.write_text(old_request + "hello-cli\n")
    include.write_text("tinydep>=1\n")
    stand_in_for_a_build(start, resolved)
    warm.remember(resolved, warm.note_path(start))
    assert find(setup.start()) is None  # the new content is not the built one
    include.write_text(old_include)
    assert find(setup.start()) is None  # the request file still differs
    request.write_text(old_request)
    assert find(setup.start()) == start.store.env_dir(resolved.key)


def test_a_note_without_its_environment_or_unreadable_is_a_miss(tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    resolved = cold_start(setup)
    start = setup.start()
    note = warm.note_path(start)
    note.write_text("{not json")
    assert find(start) is None
    note.write_text(json.dumps({"key": resolved.key}))  # a note of another schema
    assert find(start) is None
    note.write_text(json.dumps({"variables": {}, "files": {}, "wheelhouses": {}, "local": {},
                                "channels": {}, "key": "../../elsewhere"}))
    assert find(start) is None
    warm.remember(resolved, warm.note_path(start))
    start.store.discard(resolved.key)  # removed by a clean-up
    assert find(start) is None
