"""Hostile and broken inputs, in-process: each gets its documented exit code and a message
that quotes no file contents; nothing hangs, nothing takes quadratic time, no traceback.

Work that must stay linear runs under a generous bound (`bounded`): a linear parse takes
milliseconds, the quadratic one it replaces took minutes on these inputs. The bound is a
safety net that ends a hang, not a timing assertion.
"""

from __future__ import annotations

import json
import os
import signal
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TypeVar

import pytest

from extensibility.cli import main
from extensibility.conda.file import read_conda_file
from extensibility.errors import PolicyViolation, RequestInvalid, SettingsError
from extensibility.fingerprint import fingerprint_path
from extensibility.installers.config import installer_environment
from extensibility.policy import apply_policy
from extensibility.redact import redact_url
from extensibility.requirements import parse_requirements
from extensibility.settings import Settings
from extensibility.store import Store, write_atomic
from tests.test_warm import Setup, cold_start

T = TypeVar("T")
BOUND = 60  # seconds: a hang or a quadratic blow-up, never a slow machine


@contextmanager
def bounded(seconds: int = BOUND) -> Iterator[None]:
    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def refused(call: Callable[[], T]) -> RequestInvalid:
    with pytest.raises(RequestInvalid) as caught, bounded():
        call()
    return caught.value


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --- 2, 3: redaction -----------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("http://user:p@ss@w0rd@host/simple/", "http://****@host/simple/"),
    ("/app/https:/user:TOKEN@host/r.txt", "/app/https:/****@host/r.txt"),
    ("git+https://tok@github.com/o/r@v1#egg=r", "git+https://****@github.com/o/r@v1#egg=r"),
    ("see https://a:b@h/x?token=t&x=1", "see https://****@h/x?token=****&x=1"),
    ("file:///tmp/a@b/c", "file:///tmp/a@b/c"),
])
def test_redaction_hides_the_whole_userinfo_up_to_the_last_at(text: str, expected: str) -> None:
    assert redact_url(text) == expected


def test_a_password_with_at_signs_never_reaches_plan_or_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    setup = Setup(tmp_path)
    (setup.app / "requirements.txt").write_text(
        "--extra-index-url http://deploy:p@ss@w0rd@127.0.0.1:9/simple/\n--no-index\ntinydep\n")
    for argv in (["plan", "--json", "--", "true"], ["plan", "--", "true"]):
        assert main(argv, setup.env) == 0
        out, err = capsys.readouterr()
        assert "w0rd" not in out + err and "p@ss" not in out + err
        assert "http://****@127.0.0.1:9/simple/" in out


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_url_where_a_path_belongs_exits_99_without_its_token(
    tmp_path: Path, log_format: str, capsys: pytest.CaptureFixture[str],
) -> None:
    setup = Setup(tmp_path)
    env = {**setup.env, "EXTENSIBILITY_LOG_FORMAT": log_format,
           "AZUREML_EXTRA_REQUIREMENTS_TXT": "https://user:TOKEN123@host.example/r.txt"}
    assert main(["run", "--", "true"], env) == 99
    err = capsys.readouterr().err
    assert "TOKEN123" not in err and "is a URL" in err


# --- 4: the policy is a boundary ----------------------------------------------------------

def test_with_a_policy_the_installer_sees_only_checked_configuration(tmp_path: Path) -> None:
    user = {"PIP_CONFIG_FILE": "/home/u/evil.conf", "UV_CONFIG_FILE": "/x/uv.toml",
            "UV_OVERRIDE": "/x/overrides.txt", "UV_INDEX_STRATEGY": "unsafe-best-match",
            "PIP_CONSTRAINT": "/x/c.txt", "XDG_CONFIG_HOME": "/x", "PIP_INDEX_URL": "https://i",
            "PATH": "/usr/bin"}
    env = installer_environment(user, "uv", tmp_path, 3, offline=False, checked_only=True)
    for name in ("UV_CONFIG_FILE", "UV_OVERRIDE", "UV_INDEX_STRATEGY", "PIP_CONSTRAINT"):
        assert name not in env
    assert env["PIP_CONFIG_FILE"] == os.devnull and env["UV_NO_CONFIG"] == "1"
    assert env["UV_INDEX_URL"] == "https://i"  # checked by the policy, passed on
    unchanged = installer_environment(user, "uv", tmp_path, 3, offline=False,
                                      checked_only=False)
    assert unchanged["UV_OVERRIDE"] == "/x/overrides.txt"  # no policy: the user's choice


