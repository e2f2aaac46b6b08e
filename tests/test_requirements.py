"""Requirements files read the way pip reads them, errors with file, line and text."""

from __future__ import annotations

from pathlib import Path

import pytest

from extensibility.errors import RequestInvalid
from extensibility.requirements import parse_requirements
from tests.wheels import build_wheel


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_comments_continuations_markers_and_names_are_normalised(tmp_path: Path) -> None:
    spec = parse_requirements(write(tmp_path / "r.txt", """\
# a comment line
Requests >= 2.0 , <3   # trailing comment
numpy\\
==1.26.*
My_Package[Extra_B,extra_a] ; python_version >= "3.8"
"""), {})
    assert [r.key_text for r in spec.requirements] == [
        "requests<3,>=2.0",
        "numpy==1.26.*",
        'my-package[extra-a,extra-b]; python_version >= "3.8"',
    ]
    assert spec.requirements[1].origin.lineno == 3  # a continued line reports its first line
    assert [r.name for r in spec.requirements] == ["requests", "numpy", "my-package"]


def test_a_hash_sign_without_space_before_it_is_not_a_comment(tmp_path: Path) -> None:
    with pytest.raises(RequestInvalid, match=r"r\.txt:1: not a valid requirement"):
        parse_requirements(write(tmp_path / "r.txt", "pkg#egg\n"), {})


def test_includes_are_relative_to_the_including_file(tmp_path: Path) -> None:
    write(tmp_path / "sub" / "base.txt", "-c pins.txt\nflask\n")
    write(tmp_path / "sub" / "pins.txt", "flask==3.0.0\n")
    spec = parse_requirements(write(tmp_path / "r.txt", "-r sub/base.txt\nnumpy\n"), {})
    assert [r.key_text for r in spec.requirements] == ["flask", "numpy"]
    assert [r.key_text for r in spec.constraints] == ["flask==3.0.0"]
    assert [p.name for p in spec.files] == ["r.txt", "base.txt", "pins.txt"]


def test_environment_variables_are_expanded_like_pip(tmp_path: Path) -> None:
    spec = parse_requirements(
        write(tmp_path / "r.txt", "--index-url https://${TOKEN}@pkgs.example/simple\n"
              "pkg==${VERSION}\n--extra-index-url https://x/${lower}/${UNSET}\n"),
        {"TOKEN": "s3cret", "VERSION": "1.2", "lower": "no"})
    assert spec.options.index_url == "https://s3cret@pkgs.example/simple"
    assert spec.requirements[0].key_text == "pkg==1.2"
    # only ${UPPER_CASE} names are expanded, and only when set (as pip does)
    assert spec.options.extra_index_urls == ("https://x/${lower}/${UNSET}",)


def test_option_lines(tmp_path: Path) -> None:
    (tmp_path / "wheels").mkdir()
    spec = parse_requirements(write(tmp_path / "r.txt", """\
-i https://primary.example/simple
--extra-index-url=https://extra.example/simple
--find-links ./wheels
-f https://links.example/
--no-index
--pre
--require-hashes
--prefer-binary
--only-binary :all:
--trusted-host extra.example
pkg==1.0 --hash=sha256:aaaa --hash sha256:bbbb
"""), {})
    options = spec.options
    assert options.index_url == "https://primary.example/simple"
    assert options.extra_index_urls == ("https://extra.example/simple",)
    assert options.find_links == (str(tmp_path / "wheels"), "https://links.example/")
    assert options.no_index and options.pre and options.require_hashes and options.prefer_binary
    assert options.only_binary == (":all:",) and options.trusted_hosts == ("extra.example",)
    assert spec.requirements[0].hashes == ("sha256:aaaa", "sha256:bbbb")
    assert str(tmp_path / "wheels") in spec.local_inputs


def test_urls_and_local_paths(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "wheels", "local-pkg", "1.0")
    project = tmp_path / "proj"
    write(project / "pyproject.toml", "[project]\nname = 'proj'\nversion = '1'\n")
    spec = parse_requirements(write(tmp_path / "r.txt", f"""\
./wheels/{wheel.name}
-e ./proj
git+https://user:pw@git.example/repo.git#egg=repo
pkg @ https://files.example/pkg-1.0.tar.gz
https://files.example/other-2.0.tar.gz ; sys_platform == "linux"
"""), {})
    local, editable, vcs, named_url, bare_url = spec.requirements
    assert local.install_text == str(wheel) and local.key_text.startswith(f"local:{wheel.name}")
    assert editable.editable and editable.install_text == str(project)
    assert vcs.key_text == "git+https://****@git.example/repo.git#egg=repo"
    assert vcs.name == "repo"
    assert named_url.name == "pkg" and named_url.key_text.startswith("pkg @ https://")
    assert bare_url.key_text.endswith('; sys_platform == "linux"')


