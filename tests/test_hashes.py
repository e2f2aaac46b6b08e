"""A fully hashed requirements file (what `pip-compile --generate-hashes` writes) serves
with both installers, with hash checking required or not."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import StartServer, contract_env, run_entrypoint
from tests.support import ImageVenv, Index, hermetic_env


def compile_hashed(image: ImageVenv, index: Index, app: Path, tmp_path: Path,
                   first_line: str = "") -> None:
    """The request as a real compile writes it: every package pinned with its hashes,
    `# via` comments, continuation lines. certifi 2024.8.30 is inside the server's range
    (certifi>=2024.7.4) but not the image's version: a held package the request pins."""
    source = tmp_path / "requirements.in"
    source.write_text("greeting\ncertifi==2024.8.30\n")
    compiled = subprocess.run(
        [str(image.bin / "uv"), "pip", "compile", "--generate-hashes", "--index-url", index.url,
         "--python", str(image.python), str(source), "--no-header"],
        env=hermetic_env(tmp_path), capture_output=True, text=True, check=True).stdout
    assert "--hash=sha256:" in compiled and "# via" in compiled and "\\\n" in compiled
    (app / "requirements.txt").write_text(first_line + compiled)


@pytest.mark.parametrize("flag", ["none", "variable", "line"])
@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_a_hashed_compile_serves_cold_and_warm(
    installer: str, flag: str, image: ImageVenv, app: Path, cache: Path, index: Index,
    tmp_path: Path, start_server: StartServer,
) -> None:
    compile_hashed(image, index, app, tmp_path,
                   "--require-hashes\n" if flag == "line" else "")
    extra = {"EXTENSIBILITY_REQUIRE_HASHES": "1"} if flag == "variable" else {}
    env = contract_env(tmp_path, image, app, cache, PIP_INDEX_URL=index.url,
                       EXTENSIBILITY_INSTALLER=installer,
                       AZUREML_EXTRA_REQUIREMENTS_TXT="requirements.txt", **extra)
    for start in ("cold", "warm"):
        server = start_server(image, env)
        assert server.score({}).json() == {"greeting": "HELLO WORLD"}
        log = server.output()
        if start == "cold":
            assert "-> 2024.8.30 (overrides the image)" in log
            assert "+ greeting 1.0" in log and "check: consistent" in log
            if flag != "none":
                assert "--require-hashes" in log
        else:
            assert "(request unchanged, installer" in log and "running" not in log
        server.process.terminate()
        server.process.wait(timeout=30)


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_a_tampered_hash_is_refused_by_both_installers(
    installer: str, image: ImageVenv, app: Path, cache: Path, index: Index, tmp_path: Path,
) -> None:
    compile_hashed(image, index, app, tmp_path, "--require-hashes\n")
    requirements = app / "requirements.txt"
    text = requirements.read_text()
    start = text.index("greeting==1.0")
    at = text.index("--hash=sha256:", start) + len("--hash=sha256:")
    requirements.write_text(text[:at] + ("0" if text[at] != "0" else "1") + text[at + 1:])
    env = contract_env(tmp_path, image, app, cache, PIP_INDEX_URL=index.url,
                       EXTENSIBILITY_INSTALLER=installer,
                       AZUREML_EXTRA_REQUIREMENTS_TXT="requirements.txt")
    result = run_entrypoint(image, env, "prepare")
    assert result.returncode == 95, result.stderr
    assert "conflicts with the scoring server" not in result.stderr
    assert "greeting" in result.stderr.lower() and "hash" in result.stderr.lower()
    assert not list(cache.glob("envs/*"))
