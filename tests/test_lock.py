"""PEP 751 lock files: as the request (written by uv, by pip and by us) and as output.

Real wheels on the local index, the simulated image, real installers. In-process (the
`main(argv, environ)` CLI) where nothing is installed: validation, markers, refusals.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from extensibility.cli import main
from extensibility.store import Store
from tests.conftest import contract_env, run_entrypoint
from tests.support import REPO, ImageVenv, Index, build_image, complete_envs, hermetic_env
from tests.test_cli import NEVER_ON_THE_WARM_PATH, WARM_PROBE
from tests.wheels import build_wheel

# packaging 26 (which reads lock files) needs Python 3.10+: on 3.9 only the refusal is tested
needs_pylock = pytest.mark.skipif(sys.version_info < (3, 10),
                                  reason="packaging >= 26 needs Python 3.10 or later")
LOCK_ONLY = ("tomllib", "tomli", "extensibility.lockfile.read", "extensibility.lockfile.write",
             "extensibility.lockfile.resolution")


@pytest.fixture(scope="session")
def pip26_image(packages: Path, tmp_path_factory: pytest.TempPathFactory) -> ImageVenv:
    """The simulated image with pip 26, which installs lock files itself (the session's image
    keeps the pip its venv was made with, older: it is given the lock's files as
    `name @ URL --hash` lines instead)."""
    tmp = tmp_path_factory.mktemp("pip26-image")
    return build_image(tmp / "image", tmp, extra_find_links=[packages],
                       extra_packages=["framework==1.0", "pip>=26"])


def image_for(installer: str, request: pytest.FixtureRequest) -> ImageVenv:
    image: ImageVenv = request.getfixturevalue("pip26_image" if installer == "pip26"
                                               else "image")
    return image


def lock_env(tmp_path: Path, image: ImageVenv, app: Path, cache: Path, lock: str,
             installer: str = "auto") -> dict[str, str]:
    return contract_env(tmp_path, image, app, cache, AZUREML_EXTRA_REQUIREMENTS_TXT=lock,
                        EXTENSIBILITY_INSTALLER=installer.replace("pip26", "pip"))


def overlay_packages(environment: Path) -> set[str]:
    from extensibility.image import scan_distributions

    site = next(environment.glob("lib/python*/site-packages"))
    return {f"{name}=={version}" for name, version in scan_distributions(str(site))}


def freeze(environment: Path, tmp_path: Path) -> str:
    """`pip freeze` as the environment's Python sees it (the image's packages included)."""
    return subprocess.run([str(environment / "bin" / "python"), "-m", "pip", "freeze"],
                          env=hermetic_env(tmp_path), capture_output=True, text=True,
                          check=True).stdout


def key_document(cache: Path, environment: Path) -> dict[str, object]:
    [entry] = [e for e in Store(cache).entries() if e.path == environment]
    assert entry.document is not None
    return dict(entry.document)


def uv_compile(image: ImageVenv, requirements: Path, output: Path, index: Index,
               tmp_path: Path, *extra: str) -> None:
    subprocess.run([str(image.bin / "uv"), "pip", "compile", "--format", "pylock.toml",
                    "--python", str(image.python), "--index-url", index.url, *extra,
                    str(requirements), "-o", str(output)], env=hermetic_env(tmp_path),
                   check=True, capture_output=True, text=True)


# --- a lock as the request --------------------------------------------------------------

@needs_pylock
@pytest.mark.slow  # the simulated image, by fixture or by request
@pytest.mark.parametrize("installer", ["uv", "pip26", "pip"])
def test_a_lock_written_by_uv_installs_exactly_without_resolving(
    installer: str, request: pytest.FixtureRequest, app: Path, cache: Path, index: Index,
    tmp_path: Path,
) -> None:
    """framework 1.0 is locked at the image's version: left to the image, not copied. (`pip`:
    a pip older than 26 is given the lock's files as `name @ URL --hash` lines.)"""
    image = image_for(installer, request)
    (tmp_path / "requirements.in").write_text("greeting\nneeds-framework\nframework==1.0\n")
    uv_compile(image, tmp_path / "requirements.in", app / "pylock.toml", index, tmp_path)
    env = lock_env(tmp_path, image, app, cache, "pylock.toml", installer)

    plan = run_entrypoint(image, env, "plan")
    assert plan.returncode == 0, plan.stderr
    assert "lock file" in plan.stdout and "framework==1.0 (the image's)" in plan.stdout
    assert "4 packages selected for this interpreter, 3 to install, 1 already in the image" \
        in plan.stdout
    prepared = run_entrypoint(image, env, "prepare", "-v")
    assert prepared.returncode == 0, prepared.stderr
    assert "--dry-run" not in prepared.stderr  # nothing resolved
    assert "--no-deps" in prepared.stderr and "--require-hashes" in prepared.stderr
    [environment] = complete_envs(cache)
    assert overlay_packages(environment) == {"greeting==1.0", "tinydep==1.0",
                                             "needs-framework==1.0"}
    again = run_entrypoint(image, env, "prepare")
    assert again.returncode == 0 and "request unchanged" in again.stderr  # warm