def test_local_content_is_in_the_key_text_not_its_location(tmp_path: Path) -> None:
    one = build_wheel(tmp_path / "a", "same", "1.0")
    two = build_wheel(tmp_path / "b", "same", "1.0")
    key_one = parse_requirements(write(tmp_path / "a.txt", f"{one}\n"), {}).requirements[0]
    key_two = parse_requirements(write(tmp_path / "b.txt", f"{two}\n"), {}).requirements[0]
    assert key_one.key_text == key_two.key_text
    build_wheel(tmp_path / "b", "same", "1.0", modules={"same/__init__.py": "changed = 1\n"})
    changed = parse_requirements(tmp_path / "b.txt", {}).requirements[0]
    assert changed.key_text != key_one.key_text


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("ok\nnot a valid ===\n", 2, "not a valid requirement"),
        ("--index-url\n", 1, "needs a value"),
        ("--frobnicate\n", 1, "unknown or misplaced option"),
        ("pkg --index-url x\n", 1, "is not allowed after a requirement"),
        ("pkg --hash=md5:abc\n", 1, "malformed hash"),
        ("-r missing.txt\n", 1, "does not exist"),
        ("-r https://example/r.txt\n", 1, "remote requirements files are not supported"),
        ("./missing.whl\n", 1, "local path"),
        ("--no-index=1\n", 1, "takes no value"),
    ],
)
def test_malformed_lines_name_file_line_and_reason(tmp_path: Path, text: str, line: int,
                                                   reason: str) -> None:
    path = write(tmp_path / "requirements.txt", text)
    with pytest.raises(RequestInvalid) as caught:
        parse_requirements(path, {})
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}: ") and reason in message
    assert "fix:" in message


def test_circular_includes_are_refused(tmp_path: Path) -> None:
    write(tmp_path / "b.txt", "-r a.txt\n")
    with pytest.raises(RequestInvalid, match="include each other"):
        parse_requirements(write(tmp_path / "a.txt", "-r b.txt\n"), {})


def test_installer_line_keeps_hashes_and_editability(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    write(project / "setup.py", "")
    spec = parse_requirements(write(tmp_path / "r.txt",
                                    "pkg==1 --hash=sha256:ab\n-e proj\n"), {})
    assert [r.installer_line() for r in spec.requirements] == [
        "pkg==1 --hash=sha256:ab", f"-e {project}"]


def test_index_options_become_each_installers_flags_and_sources_variables() -> None:
    """Sources may carry tokens: never on the installer's argv, always in its environment."""
    from extensibility.installers.options import pip_flags, pip_sources, uv_flags, uv_sources
    from extensibility.requirements import IndexOptions

    options = IndexOptions(index_url="https://u:t@i", extra_index_urls=("https://e",), pre=True,
                           trusted_hosts=("e",), prefer_binary=True, require_hashes=True,
                           find_links=("/w",))
    assert pip_flags(options) == ["--trusted-host", "e", "--pre", "--require-hashes",
                                  "--prefer-binary"]
    assert uv_flags(options) == ["--allow-insecure-host", "e", "--prerelease", "allow",
                                 "--require-hashes"]
    user = {"PIP_INDEX_URL": "https://mine", "PIP_EXTRA_INDEX_URL": "https://x",
            "UV_FIND_LINKS": "/v"}
    assert pip_sources(options, user) == {"PIP_INDEX_URL": "https://u:t@i",
                                          "PIP_EXTRA_INDEX_URL": "https://x https://e",
                                          "PIP_FIND_LINKS": "/w"}
    assert uv_sources(options, user) == {"UV_INDEX_URL": "https://u:t@i",
                                         "UV_EXTRA_INDEX_URL": "https://e",
                                         "UV_FIND_LINKS": "/v,/w"}  # uv splits it on commas


def test_variables_are_expanded_on_a_continued_last_line(tmp_path: Path) -> None:
    spec = parse_requirements(write(tmp_path / "r.txt", "foo==${V} \\"), {"V": "1.2"})
    assert spec.requirements[0].key_text == "foo==1.2"
