"""A private index that needs a password: installs work, the password is never shown."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import contract_env, run_entrypoint
from tests.support import ImageVenv, Index, start_index

pytestmark = pytest.mark.slow
SECRET = "s3cr3t-t0ken"


@pytest.fixture
def private_index(packages: Path, tmp_path: Path) -> Iterator[Index]:
    served = start_index(packages, tmp_path / "private.log", auth=("deploy", SECRET))
    yield served
    served.stop()


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_credentials_in_pip_index_url_work_and_never_show(
    installer: str, image: ImageVenv, app: Path, cache: Path, private_index: Index, tmp_path: Path,
) -> None:
    url = private_index.url.replace("http://", f"http://deploy:{SECRET}@")
    (app / "requirements.txt").write_text("greeting\n")
    env = contract_env(tmp_path, image, app, cache, PIP_INDEX_URL=url,
                       EXTENSIBILITY_INSTALLER=installer,
                       AZUREML_EXTRA_REQUIREMENTS_TXT="requirements.txt")
    # without the credentials the index refuses: the test would notice an unused password
    refused = run_entrypoint(image, {**env, "PIP_INDEX_URL": private_index.url}, "run", "--",
                             "true")
    assert refused.returncode == 95
    assert "the package index answered HTTP 401: the credentials were refused" in refused.stderr

    built = run_entrypoint(image, env, "run", "--", "python", "-c",
                           "import greeting; print(greeting.greet('private'))")
    assert built.returncode == 0, built.stderr
    assert built.stdout.strip() == "HELLO PRIVATE"
    plan_text = run_entrypoint(image, env, "plan", "--", "python")
    plan_json = run_entrypoint(image, env, "plan", "--json", "--", "python")
    (app / "requirements.txt").write_text("greeting\nno-such-package\n")
    failed = run_entrypoint(image, env, "run", "--", "true")
    assert failed.returncode == 95

    shown = [refused.stderr, built.stderr, plan_text.stdout, plan_text.stderr,
             plan_json.stdout, failed.stderr]
    shown += [p.read_text() for p in cache.glob("envs/*/.extensibility/*")]
    shown += [p.read_text() for p in cache.glob("warm/*.json")]
    assert all(SECRET not in text for text in shown)
    assert "deploy" not in json.dumps(json.loads(plan_json.stdout)["key_document"])
    assert "http://****@127.0.0.1" in plan_text.stdout


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_a_wrong_password_is_named_as_such_without_showing_it(
    installer: str, image: ImageVenv, app: Path, cache: Path, private_index: Index, tmp_path: Path,
) -> None:
    """The index refuses the password: both installers' failures say so and point at the
    credentials (pip alone would only say "No matching distribution found")."""
    wrong = "wr0ng-passw0rd"
    url = private_index.url.replace("http://", f"http://deploy:{wrong}@")
    (app / "requirements.txt").write_text("tinydep\ngreeting\n")
    env = contract_env(tmp_path, image, app, cache, PIP_INDEX_URL=url,
                       EXTENSIBILITY_INSTALLER=installer,
                       AZUREML_EXTRA_REQUIREMENTS_TXT="requirements.txt")
    result = run_entrypoint(image, env, "prepare")
    assert result.returncode == 95, result.stderr
    # pypiserver answers a wrong password with 403 (pip says so only in its debug log)
    assert "the package index answered HTTP 403: the credentials were refused" in result.stderr
    assert "127.0.0.1" in result.stderr.split("credentials were refused")[1]
    assert "fix: check the user name and password (or token) of the index URL" in result.stderr
    assert f"{app / 'requirements.txt'}:1: 'tinydep'" in result.stderr
    assert wrong not in result.stderr and SECRET not in result.stderr
    assert not list(cache.glob("envs/*"))
