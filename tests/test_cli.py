"""The CLI in-process through `main(argv, environ)`, where no subprocess is needed; the warm
path's imports in a child (a fresh interpreter is the only honest way to count them)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from extensibility.cli import main, plain_run
from extensibility.commands.doctor import diagnose
from extensibility.log import NORMAL, QUIET, VERBOSE
from extensibility.settings import Settings
from tests.support import REPO, free_port
from tests.test_warm import Setup, cold_start


def contract(tmp_path: Path, **extra: str) -> dict[str, str]:
    app = tmp_path / "app"
    app.mkdir(exist_ok=True)
    return {"AML_APP_ROOT": str(app), "AZUREML_ENTRY_SCRIPT": "score.py",
            "EXTENSIBILITY_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin",
            "PIP_CONFIG_FILE": "/dev/null", **extra}


@pytest.mark.parametrize(("argv", "plain"), [
    (["run"], ([], NORMAL)),
    (["run", "--", "gunicorn", "-w", "2"], (["gunicorn", "-w", "2"], NORMAL)),
    (["run", "true", "--flag"], (["true", "--flag"], NORMAL)), (["run", "--help"], None),
    (["-q", "run"], ([], QUIET)), (["run", "-v", "--", "true", "-q"], (["true", "-q"], VERBOSE)),
    (["--verbose", "run", "--quiet", "true"], (["true"], QUIET)), (["-q", "plan"], None),
    (["plan"], None), ([], None), (["-q"], None),
])
def test_a_plain_run_needs_no_argument_parser(
    argv: list[str], plain: tuple[list[str], int] | None,
) -> None:
    assert plain_run(argv) == plain


def test_plan_json_without_a_request(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--json", "--", "true"], contract(tmp_path)) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["request"]["kind"] == "none" and plan["key"] is None
    assert plan["command"] == ["true"]


def test_plan_of_a_requirements_file_says_miss_then_hit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    setup = Setup(tmp_path)
    assert main(["plan", "--json", "--", "true"], setup.env) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["cache"].startswith("miss, would build in") and plan["environment"] is None
    assert plan["key_document"]["request"]["requirements"] == ["tinydep", "greeting==1.0"]
    resolved = cold_start(setup, real=True)  # stands in for a build of this request
    capsys.readouterr()
    assert main(["plan", "--json", "--", "true"], setup.env) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["key"] == resolved.key and plan["cache"].startswith("hit ")


def test_ls_and_gc_on_an_empty_cache(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = contract(tmp_path)
    assert main(["ls", "--json"], env) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["gc", "--dry-run", "--max-age", "1d"], env) == 0
    assert "would remove 0 environments" in capsys.readouterr().err


def test_usage_errors_and_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as usage:
        main(["no-such-command"], contract(tmp_path))
    assert usage.value.code == 2
    missing = contract(tmp_path, AZUREML_EXTRA_REQUIREMENTS_TXT="absent.txt")
    assert main(["run", "--", "true"], missing) == 99
    assert "absent.txt" in capsys.readouterr().err
    assert main(["run"], contract(tmp_path, EXTENSIBILITY_SERVER_PORT="x")) == 93


def test_doctor_and_a_start_apply_the_same_cache_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """envs/ writable by others: doctor reports it, and a start refuses it (92)."""
    setup = Setup(tmp_path)
    cold_start(setup)
    envs = tmp_path / "cache" / "envs"
    envs.chmod(0o777)
    settings = Settings.from_environ(setup.env)
    [cache] = [f for f in diagnose(settings, setup.env, ["true"]) if f.item == "cache"]
    assert not cache.ok and str(envs) in cache.detail and "chmod -R go-w" in (cache.fix or "")
    assert main(["run", "--", "true"], setup.env) == 92
    assert "can be written by other users" in capsys.readouterr().err
    envs.chmod(0o755)
    [cache] = [f for f in diagnose(settings, setup.env, ["true"]) if f.item == "cache"]
    assert cache.ok


WARM_PROBE = """
import json, sys
started_with = set(sys.modules)  # the interpreter's own start (site, .pth files) is not ours
import extensibility.handoff as handoff
def report(h, umask=None):
    print(json.dumps(sorted(set(sys.modules) - started_with)))
    sys.exit(0)
