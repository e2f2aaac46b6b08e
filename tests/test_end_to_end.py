"""The entrypoint for real: subprocesses, a real index, the real scoring server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import StartServer, contract_env, run_entrypoint
from tests.support import REPO, ImageVenv, Index, Pause, complete_envs, wait_for

pytestmark = pytest.mark.slow
INSTALLERS = ["uv", "pip"]


def overlay_dists(cache: Path) -> list[str]:
    """dist-info folder names inside every overlay of a cache."""
    return sorted(p.name for p in cache.glob("envs/*/lib/python3*/site-packages/*.dist-info"))


@pytest.mark.parametrize("installer", INSTALLERS)
def test_cold_start_serves_the_extra_package_and_restart_is_a_cache_hit(
    installer: str, image: ImageVenv, app: Path, cache: Path, own_index: Index,
    start_server: StartServer, tmp_path: Path,
) -> None:
    (app / "requirements.txt").write_text(f"--index-url {own_index.url}\ngreeting==1.0\n")
    env = contract_env(tmp_path, image, app, cache, EXTENSIBILITY_INSTALLER=installer,
                       AZUREML_EXTRA_REQUIREMENTS_TXT="requirements.txt")

    cold = start_server(image, env)
    response = cold.score({"data": 1})
    assert response.status_code == 200, response.text
    assert response.json() == {"greeting": "HELLO WORLD"}
    assert "miss" in cold.output() and f"running {installer}" in cold.output()
    cold.process.terminate()
    cold.process.wait(timeout=20)
    [environment] = complete_envs(cache)
    built = (environment / ".extensibility" / "complete").stat().st_mtime_ns

    # With the index gone, any installer or resolver run would fail the start.
    own_index.stop()
    warm = start_server(image, env)
    assert warm.score({}).json() == {"greeting": "HELLO WORLD"}
    log = warm.output()
    assert ": hit" in log
    assert "running" not in log and "install:" not in log
    # what the images' `pip freeze` showed: the packages the environment adds, every start
    assert f"packages: 2 in {environment}: greeting==1.0, tinydep==1.0" in log
    assert complete_envs(cache) == [environment]
    assert (environment / ".extensibility" / "complete").stat().st_mtime_ns == built


@pytest.mark.parametrize("installer", INSTALLERS)
def test_image_packages_are_used_not_copied(
    installer: str, image: ImageVenv, app: Path, cache: Path, index: Index, tmp_path: Path,
) -> None:
    # The index offers framework 2.0, but the image's 1.0 satisfies `framework>=1.0`.
    (app / "requirements.txt").write_text(f"--index-url {index.url}\nneeds-framework\n")
    env = contract_env(tmp_path, image, app, cache, EXTENSIBILITY_INSTALLER=installer,
                       AZUREML_EXTRA_REQUIREMENTS_TXT="requirements.txt")
    result = run_entrypoint(image, env, "run", "--", "python", "-c",
                            "import framework, needs_framework; print(framework.__file__)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith(str(image.site_packages))
    dists = overlay_dists(cache)
    assert dists == ["needs_framework-1.0.dist-info"]


@pytest.mark.parametrize("installer", INSTALLERS)
def test_a_user_pin_overrides_the_image_without_touching_it(
    installer: str, image: ImageVenv, app: Path, cache: Path, index: Index, tmp_path: Path,
) -> None:
    (app / "requirements.txt").write_text(f"--index-url {index.url}\nframework==2.0\n")
    env = contract_env(tmp_path, image, app, cache, EXTENSIBILITY_INSTALLER=installer,
                       AZUREML_EXTRA_REQUIREMENTS_TXT="requirements.txt")
    result = run_entrypoint(image, env, "run", "--", "python", "-c",
                            "import framework; print(framework.__version__)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2.0"
    assert (image.site_packages / "framework-1.0.dist-info").is_dir()
    assert not list(image.site_packages.glob("framework-2.0*"))


@pytest.mark.parametrize("installer", INSTALLERS)
def test_offline_wheelhouse_console_script_and_bytecode(
    installer: str, image: ImageVenv, app: Path, cache: Path, packages: Path, tmp_path: Path,
) -> None:
    shutil.copytree(packages, app / "wheels")
    (app / "requirements.txt").write_text("--no-index\n--find-links ./wheels\nhello-cli\n")
    env = contract_env(tmp_path, image, app, cache, EXTENSIBILITY_INSTALLER=installer,
                       AZUREML_EXTRA_REQUIREMENTS_TXT="requirements.txt")
    result = run_entrypoint(image, env, "run", "--", "hello-cli")
    assert result.returncode == 0, result.stderr
    [environment] = complete_envs(cache)
    assert result.stdout.strip() == f"hello from {environment}"
    # compiled after the hand-off, in the background: wait for its marker, not for a time
    wait_for((environment / ".extensibility" / "compiled").exists, 120, "the compile")
    assert list(environment.glob("lib/python3*/site-packages/hello_cli/__pycache__/*.pyc"))


def test_exec_keeps_the_pid_and_the_working_directory(
    image: ImageVenv, app: Path, cache: Path, index: Index, tmp_path: Path,
) -> None:
    (app / "requirements.txt").write_text(f"--index-url {index.url}\ntinydep\n")
    env = contract_env(tmp_path, image, app, cache,
                       AZUREML_EXTRA_REQUIREMENTS_TXT="requirements.txt")
    process = subprocess.Popen(
        [str(image.bin / "extensibility"), "run", "--", "python", "-c",
         "import os, sys; print(os.getpid(), os.getcwd(), sys.prefix)"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    pid, cwd, prefix = out.split()
    assert int(pid) == process.pid
    assert cwd == str(app)
    assert prefix == str(complete_envs(cache)[0])


def test_plan_and_prepare(image: ImageVenv, app: Path, cache: Path, index: Index,
                          tmp_path: Path) -> None:
    requirements = app / "requirements.txt"
    requirements.write_text(f"--index-url {index.url}\ngreeting\n")
    env = contract_env(tmp_path, image, app, cache,
                       AZUREML_EXTRA_REQUIREMENTS_TXT="requirements.txt")

    plan = run_entrypoint(image, env, "plan", "--json")
    assert plan.returncode == 0, plan.stderr
    before = json.loads(plan.stdout)
    assert before["cache"].startswith("miss")
    assert before["key_document"]["request"]["requirements"] == ["greeting"]
    assert not complete_envs(cache)  # plan never builds

    prepared = run_entrypoint(image, env, "prepare")
    assert prepared.returncode == 0, prepared.stderr
    after = json.loads(run_entrypoint(image, env, "plan", "--json").stdout)
    assert after["key"] == before["key"] and after["cache"].startswith("hit")

    # A changed request is a new key, and the miss says what changed.
    requirements.write_text(f"--index-url {index.url}\ngreeting\nhello-cli\n")
    changed = run_entrypoint(image, env, "plan")
    assert changed.returncode == 0
    assert "changed since environment" in changed.stdout and "request" in changed.stdout


def test_shell_entrypoint_runs_the_command_in_the_overlay(
    image: ImageVenv, app: Path, cache: Path, index: Index, tmp_path: Path,
) -> None:
    (app / "requirements.txt").write_text(f"--index-url {index.url}\ngreeting\n")
    env = contract_env(tmp_path, image, app, cache,
                       AZUREML_EXTRA_REQUIREMENTS_TXT="requirements.txt")
    script = REPO / "entrypoint" / "extensibility-entrypoint.sh"
    result = subprocess.run(
        ["sh", str(script), "python", "-c", "import greeting; print(greeting.greet('sh'))"],
        env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "HELLO SH"


def test_lib_path_takes_precedence_over_requirements(
    image: ImageVenv, app: Path, cache: Path, tmp_path: Path,
) -> None:
    (app / "libs").mkdir()
    (app / "libs" / "mylib.py").write_text("VALUE = 42\n")
    (app / "requirements.txt").write_text("this line would not even parse ===\n")
    env = contract_env(tmp_path, image, app, cache, AZUREML_EXTRA_PYTHON_LIB_PATH="libs",
                       AZUREML_EXTRA_REQUIREMENTS_TXT="requirements.txt")
    result = run_entrypoint(image, env, "run", "--", "python", "-c",
                            "import mylib; print(mylib.VALUE)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "42"
    assert "AZUREML_EXTRA_REQUIREMENTS_TXT is ignored" in result.stderr
    assert [p.name for p in cache.iterdir()] == ["libpath"]  # the folder's verdict, no env


@pytest.mark.parametrize(
    ("variables", "files", "code", "message"),
    [
        ({"AZUREML_EXTRA_REQUIREMENTS_TXT": "missing.txt"}, {}, 99,
         "missing.txt does not exist"),
        ({"AZUREML_EXTRA_CONDA_YAML": "missing.yml"}, {}, 98, "does not exist"),
        ({"AZUREML_EXTRA_PYTHON_LIB_PATH": "nolibs"}, {}, 97, "does not exist"),
        ({"AZUREML_EXTRA_CONDA_YAML": "env.yml"}, {"env.yml": "name: x\n"}, 95,
         "env.yml:1: no dependencies are listed"),
        ({"AZUREML_EXTRA_REQUIREMENTS_TXT": "requirements.txt"},
         {"requirements.txt": "# ok\ngreeting>=1\nnot a requirement ===\n"}, 95,
         "requirements.txt:3: not a valid requirement"),
        ({"EXTENSIBILITY_INSTALLER": "conda"}, {}, 93, "is not one of"),
    ],
    ids=["99-requirements", "98-conda", "97-lib-path", "95-conda-empty",
         "95-malformed", "93-setting"],
)
def test_exit_codes(variables: dict[str, str], files: dict[str, str], code: int, message: str,
                    image: ImageVenv, app: Path, cache: Path, tmp_path: Path) -> None:
    for name, text in files.items():
        (app / name).write_text(text)
    env = contract_env(tmp_path, image, app, cache, **variables)
    result = run_entrypoint(image, env, "run")
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert f"(exit {code})" in result.stderr and "fix:" in result.stderr


@pytest.mark.parametrize("installer", INSTALLERS)
def test_failed_install_exits_95_and_leaves_nothing(
    installer: str, image: ImageVenv, app: Path, cache: Path, index: Index, tmp_path: Path,
) -> None:
    (app / "requirements.txt").write_text(f"--index-url {index.url}\ngreeting\nno-such-pkg\n")
    env = contract_env(tmp_path, image, app, cache, EXTENSIBILITY_INSTALLER=installer,
                       AZUREML_EXTRA_REQUIREMENTS_TXT="requirements.txt")
    result = run_entrypoint(image, env, "run")
    assert result.returncode == 95, result.stderr
    assert "no-such-pkg" in result.stderr and "Traceback" not in result.stderr
    assert [p.name for p in (cache / "envs").iterdir()] == []


def test_server_command_not_found_exits_96(image: ImageVenv, app: Path, cache: Path,
                                          tmp_path: Path) -> None:
    env = contract_env(tmp_path, image, app, cache)
    result = run_entrypoint(image, env, "run", "--", "no-such-server", "--port", "1")
    assert result.returncode == 96, result.stderr
    assert "'no-such-server' not found" in result.stderr


def test_image_python_may_be_off_path(image: ImageVenv, app: Path, cache: Path, index: Index,
                                      tmp_path: Path) -> None:
    """The default server is found in the image's scripts folder even when PATH lacks it."""
    (app / "requirements.txt").write_text(f"--index-url {index.url}\ngreeting\n")
    env = contract_env(tmp_path, image, app, cache,
                       AZUREML_EXTRA_REQUIREMENTS_TXT="requirements.txt")
    env["PATH"] = os.defpath
    result = run_entrypoint(image, env, "run", "--", "azmlinfsrv", "--help")
    # azmlinfsrv's --help exits 1 after printing its usage (it re-raises argparse's exit)
    assert "usage: azmlinfsrv" in result.stdout, result.stderr
    assert "not found" not in result.stderr