@needs_pylock
@pytest.mark.slow  # the simulated image, by fixture or by request
def test_a_lock_written_by_pip_lock_is_installed(
    pip26_image: ImageVenv, app: Path, cache: Path, index: Index, tmp_path: Path,
) -> None:
    """`pip lock` (pip 26, in the image) resolves ignoring the image: its lock has
    framework 2.0, which then overrides the image's 1.0 in the overlay."""
    image = pip26_image
    (tmp_path / "requirements.in").write_text("greeting\nneeds-framework\n")
    subprocess.run([str(image.python), "-m", "pip", "lock", "--index-url", index.url, "-r",
                    str(tmp_path / "requirements.in"), "-o", str(app / "pylock.pip.toml")],
                   env=hermetic_env(tmp_path), check=True, capture_output=True, text=True)
    assert 'created-by = "pip"' in (app / "pylock.pip.toml").read_text()
    env = lock_env(tmp_path, image, app, cache, "pylock.pip.toml", "pip")
    prepared = run_entrypoint(image, env, "prepare")
    assert prepared.returncode == 0, prepared.stderr
    [environment] = complete_envs(cache)
    assert overlay_packages(environment) == {"greeting==1.0", "tinydep==1.0",
                                             "needs-framework==1.0", "framework==2.0"}
    assert "framework 1.0 -> 2.0 (overrides the image)" in prepared.stderr


@needs_pylock
@pytest.mark.slow  # the simulated image, by fixture or by request
@pytest.mark.parametrize(("installer", "how"), [("uv", "lock"), ("pip26", "prepare --lock")])
def test_a_lock_written_from_a_request_builds_the_same_environment(
    installer: str, how: str, request: pytest.FixtureRequest, app: Path, cache: Path,
    index: Index, tmp_path: Path,
) -> None:
    image = image_for(installer, request)
    authed = index.url.replace("http://", "http://bot:s3cr3t-token@")  # pypiserver ignores it
    (app / "requirements.txt").write_text(f"--index-url {authed}\ngreeting\nneeds-framework\n"
                                          "hello-cli\n")
    env = lock_env(tmp_path, image, app, cache, "requirements.txt", installer)
    if how == "lock":
        written = run_entrypoint(image, env, "lock", "-o", str(app / "pylock.toml"))
        assert written.returncode == 0, written.stderr
        assert not complete_envs(cache)  # `lock` installs nothing
        prepared = run_entrypoint(image, env, "prepare")
    else:
        prepared = run_entrypoint(image, env, "prepare", "--lock", str(app / "pylock.toml"))
    assert prepared.returncode == 0, prepared.stderr
    text = (app / "pylock.toml").read_text()
    assert "s3cr3t" not in text and "bot@" not in text  # secrets never written
    assert re.search(r'created-by = "inference-extensibility"', text)
    assert "framework" not in re.findall(r'^name = "([^"]+)"', text, re.MULTILINE)  # image's
    [from_request] = complete_envs(cache)

    env = lock_env(tmp_path, image, app, cache, "pylock.toml", installer)
    locked = run_entrypoint(image, env, "prepare")
    assert locked.returncode == 0, locked.stderr
    [from_lock] = [e for e in complete_envs(cache) if e != from_request]
    assert freeze(from_lock, tmp_path) == freeze(from_request, tmp_path)
    assert overlay_packages(from_lock) == overlay_packages(from_request) == {
        "greeting==1.0", "tinydep==1.0", "needs-framework==1.0", "hello-cli==1.0"}
    before, after = key_document(cache, from_request), key_document(cache, from_lock)
    assert before.pop("request") != after.pop("request")
    assert before == after