def test_a_variable_holding_a_newline_cannot_add_an_option_line(tmp_path: Path) -> None:
    path = write(tmp_path / "r.txt", "tinydep==${V}\n")
    error = refused(lambda: parse_requirements(
        path, {"V": "1.0\n--extra-index-url https://evil.example/simple"}))
    assert str(error).startswith(f"{path}:1: ") and "control character" in str(error)
    assert "evil" not in str(error)


@pytest.mark.parametrize(("rule", "value"), [
    ("EXTENSIBILITY_ALLOWED_INDEX_HOSTS", "pypi.org"),
    ("EXTENSIBILITY_NO_DIRECT_REFERENCES", "1"),
])
def test_a_local_find_links_folder_is_refused_by_the_source_rules(
    tmp_path: Path, rule: str, value: str,
) -> None:
    (tmp_path / "wheels").mkdir()
    path = write(tmp_path / "r.txt", "-i https://pypi.org/simple\n-f ./wheels\ntinydep\n")
    with pytest.raises(PolicyViolation, match=f"r.txt:2: .*{rule}.*local folder"):
        apply_policy(Settings.from_environ({rule: value}), parse_requirements(path, {}), {})
    with pytest.raises(PolicyViolation, match="PIP_FIND_LINKS"):
        apply_policy(Settings.from_environ({rule: value}),
                     parse_requirements(write(tmp_path / "s.txt", "-i https://pypi.org/simple"
                                              "\ntinydep\n"), {}),
                     {"PIP_FIND_LINKS": str(tmp_path / "wheels")})


# --- 5, 6: nobody else can write the cache ------------------------------------------------

def _others_can_write(root: Path) -> list[str]:
    found = []
    for folder, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            info = os.lstat(os.path.join(folder, name))
            if not stat.S_ISLNK(info.st_mode) and info.st_mode & 0o022:
                found.append(os.path.join(folder, name))
    return found


@pytest.mark.parametrize("umask", [0o002, 0o000])
def test_under_a_loose_umask_the_cache_is_private_and_the_restart_serves(
    tmp_path: Path, umask: int, capsys: pytest.CaptureFixture[str],
) -> None:
    """A real build (uv, offline) under umask 002/000: nothing under the cache is writable by
    others, and the next start takes it (no exit 92 restart loop)."""
    setup = Setup(tmp_path)
    previous = os.umask(umask)
    try:
        assert main(["prepare", "--", "true"], setup.env) == 0, capsys.readouterr().err
        assert main(["prepare", "--", "true"], setup.env) == 0
    finally:
        os.umask(previous)
    assert "(request unchanged" in capsys.readouterr().err
    assert _others_can_write(tmp_path / "cache") == []  # uv's lock files included


@pytest.mark.parametrize("planted", [".extensibility", "bin", "site-packages", "warm", "locks"])
def test_a_folder_others_can_write_inside_the_cache_is_refused_with_92(
    tmp_path: Path, planted: str, capsys: pytest.CaptureFixture[str],
) -> None:
    setup = Setup(tmp_path)
    resolved = cold_start(setup, real=True)
    root = tmp_path / "cache" / "envs" / resolved.key
    target = {".extensibility": root / ".extensibility", "bin": root / "bin",
              "site-packages": next((root / "lib").glob("python*/site-packages"), None),
              "warm": tmp_path / "cache" / "warm", "locks": tmp_path / "cache" / "locks"}[planted]
    if target is None:  # the stand-in build made no site-packages: make it as a build would
        target = root / "lib" / "python3" / "site-packages"
    target.mkdir(parents=True, exist_ok=True)
    target.chmod(0o777)
    assert main(["run", "--", "true"], setup.env) == 92
    assert "can be written by other users" in capsys.readouterr().err


def test_temporary_and_lock_files_do_not_follow_links(tmp_path: Path) -> None:
    victim = write(tmp_path / "victim", "keep me\n")
    folder = tmp_path / "warm"
    folder.mkdir()
    note = folder / "note.json"
    note.symlink_to(victim)
    write_atomic(note, "{}")  # replaces the link itself, never writes through it
    assert victim.read_text() == "keep me\n" and not note.is_symlink()
    store = Store(tmp_path / "cache")
    store.locks.mkdir(parents=True)
    store.use_lock_path("k").symlink_to(victim)
    with pytest.raises(OSError):
        store.hold("k")
    (store.root / "journal.jsonl").symlink_to(victim)
    with pytest.raises(OSError):
        store.journal(event="x")
    assert victim.read_text() == "keep me\n"


