"""Security end to end: secrets off every argv, a policy the user's installer configuration
cannot get around (real entrypoint, real installers, indexes on 127.0.0.1)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import contract_env, run_entrypoint
from tests.faultproxy import FaultProxy
from tests.support import ImageVenv, Index, start_index, wait_for
from tests.wheels import build_wheel

pytestmark = pytest.mark.slow
SECRET = "s3cret-T0KEN-for-argv"


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    queue = [pid]
    while queue:
        current = queue.pop()
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        found += map(int, children)
        queue += map(int, children)
    return found


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.fixture
def proxy(index: Index) -> Iterator[FaultProxy]:
    with FaultProxy(index.url.removesuffix("/simple/")) as running:
        yield running


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_an_index_token_is_never_on_an_argv(installer: str, image: ImageVenv, app: Path,
                                             cache: Path, proxy: FaultProxy,
                                             tmp_path: Path) -> None:
    """Held at the index, the running installer's command line (and its children's) is read
    as another local user would read it with ps."""
    url = proxy.url.replace("http://", f"http://bot:{SECRET}@")  # the proxy ignores it
    (app / "requirements.txt").write_text(f"--index-url {url}\ngreeting\n")
    env = contract_env(tmp_path, image, app, cache, EXTENSIBILITY_INSTALLER=installer,
                       AZUREML_EXTRA_REQUIREMENTS_TXT="requirements.txt")
    proxy.faults.mode = "hold"
    start = subprocess.Popen([str(image.bin / "extensibility"), "run", "--", "true"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: bool(proxy.faults.requests), 120, "the installer to ask the index")
        lines = [command_line(pid) for pid in [start.pid, *descendants(start.pid)]]
        assert any(installer in line for line in lines), lines  # the installer was running
        assert not [line for line in lines if SECRET in line]
    finally:
        proxy.faults.released.set()
    _, err = start.communicate(timeout=300)
    assert start.returncode == 0, err
    assert SECRET not in err


@pytest.fixture
def other_index(tmp_path: Path) -> Iterator[Index]:
    """An index the policy does not allow, with a package the allowed one lacks."""
    folder = tmp_path / "other-packages"
    build_wheel(folder, "unvetted", "1.0")
    served = start_index(folder, tmp_path / "other-index.log")
    yield served
    served.stop()


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_installer_config_files_cannot_get_around_the_policy(
    installer: str, image: ImageVenv, app: Path, cache: Path, index: Index, other_index: Index,
    tmp_path: Path,
) -> None:
    """EXTENSIBILITY_NO_EXTRA_INDEX is on; the user's pip.conf / uv.toml adds an extra index
    anyway. The installer must not read it: the package only that index has is not found."""
    (app / "requirements.txt").write_text(f"--index-url {index.url}\nunvetted\n")
    env = contract_env(tmp_path, image, app, cache, EXTENSIBILITY_INSTALLER=installer,
                       EXTENSIBILITY_NO_EXTRA_INDEX="1",
                       AZUREML_EXTRA_REQUIREMENTS_TXT="requirements.txt")
    if installer == "pip":
        config = tmp_path / "pip.conf"
        config.write_text(f"[global]\nextra-index-url = {other_index.url}\n")
        env["PIP_CONFIG_FILE"] = str(config)
    else:
        config = tmp_path / "uv.toml"
        config.write_text(f'[pip]\nextra-index-url = ["{other_index.url}"]\n')
        env.pop("UV_NO_CONFIG")
        env["UV_CONFIG_FILE"] = str(config)
    result = run_entrypoint(image, env, "run", "--", "true")
    assert result.returncode == 95, result.stderr
    assert "unvetted" in result.stderr
    variable = "PIP_CONFIG_FILE" if installer == "pip" else "UV_CONFIG_FILE"
    assert f"not passed to the installer (the policy does not check them): {variable}" in \
        result.stderr
    env.pop("EXTENSIBILITY_NO_EXTRA_INDEX")  # without a policy, the user's config is theirs
    assert run_entrypoint(image, env, "run", "--", "true").returncode == 0


def test_the_boot_probe_sees_no_credential_and_no_deployment_setting(tmp_path: Path) -> None:
    import json
    import sys

    from extensibility.consistency import boot_error, start_boot_probe

    # a "server" module that records, when it is imported, what the probe let it see
    (tmp_path / "telltale.py").write_text(
        "import json, os\n"
        f"open({str(tmp_path / 'seen.json')!r}, 'w').write(json.dumps(dict(os.environ)))\n")
    secrets = {
        "AZURE_CLIENT_SECRET": "client-secret", "AZURE_STORAGE_CONNECTION_STRING":
        "AccountName=a;AccountKey=k3y", "EXTENSIBILITY_REMOTE_CACHE":
        "https://a.blob.core.windows.net/c?sig=s1g", "PIP_INDEX_URL": "https://u:p@idx/simple",
        "UV_INDEX_URL": "https://u:p@idx/simple", "MSI_SECRET": "msi", "IDENTITY_HEADER": "id",
        "HF_TOKEN": "hf", "MY_API_KEY": "key", "DB_PASSWORD": "pw", "AML_APP_ROOT": "/app",
        "AZUREML_ENTRY_SCRIPT": "score.py", "APPINSIGHTS_INSTRUMENTATIONKEY": "ikey",
    }
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path), "LANG": "C.UTF-8", **secrets}
    probe = start_boot_probe(Path(sys.executable), "telltale", env)
    assert boot_error(probe, 120) is None
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert not set(secrets) & set(seen), sorted(set(secrets) & set(seen))
    assert seen["PYTHONPATH"] == str(tmp_path) and seen["LANG"] == "C.UTF-8"