@needs_pylock
@pytest.mark.slow  # the simulated image, by fixture or by request
@pytest.mark.parametrize("installer", ["uv", "pip26", "pip"])
def test_a_tampered_hash_is_refused_and_nothing_is_cached(
    installer: str, request: pytest.FixtureRequest, app: Path, cache: Path, index: Index,
    tmp_path: Path,
) -> None:
    image = image_for(installer, request)
    (tmp_path / "requirements.in").write_text("greeting\n")
    uv_compile(image, tmp_path / "requirements.in", app / "pylock.toml", index, tmp_path)
    text = (app / "pylock.toml").read_text()
    digest = re.search(r'sha256 = "([0-9a-f]{64})"', text)
    assert digest is not None
    tampered = digest.group(1)[:-1] + ("0" if digest.group(1)[-1] != "0" else "1")
    (app / "pylock.toml").write_text(text.replace(digest.group(1), tampered))
    env = lock_env(tmp_path, image, app, cache, "pylock.toml", installer)
    refused = run_entrypoint(image, env, "prepare")
    assert refused.returncode == 95, refused.stderr
    assert "hash" in refused.stderr.lower() and tampered[:12] in refused.stderr
    assert not complete_envs(cache)
    assert not any((cache / "envs").iterdir())  # nothing half-built either
    assert not list(cache.glob("warm/*.json"))  # no note of a key for the next start


@needs_pylock
def test_a_local_file_that_does_not_match_its_hash_is_named_before_any_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    app = tmp_path / "app"
    wheel = build_wheel(app / "wheels", "tinydep", "1.0")
    (app / "pylock.toml").write_text(_lock([_package("tinydep", "1.0", path=f"wheels/{wheel.name}",
                                                     sha256="0" * 64)]))
    assert main(["plan"], _env(tmp_path, "pylock.toml")) == 95
    err = capsys.readouterr().err
    assert f"{app / 'pylock.toml'}:5" in err and "does not match the lock's sha256" in err


@needs_pylock
def test_server_conflicts_in_a_lock_are_refused_all_at_once_before_installing(
    image: ImageVenv, app: Path, cache: Path, tmp_path: Path,
) -> None:
    """certifi and flask are held (the server needs certifi>=2024.7.4 and its flask range):
    the lock's versions are checked before anything is fetched (these URLs do not exist)."""
    (app / "pylock.toml").write_text(_lock([
        _package("certifi", "2020.1.1", url="http://127.0.0.1:9/certifi-2020.1.1-py3-none-any.whl"),
        _package("flask", "0.1", url="http://127.0.0.1:9/flask-0.1-py3-none-any.whl"),
    ]))
    env = lock_env(tmp_path, image, app, cache, "pylock.toml")
    refused = run_entrypoint(image, env, "prepare")
    assert refused.returncode == 95, refused.stderr
    assert "2 lines of the request conflict" in refused.stderr
    assert f"{app / 'pylock.toml'}:5" in refused.stderr and "certifi==2020.1.1" in refused.stderr
    assert f"{app / 'pylock.toml'}:10" in refused.stderr and "flask==0.1" in refused.stderr
    assert not complete_envs(cache)


# --- refusals, in-process ----------------------------------------------------------------

def _env(tmp_path: Path, request: str, **extra: str) -> dict[str, str]:
    app = tmp_path / "app"
    app.mkdir(exist_ok=True)
    return {"AML_APP_ROOT": str(app), "AZUREML_ENTRY_SCRIPT": "score.py",
            "AZUREML_EXTRA_REQUIREMENTS_TXT": request, "EXTENSIBILITY_INSTALLER": "pip",
            "EXTENSIBILITY_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin",
            "PIP_CONFIG_FILE": "/dev/null", "UV_NO_CONFIG": "1", **extra}


def _package(name: str, version: str, *, url: str | None = None, path: str | None = None,
             sha256: str = "a" * 64) -> str:
    where = f'url = "{url}"' if url else f'path = "{path}"'
    return (f'[[packages]]\nname = "{name}"\nversion = "{version}"\n'
            f'wheels = [{{ {where}, hashes = {{ sha256 = "{sha256}" }} }}]\n')


def _lock(packages: list[str], head: str = "") -> str:
    empty = "" if packages else "packages = []"
    return f'lock-version = "1.0"\ncreated-by = "tests"\n{head}\n{empty}\n' + "\n".join(packages)


