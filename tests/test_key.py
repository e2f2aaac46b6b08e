"""The cache key: same request, same key; any change that matters, a new key."""

from __future__ import annotations

import json
import os
from pathlib import Path

from extensibility.image import Image
from extensibility.key import canonical_json, differences, key_document, key_of
from extensibility.request import REQUIREMENTS, Request
from extensibility.requirements import parse_requirements
from extensibility.settings import Settings
from extensibility.start import Start


def make_image(tmp_path: Path, *dists: str, version: str = "3.11.7") -> Image:
    site = tmp_path / "site-packages"
    site.mkdir(exist_ok=True)
    for dist in dists:
        (site / f"{dist}.dist-info").mkdir(exist_ok=True)
    return Image(executable="/image/bin/python3.11", prefix="/image", version=version,
                 cache_tag="cpython-311", abiflags="", platform="linux-x86_64",
                 site_dirs=(str(site),))


def key_for(tmp_path: Path, text: str, image: Image, installer: str = "uv",
            env: dict[str, str] | None = None) -> tuple[str, dict[str, object]]:
    path = tmp_path / "requirements.txt"
    path.write_text(text)
    env = env or {}
    settings = Settings.from_environ({**env, "EXTENSIBILITY_CACHE_DIR": str(tmp_path / "c")})
    start = Start(settings, env, ["true"], Request(REQUIREMENTS, path), image=image,
                  installer=(installer, None))
    document = key_document(start, parse_requirements(path, env))
    return key_of(document), document


def test_same_request_same_key_and_formatting_does_not_matter(tmp_path: Path) -> None:
    image = make_image(tmp_path, "numpy-1.26.4")
    first, _ = key_for(tmp_path, "requests>=2\n", image)
    again, _ = key_for(tmp_path, "# comment\nRequests >= 2   # why\n", image)
    assert first == again


def test_request_image_interpreter_and_installer_changes_give_new_keys(tmp_path: Path) -> None:
    image = make_image(tmp_path, "numpy-1.26.4")
    base, base_doc = key_for(tmp_path, "requests>=2\n", image)
    changed_request, _ = key_for(tmp_path, "requests>=2.1\n", image)
    changed_interpreter, _ = key_for(tmp_path, "requests>=2\n",
                                     make_image(tmp_path, "numpy-1.26.4", version="3.11.8"))
    changed_installer, _ = key_for(tmp_path, "requests>=2\n", image, installer="pip")
    (tmp_path / "site-packages" / "flask-3.0.0.dist-info").mkdir()
    changed_image, image_doc = key_for(tmp_path, "requests>=2\n", make_image(tmp_path))
    keys = {base, changed_request, changed_interpreter, changed_installer, changed_image}
    assert len(keys) == 5
    assert differences(base_doc, image_doc) == ["image packages (+flask==3.0.0)"]


def test_credentials_never_reach_the_document_and_do_not_change_the_key(tmp_path: Path) -> None:
    image = make_image(tmp_path)
    env = {"PIP_EXTRA_INDEX_URL": "https://bot:hunter2@extra.example/simple"}
    one, document = key_for(tmp_path, "--index-url https://user:s3cret@pkgs.example/simple\nx\n",
                            image, installer="pip", env=env)
    rotated, _ = key_for(tmp_path, "--index-url https://user:n3w@pkgs.example/simple\nx\n",
                         image, installer="pip",
                         env={"PIP_EXTRA_INDEX_URL": "https://bot:other@extra.example/simple"})
    text = canonical_json(document)
    assert "s3cret" not in text and "hunter2" not in text
    assert "https://****@pkgs.example/simple" in text
    assert one == rotated


def test_installer_settings_take_part_but_presentation_does_not(tmp_path: Path) -> None:
    image = make_image(tmp_path)
    plain, _ = key_for(tmp_path, "x\n", image, installer="pip", env={})
    quiet, _ = key_for(tmp_path, "x\n", image, installer="pip",
                       env={"PIP_PROGRESS_BAR": "off", "UV_INDEX_URL": "https://uv.example"})
    pre, _ = key_for(tmp_path, "x\n", image, installer="pip", env={"PIP_PRE": "1"})
    config = tmp_path / "pip.conf"
    config.write_text("[global]\nindex-url = https://a.example/simple\n")
    configured, _ = key_for(tmp_path, "x\n", image, installer="pip",
                            env={"PIP_CONFIG_FILE": str(config)})
    config.write_text("[global]\nindex-url = https://b.example/simple\n")
    reconfigured, _ = key_for(tmp_path, "x\n", image, installer="pip",
                              env={"PIP_CONFIG_FILE": str(config)})
    assert plain == quiet
    assert len({plain, pre, configured, reconfigured}) == 4


def test_document_is_readable_json(tmp_path: Path) -> None:
    _, document = key_for(tmp_path, "requests\n", make_image(tmp_path, "a-1"))
    parsed = json.loads(canonical_json(document))
    assert parsed["request"]["requirements"] == ["requests"]
    assert parsed["image"] == {str(tmp_path / "site-packages"): ["a==1"]}
    assert parsed["schema"] == 1


def test_query_string_tokens_are_redacted_too() -> None:
    from extensibility.redact import redact_url

    assert redact_url("https://u:p@h.example/x?sig=abc&se=1&api_key=zz") == \
        "https://****@h.example/x?sig=****&se=1&api_key=****"
    assert redact_url("https://h.example/simple/pkg/") == "https://h.example/simple/pkg/"


def test_constraint_files_named_by_variables_count_by_content(tmp_path: Path) -> None:
    image = make_image(tmp_path)
    pins = tmp_path / "pins.txt"
    pins.write_text("numpy==1.26.4\n")
    env = {"PIP_CONSTRAINT": str(pins), "PIP_CONFIG_FILE": os.devnull}
    before, _ = key_for(tmp_path, "x\n", image, installer="pip", env=env)
    pins.write_text("numpy==2.0.0\n")
    after, _ = key_for(tmp_path, "x\n", image, installer="pip", env=env)
    assert before != after