handoff.execute = report
from extensibility.cli import main
sys.exit(main(["run", "--", "true"], json.loads(sys.argv[1])))
"""
NEVER_ON_THE_WARM_PATH = ("packaging", "filelock", "venv", "yaml", "argparse", "dataclasses",
                          "typing", "shutil", "subprocess", "traceback", "importlib.metadata",
                          "extensibility.requirements", "extensibility.resolve",
                          "extensibility.build", "extensibility.commands.parser",
                          "extensibility.remote", "azure", "zstandard")


@pytest.mark.parametrize("remote", [False, True], ids=["local", "remote-cache-set"])
def test_the_warm_path_imports_only_what_it_uses(remote: bool, tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    env = setup.env
    if remote:  # a node that has the environment never asks the store (here: a dead one)
        env = {**env, "EXTENSIBILITY_REMOTE_CACHE":
               f"http://127.0.0.1:{free_port()}/devstoreaccount1/c"}
        assert main(["prepare", "--", "true"], env) == 0
    else:
        cold_start(setup, real=True)
    child = subprocess.run([sys.executable, "-c", WARM_PROBE, json.dumps(env)],
                           capture_output=True, text=True, cwd=REPO, check=False)
    assert child.returncode == 0, child.stderr
    assert "request unchanged" in child.stderr  # it was the warm path
    imported = set(json.loads(child.stdout))
    assert {m for m in NEVER_ON_THE_WARM_PATH if m in imported} == set()


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"]])
def test_help_lists_every_variable_with_its_default(
    argv: list[str], capsys: pytest.CaptureFixture[str],
) -> None:
    from extensibility.settings import SETTINGS

    with pytest.raises(SystemExit) as done:
        main(argv, {})
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "environment variables" in out.replace("\n", " ")
    for setting in SETTINGS:
        assert f"  {setting.variable} (default: " in out, setting.variable


def test_doctor_json_is_typed_and_versioned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    setup = Setup(tmp_path)
    code = main(["doctor", "--json", "--", "true"], setup.env)
    report = json.loads(capsys.readouterr().out)
    assert report["schema_version"] == 1 and report["ok"] is (code == 0)
    assert {f["item"] for f in report["findings"]} >= {"interpreter", "cache", "request"}
    assert all(isinstance(f["ok"], bool) for f in report["findings"])


def test_quiet_and_verbose(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """-q: no installer output; default: its lines; -v: the installer itself is verbose."""
    outputs = {}
    for flag in ("-q", None, "-v"):
        folder = tmp_path / (flag or "default").strip("-")
        folder.mkdir()
        setup = Setup(folder)
        argv = ["prepare", *([flag] if flag else []), "--", "true"]
        assert main(argv, setup.env) == 0
        outputs[flag] = capsys.readouterr().err
    assert outputs["-q"].count("\n") == 1 and "prepare: ready: " in outputs["-q"]
    assert "  | " in outputs[None] and " -v" not in outputs[None]
    assert "--no-progress -v" in outputs["-v"]  # uv was asked for its verbose output
    (tmp_path / "plan").mkdir()
    assert main(["plan", "-q", "--", "true"], Setup(tmp_path / "plan").env) == 0
    assert "key document:" not in capsys.readouterr().out
    (tmp_path / "plan-q").mkdir()
    assert main(["-q", "plan", "--", "true"], Setup(tmp_path / "plan-q").env) == 0  # before
    assert "key document:" not in capsys.readouterr().out


def test_a_quiet_warm_start_says_one_line(tmp_path: Path) -> None:
    """`extensibility -q run` (the option before the command, as in pip, uv and git): the
    exec line alone, on the fast path; without -q the same start says what it found."""
    setup = Setup(tmp_path)
    cold_start(setup, real=True)
    said = {}
    for flags in ([], ["-q"]):
        probe = WARM_PROBE.replace('main(["run", "--", "true"]', f'main([*{flags!r}, "run", '
                                   '"--", "true"]')
        child = subprocess.run([sys.executable, "-c", probe, json.dumps(setup.env)],
                               capture_output=True, text=True, cwd=REPO, check=False)
        assert child.returncode == 0, child.stderr
        assert "argparse" not in json.loads(child.stdout)
        said[len(flags)] = child.stderr.splitlines()
    assert len(said[0]) > 1 and any("request unchanged" in line for line in said[0])
    assert len(said[1]) == 1 and " exec: " in said[1][0]