@needs_pylock
def test_a_lock_for_another_python_is_refused_naming_the_markers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    head = "environments = [\"python_version == '2.7' and sys_platform == 'win32'\"]"
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "pylock.toml").write_text(_lock([], head))
    assert main(["plan", "--json"], _env(tmp_path, "pylock.toml")) == 95
    plan = json.loads(capsys.readouterr().out)
    message = plan["refusal"]["message"]
    assert plan["refusal"]["title"] == "request not supported"
    assert "was not locked for this interpreter" in message
    assert "python_version == \"2.7\" and sys_platform == \"win32\"" in message
    assert f"python_full_version '{'.'.join(map(str, sys.version_info[:3]))}'" in message
    assert "--python-version" in plan["refusal"]["fix"]


@needs_pylock
def test_a_lock_requiring_another_python_version_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "pylock.toml").write_text(_lock([], 'requires-python = ">=3.99"'))
    assert main(["plan"], _env(tmp_path, "pylock.toml")) == 95
    assert "requires-python: >=3.99" in capsys.readouterr().err


@pytest.mark.parametrize(("text", "says"), [
    ('created-by = "x"\npackages = []\n', "(field lock-version): Missing required value"),
    ('lock-version = "1.0"\ncreated-by = "x"\n[[packages]]\nname = "Not_Normal"\n'
     'version = "1"\n', "(field packages[0].name)"),
    ('lock-version = "1.0"\ncreated-by = "x"\npackages = [\n', "not a valid TOML file"),
    ('lock-version = "9"\ncreated-by = "x"\npackages = []\n', "pylock version 9 is not supported"),
])
@needs_pylock
def test_an_invalid_lock_names_the_file_and_the_field(
    text: str, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "pylock.prod.toml").write_text(text)
    assert main(["plan"], _env(tmp_path, "pylock.prod.toml")) == 95
    err = capsys.readouterr().err
    assert str(tmp_path / "app" / "pylock.prod.toml") in err and says in err


@needs_pylock
def test_a_vcs_package_cannot_be_verified_by_hash_and_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "pylock.toml").write_text(_lock([
        '[[packages]]\nname = "tool"\nvcs = { type = "git", url = "https://example.invalid/t",'
        ' commit-id = "abc" }\n']))
    assert main(["plan"], _env(tmp_path, "pylock.toml")) == 95
    assert "tool comes from a VCS checkout, which no hash can verify" in capsys.readouterr().err


def test_without_packaging_26_a_lock_is_refused_with_the_fix(tmp_path: Path) -> None:
    """An image whose packaging has no `pylock` module (packaging < 26, or Python 3.9)."""
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "pylock.toml").write_text(_lock([]))
    probe = ("import sys, json; sys.modules['packaging.pylock'] = None\n"
             "from extensibility.cli import main\n"
             "sys.exit(main(['plan'], json.loads(sys.argv[1])))")
    child = subprocess.run([sys.executable, "-c", probe, json.dumps(_env(tmp_path,
                                                                         "pylock.toml"))],
                           capture_output=True, text=True, cwd=REPO, check=False)
    assert child.returncode == 95, child.stderr
    assert "needs packaging >= 26" in child.stderr
    assert "inference-extensibility[lock]" in child.stderr


@needs_pylock
def test_lock_refuses_what_it_cannot_lock(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "environment.yml").write_text("dependencies:\n  - pip:\n    - tinydep\n")
    (app / "pylock.toml").write_text(_lock([]))
    (app / "requirements.txt").write_text("tinydep\n")
    conda = {**_env(tmp_path, ""), "AZUREML_EXTRA_CONDA_YAML": "environment.yml"}
    assert main(["lock"], conda) == 2
    assert "conda files are out of scope" in capsys.readouterr().err
    assert main(["lock"], _env(tmp_path, "pylock.toml")) == 2
    assert "is a lock file already" in capsys.readouterr().err
    assert main(["lock", "-o", str(app / "locked.toml")], _env(tmp_path, "requirements.txt")) == 2
    assert "pylock.toml or pylock.NAME.toml" in capsys.readouterr().err
    assert not (app / "locked.toml").exists()