def test_json_log_lines(image: ImageVenv, app: Path, cache: Path, index: Index,
                        tmp_path: Path) -> None:
    (app / "requirements.txt").write_text(f"--index-url {index.url}\ntinydep\n")
    env = contract_env(tmp_path, image, app, cache, EXTENSIBILITY_LOG_FORMAT="json",
                       AZUREML_EXTRA_REQUIREMENTS_TXT="requirements.txt")
    result = run_entrypoint(image, env, "run", "--", "true")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines()]
    phases = [r["phase"] for r in records if r["level"] == "info"]
    assert phases[:3] == ["inputs", "key", "cache"] and phases[-1] == "exec"
    assert any(r["level"] == "progress" for r in records)
    assert all(isinstance(r["elapsed"], float) for r in records)


def test_warm_shortcut_is_taken_only_while_everything_the_key_depends_on_is_unchanged(
    image: ImageVenv, app: Path, cache: Path, index: Index, tmp_path: Path,
) -> None:
    (app / "base.txt").write_text("tinydep\n")
    (app / "requirements.txt").write_text(f"--index-url {index.url}\n-r base.txt\n"
                                          "greeting==${GREETING_VERSION}\n")
    env = contract_env(tmp_path, image, app, cache, GREETING_VERSION="1.0",
                       AZUREML_EXTRA_REQUIREMENTS_TXT="requirements.txt")

    def start(environment: dict[str, str]) -> str:
        result = run_entrypoint(image, environment, "run", "--", "true")
        assert result.returncode == 0, result.stderr
        return result.stderr

    assert "miss" in start(env)
    assert "(request unchanged, installer uv): hit" in start(env)
    (app / "base.txt").write_text("tinydep\nhello-cli\n")  # an included file changed
    changed = start(env)
    assert "request unchanged" not in changed and "miss" in changed
    assert "(request unchanged" in start(env)
    other = {**env, "GREETING_VERSION": "1.0.0"}  # a ${VAR} changed
    assert "request unchanged" not in start(other)
    assert len(complete_envs(cache)) == 3


