"""Several --find-links sources, from the request and the user's own variables, reach the
installer joined the way it splits each variable (pip: white space; uv's UV_FIND_LINKS:
commas), folders with a space included."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from extensibility.installers.config import translated_variables
from extensibility.installers.options import pip_sources, uv_sources
from extensibility.requirements import IndexOptions
from tests.conftest import StartServer, contract_env
from tests.support import ImageVenv


def folder_of(packages: Path, folder: Path, *names: str) -> Path:
    folder.mkdir(parents=True)
    for name in names:
        for wheel in packages.glob(f"{name.replace('-', '_')}-*.whl"):
            shutil.copy(wheel, folder)
    return folder


@pytest.mark.parametrize(("installer", "variable"), [
    ("uv", "UV_FIND_LINKS"), ("uv", "PIP_FIND_LINKS"), ("pip", "PIP_FIND_LINKS"),
])
def test_request_and_user_find_links_are_all_read(
    installer: str, variable: str, image: ImageVenv, app: Path, cache: Path, packages: Path,
    tmp_path: Path, start_server: StartServer,
) -> None:
    """Each package is in one folder only: the install works only if all four are read."""
    folder_of(packages, app / "wheel house", "greeting")  # a space: quoted in the file
    folder_of(packages, app / "extra", "tinydep")
    # uv reads a folder with a space from its comma-separated variable; pip's variable is
    # split on white space, so a user of pip cannot name one there
    mine = folder_of(packages, tmp_path / ("my wheels" if variable == "UV_FIND_LINKS"
                                           else "my-wheels"), "hello-cli")
    more = folder_of(packages, tmp_path / "more", "needs-framework")
    joined = f"{mine},{more}" if variable == "UV_FIND_LINKS" else f"{mine} {more}"
    (app / "requirements.txt").write_text('--no-index\n--find-links "wheel house"\n'
                                          "--find-links extra\ngreeting\nhello-cli\n"
                                          "needs-framework\n")
    env = contract_env(tmp_path, image, app, cache, EXTENSIBILITY_INSTALLER=installer,
                       AZUREML_EXTRA_REQUIREMENTS_TXT="requirements.txt", **{variable: joined})
    for start in ("cold", "warm"):
        server = start_server(image, env)
        assert server.score({}).json() == {"greeting": "HELLO WORLD"}
        log = server.output()
        if start == "cold":
            assert "+ greeting 1.0" in log and "+ hello-cli 1.0" in log
            assert "+ needs-framework 1.0" in log and "+ tinydep 1.0" in log
        else:
            assert "(request unchanged, installer" in log and "running" not in log
        server.process.terminate()
        server.process.wait(timeout=30)


def test_each_variable_is_joined_as_its_installer_splits_it(tmp_path: Path) -> None:
    """The six source variables: the index URLs replace, the lists join."""
    spaced = str(tmp_path / "a b")
    options = IndexOptions(index_url="http://i/simple", extra_index_urls=("http://x/simple",),
                           find_links=(spaced, "/w/c,d"))
    user = {"PIP_INDEX_URL": "http://old/simple", "UV_INDEX_URL": "http://old/simple",
            "PIP_EXTRA_INDEX_URL": "http://e1/simple  http://e2/simple",
            "UV_EXTRA_INDEX_URL": "http://e1/simple http://e2/simple",
            "PIP_FIND_LINKS": "/u/1 /u/2", "UV_FIND_LINKS": "/u/1,/u/two words"}
    assert pip_sources(options, user) == {
        "PIP_INDEX_URL": "http://i/simple",
        "PIP_EXTRA_INDEX_URL": "http://e1/simple http://e2/simple http://x/simple",
        "PIP_FIND_LINKS": f"/u/1 /u/2 {Path(spaced).as_uri()} /w/c,d",
    }
    assert uv_sources(options, user) == {
        "UV_INDEX_URL": "http://i/simple",
        "UV_EXTRA_INDEX_URL": "http://e1/simple http://e2/simple http://x/simple",
        "UV_FIND_LINKS": f"/u/1,/u/two words,{spaced},file:///w/c%2Cd",
    }
    # the user's pip list, given to uv under uv's name, is re-joined with commas
    assert translated_variables("uv", {"PIP_FIND_LINKS": "/u/1  /u/2"}) == {
        "UV_FIND_LINKS": "/u/1,/u/2"}