@needs_pylock
def test_the_warm_path_of_a_lock_parses_nothing(tmp_path: Path) -> None:
    """A lock's second start: the note and the store, no packaging, no TOML parser."""
    app = tmp_path / "app"
    wheel = build_wheel(app / "wheels", "tinydep", "1.0")
    from extensibility.fingerprint import sha256_file

    (app / "pylock.toml").write_text(_lock([_package("tinydep", "1.0", path=f"wheels/{wheel.name}",
                                                     sha256=sha256_file(wheel))]))
    env = {**_env(tmp_path, "pylock.toml"), "PIP_NO_INDEX": "1"}
    assert main(["prepare", "--", "true"], env) == 0
    child = subprocess.run([sys.executable, "-c", WARM_PROBE, json.dumps(env)],
                           capture_output=True, text=True, cwd=REPO, check=False)
    assert child.returncode == 0, child.stderr
    assert "request unchanged" in child.stderr
    imported = set(json.loads(child.stdout))
    assert {m for m in (*NEVER_ON_THE_WARM_PATH, *LOCK_ONLY) if m in imported} == set()


@needs_pylock
def test_offline_a_lock_takes_its_files_from_the_wheelhouse_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    from extensibility.fingerprint import sha256_file

    app = tmp_path / "app"
    wheel = build_wheel(app / "wheels", "tinydep", "1.0")
    url = f"http://127.0.0.1:9/packages/{wheel.name}"  # nothing listens: never fetched
    (app / "pylock.toml").write_text(_lock([
        _package("tinydep", "1.0", url=url, sha256=sha256_file(wheel)),
        _package("greeting", "1.0", url="http://127.0.0.1:9/packages/greeting-1.0-py3-none-any.whl"),
    ]))
    env = _env(tmp_path, "pylock.toml", EXTENSIBILITY_WHEELHOUSE="wheels")
    assert main(["plan"], env) == 95
    err = capsys.readouterr().err
    assert "the wheelhouse" in err and "has no greeting-1.0-py3-none-any.whl" in err
    (app / "pylock.toml").write_text(_lock([_package("tinydep", "1.0", url=url,
                                                     sha256=sha256_file(wheel))]))
    assert main(["prepare", "--", "true"], env) == 0, capsys.readouterr().err
    [environment] = complete_envs(tmp_path / "cache")
    assert overlay_packages(environment) == {"tinydep==1.0"}


@needs_pylock
def test_a_written_lock_never_holds_a_secret() -> None:
    from extensibility.errors import RequestNotSupported
    from extensibility.lockfile.write import lock_text

    wheel = {"name": "x-1.0-py3-none-any.whl", "hashes": {"sha256": "a" * 64}}
    text = lock_text([{"name": "x", "version": "1.0", "index": "https://bot:tok@h/simple",
                       "wheels": [{**wheel, "url": "https://bot:tok@h/x-1.0-py3-none-any.whl"}]}],
                     "uv")
    assert "tok" not in text and 'url = "https://h/x-1.0-py3-none-any.whl"' in text
    with pytest.raises(RequestNotSupported, match="carries a secret in its query"):
        lock_text([{"name": "x", "version": "1.0",
                    "wheels": [{**wheel, "url": "https://h/x-1.0-py3-none-any.whl?sig=s"}]}],
                  "uv")


@needs_pylock
@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_a_lock_of_local_wheels_names_them_relative_to_itself(
    installer: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """This interpreter stands for the image (its own uv and pip)."""
    app = tmp_path / "app"
    build_wheel(app / "wheels", "tinydep", "1.0")
    build_wheel(app / "wheels", "greeting", "1.0", requires=["tinydep"])
    (app / "requirements.txt").write_text("--no-index\n--find-links wheels\ngreeting\n")
    env = {**_env(tmp_path, "requirements.txt"), "EXTENSIBILITY_INSTALLER": installer}
    assert main(["lock", "-o", str(app / "pylock.toml")], env) == 0, capsys.readouterr().err
    text = (app / "pylock.toml").read_text()
    assert 'path = "wheels/greeting-1.0-py3-none-any.whl"' in text
    assert 'path = "wheels/tinydep-1.0-py3-none-any.whl"' in text
    assert f'installer = "{installer}"' in text
    moved = tmp_path / "elsewhere"
    (app).rename(moved)  # the lock and its wheels travel together
    (tmp_path / "app").mkdir()
    env["AML_APP_ROOT"] = str(moved)
    env["AZUREML_EXTRA_REQUIREMENTS_TXT"] = "pylock.toml"
    assert main(["prepare", "--", "true"], env) == 0, capsys.readouterr().err
    [environment] = complete_envs(tmp_path / "cache")
    assert overlay_packages(environment) == {"greeting==1.0", "tinydep==1.0"}