def test_a_request_changed_during_a_build_is_rebuilt_at_the_next_start(
    image: ImageVenv, app: Path, cache: Path, index: Index, tmp_path: Path,
) -> None:
    """A mounted requirements.txt updated while a build runs: the warm note describes the
    content the build installed, so the next start sees the new content as a miss."""
    requirements = app / "requirements.txt"
    requirements.write_text(f"--index-url {index.url}\ntinydep\n")
    env = contract_env(tmp_path, image, app, cache,
                       AZUREML_EXTRA_REQUIREMENTS_TXT="requirements.txt")
    pause = Pause(tmp_path / "pause", "publish")
    builder = subprocess.Popen([str(image.bin / "extensibility"), "run", "--", "true"],
                               env={**env, **pause.env}, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    pause.wait(builder)
    requirements.write_text(f"--index-url {index.url}\ntinydep\nhello-cli\n")  # the rollout
    pause.release()
    _, err = builder.communicate(timeout=300)
    assert builder.returncode == 0, err
    result = run_entrypoint(image, env, "run", "--", "hello-cli")
    assert result.returncode == 0, result.stderr
    assert "request unchanged" not in result.stderr and "miss" in result.stderr
    assert "hello from" in result.stdout  # the new content's package is there
    assert len(complete_envs(cache)) == 2


def test_a_cache_other_users_can_write_is_refused_with_92(
    image: ImageVenv, app: Path, cache: Path, index: Index, tmp_path: Path,
) -> None:
    (app / "requirements.txt").write_text(f"--index-url {index.url}\ntinydep\n")
    env = contract_env(tmp_path, image, app, cache,
                       AZUREML_EXTRA_REQUIREMENTS_TXT="requirements.txt")
    assert run_entrypoint(image, env, "prepare", "--", "true").returncode == 0
    cache.chmod(0o777)
    result = run_entrypoint(image, env, "run", "--", "true")  # the warm path checks too
    assert result.returncode == 92, result.stderr
    assert "can be written by other users" in result.stderr and "chmod -R go-w" in result.stderr


def test_credentials_in_variables_and_urls_are_not_kept_in_the_cache(
    image: ImageVenv, app: Path, cache: Path, index: Index, tmp_path: Path,
) -> None:
    """${VAR} tokens and URL credentials reach the installer but are not stored."""
    authed = index.url.replace("http://", "http://bot:${INDEX_TOKEN}@")  # pypiserver ignores it
    (app / "requirements.txt").write_text(f"--index-url {authed}\ntinydep\n")
    env = contract_env(tmp_path, image, app, cache, INDEX_TOKEN="hunter2-secret",
                       AZUREML_EXTRA_REQUIREMENTS_TXT="requirements.txt")
    result = run_entrypoint(image, env, "run", "--", "true")
    assert result.returncode == 0, result.stderr
    assert "request unchanged" in run_entrypoint(image, env, "run", "--", "true").stderr
    stored = [p.read_text() for p in cache.rglob("*") if p.is_file() and (
        ".extensibility" in p.parts or "warm" in p.parts)]
    assert stored and all("hunter2-secret" not in text for text in stored)
    assert "hunter2-secret" not in result.stderr