# --- 7, 9: bounded work on any input ------------------------------------------------------

def test_long_lines_parse_in_linear_time_or_are_refused(tmp_path: Path) -> None:
    spaces = write(tmp_path / "a.txt", "tinydep" + " " * 60_000 + "\n")
    with bounded():
        assert [r.name for r in parse_requirements(spaces, {}).requirements] == ["tinydep"]
    for text in ("x" * 60_000 + "!\n", "a" + " " * 60_000 + "b @ x\n", "./" + "[" * 60_000,
                 "tinydep==" + "1" * 200_000 + "\n"):
        error = refused(partial(parse_requirements, write(tmp_path / "b.txt", text), {}))
        assert str(error).startswith(f"{tmp_path / 'b.txt'}:1: ")


def test_an_include_bomb_and_a_deep_include_chain_are_refused(tmp_path: Path) -> None:
    for level in range(18):  # each file includes the next one twice: 2**18 reads unbounded
        write(tmp_path / f"bomb{level}.txt", f"-r bomb{level + 1}.txt\n-r bomb{level + 1}.txt\n")
    write(tmp_path / "bomb18.txt", "tinydep\n")
    assert "too many included files" in str(refused(
        lambda: parse_requirements(tmp_path / "bomb0.txt", {})))
    for level in range(400):
        write(tmp_path / f"chain{level}.txt", f"-r chain{level + 1}.txt\n")
    write(tmp_path / "chain400.txt", "tinydep\n")
    assert "nested deeper than" in str(refused(
        lambda: parse_requirements(tmp_path / "chain0.txt", {})))


def test_fifos_devices_and_links_to_them_never_hang(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    write(project / "pyproject.toml", "[project]\nname = 'p'\n")
    os.mkfifo(project / "pipe")
    (project / "zero").symlink_to("/dev/zero")
    with bounded():
        first = fingerprint_path(project)
        assert fingerprint_path(project) == first
    os.mkfifo(tmp_path / "fifo.txt")
    (tmp_path / "zero.txt").symlink_to("/dev/zero")
    for name in ("fifo.txt", "zero.txt"):
        request = write(tmp_path / "r.txt", f"-r {name}\n")
        assert "not a regular file" in str(refused(partial(parse_requirements, request, {})))


# --- 8, 13: settings ----------------------------------------------------------------------

@pytest.mark.parametrize(("variable", "value"), [
    ("EXTENSIBILITY_LOCK_TIMEOUT", "nan"), ("EXTENSIBILITY_LOCK_TIMEOUT", "inf"),
    ("EXTENSIBILITY_INSTALL_TIMEOUT", "nan"), ("EXTENSIBILITY_INSTALL_TIMEOUT", "1e999"),
    ("EXTENSIBILITY_INSTALL_TIMEOUT", "9" * 40), ("EXTENSIBILITY_SERVER_PORT", "\u00b2"),
    ("EXTENSIBILITY_SERVER_PORT", "\u0663"), ("EXTENSIBILITY_RETRIES", "\u0663"),
    ("EXTENSIBILITY_GC_MAX_SIZE", "\u0663G"), ("EXTENSIBILITY_ALLOWED_INDEX_HOSTS", ",,,"),
])
def test_settings_are_finite_ascii_and_meaningful(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable) as caught:
        Settings.from_environ({variable: value})
    assert caught.value.exit_code == 93


def test_a_utf8_bom_is_accepted_like_pip_does(tmp_path: Path) -> None:
    path = tmp_path / "r.txt"
    path.write_bytes(b"\xef\xbb\xbftinydep==1.0\n")
    assert [r.key_text for r in parse_requirements(path, {}).requirements] == ["tinydep==1.0"]
    conda = tmp_path / "conda.yaml"
    conda.write_bytes(b"\xef\xbb\xbfdependencies:\n  - numpy=1.26\n")
    assert [d.name for d in read_conda_file(conda, conda.read_bytes()).dependencies] == ["numpy"]


# --- 10: no traceback for broken inputs ---------------------------------------------------

def test_deep_yaml_and_a_malformed_channel_fail_cleanly(tmp_path: Path) -> None:
    deep = tmp_path / "deep.yaml"
    deep.write_text("dependencies: " + "[" * 20_000 + "]" * 20_000 + "\n")
    assert "nested too deeply" in str(refused(lambda: read_conda_file(deep, deep.read_bytes())))
    from extensibility.conda.request import read_conda_request

    bad = tmp_path / "conda.yaml"
    bad.write_text("channels: ['http://[::1']\ndependencies:\n  - hello-native=1.0\n")
    settings = Settings.from_environ({"EXTENSIBILITY_ALLOWED_INDEX_HOSTS": "127.0.0.1",
                                      "EXTENSIBILITY_CONDA_STRATEGY": "prefix",
                                      "EXTENSIBILITY_CACHE_DIR": str(tmp_path / "c")})
    error = refused(lambda: read_conda_request(settings, bad, bad.read_bytes(), {}))
    assert "is not a valid URL" in str(error)


@pytest.mark.parametrize("damage", ["empty interpreter", "empty activation"])
def test_a_damaged_complete_environment_is_rebuilt(
    tmp_path: Path, damage: str, capsys: pytest.CaptureFixture[str],
) -> None:
    setup = Setup(tmp_path)
    assert main(["prepare", "--", "true"], setup.env) == 0
    [entry] = Store(tmp_path / "cache").entries()
    if damage == "empty interpreter":
        python = entry.path / "bin" / "python"
        python.unlink()
        python.write_text("")
        python.chmod(0o755)
    else:
        (entry.path / ".extensibility" / "activation.json").write_text("")
    capsys.readouterr()
    assert main(["prepare", "--", "true"], setup.env) == 0
    assert "is damaged" in capsys.readouterr().err


# --- 11: errors quote no file contents ----------------------------------------------------

def test_an_included_system_file_is_not_quoted(tmp_path: Path) -> None:
    passwd = refused(lambda: parse_requirements(write(tmp_path / "r.txt", "-r /etc/passwd\n"),
                                                {}))
    assert "root:" not in str(passwd) and "/etc/passwd:1: " in str(passwd)
    environ = refused(lambda: parse_requirements(
        write(tmp_path / "r.txt", "-r /proc/self/environ\n"), {}))
    assert os.environ["PATH"] not in str(environ)


# --- 12: what reaches the installer -------------------------------------------------------

def test_garbage_urls_fail_at_parse_time_real_ones_pass(tmp_path: Path) -> None:
    for text in ("https://\n", "http://[::1/x.whl\n", "git+https://\n"):
        error = refused(partial(parse_requirements, write(tmp_path / "r.txt", text), {}))
        assert str(error).startswith(f"{tmp_path / 'r.txt'}:1: ") and "URL" in str(error)
    fine = write(tmp_path / "ok.txt", "git+file:///srv/repo#egg=a\nsvn+svn://h/r#egg=b\n"
                 "https://h.example/c-1.0-py3-none-any.whl\nd\t==1.0\n")
    assert len(parse_requirements(fine, {}).requirements) == 4


def test_per_requirement_options_under_uv_cite_the_users_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    setup = Setup(tmp_path)
    (setup.app / "requirements.txt").write_text(
        "--no-index\n--find-links wheels\ntinydep --config-settings=x=1\n")
    env = {**setup.env, "EXTENSIBILITY_INSTALLER": "uv"}
    assert main(["run", "--", "true"], env) == 95
    err = capsys.readouterr().err
    assert f"{setup.app / 'requirements.txt'}:3: " in err and "EXTENSIBILITY_INSTALLER=pip" in err


def test_the_key_document_of_an_unreadable_home_is_computed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".config" / "pip").mkdir(parents=True)
    os.mkfifo(home / ".config" / "pip" / "pip.conf")  # neither readable as a file nor a hang
    from extensibility.installers.config import installer_settings

    with bounded():
        settings = installer_settings("pip", {"HOME": str(home)})
    assert json.dumps(settings)


def test_a_download_cache_others_could_change_is_cleared_before_a_build(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """umask 002 left uv's cache group-writable: another user could edit a cached wheel that
    the next build installs. The build clears it first (it only holds downloads)."""
    setup = Setup(tmp_path)
    planted = tmp_path / "cache" / "downloads" / "uv" / "archive-v0" / "x" / "module.py"
    planted.parent.mkdir(parents=True)
    planted.write_text("print('edited by someone else')\n")
    planted.chmod(0o664)
    assert main(["prepare", "--", "true"], setup.env) == 0
    err = capsys.readouterr().err
    assert "could be changed by other users: it was cleared" in err
    assert not planted.exists()
    assert _others_can_write(tmp_path / "cache") == []
