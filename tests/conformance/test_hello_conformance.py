"""Conformance of the example third-party plugin (``orchestrator_hello``): files on disk.

Each deployment gets a directory of its own under the check's temporary directory; the
lister is simply what is in it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from orchestrator_hello import plugin as hello

from orchestrator.conformance import Env, Subject, conformance_tests

FILE_IN_DIRECTORY = "hello.relationships.file_in_directory"


def root(env: Env) -> Path:
    """The deployment's own directory."""
    return env.tmp_path / env.deployment


def prepare(env: Env) -> None:
    root(env).mkdir()
    (root(env) / "not-a-directory").write_text("in the way\n")


def files(folder: Path, skip: tuple[str, ...] = ()) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.name not in skip)


def in_root(env: Env) -> list[str]:
    return files(root(env), skip=("not-a-directory",))


def delete_path(env: Env, name: str) -> None:
    path = root(env) / name
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()


# ---------------------------------------------------------------- hello.File, on its own


def file_properties(env: Env) -> dict[str, Any]:
    return {"path": str(root(env) / "hello.txt"), "content": f"hello from {env.deployment}\n"}


def file_with_missing_template(env: Env) -> dict[str, Any]:
    return {**file_properties(env), "template": "templates/missing.j2"}


# ---------------------------------------------------------------- hello.Directory


def directory_properties(env: Env) -> dict[str, Any]:
    return {"path": str(root(env) / "site")}


def directory_in_the_way(env: Env) -> dict[str, Any]:
    return {"path": str(root(env) / "not-a-directory")}


# ---------------------------------------------------------------- hello.File in a hello.Directory


def site(env: Env) -> dict[str, Any]:
    return {"node_templates": {"site": {"type": "hello.Directory", "properties": directory_properties(env)}}}


def in_site(env: Env) -> list[str]:
    return files(root(env) / "site", skip=("MANIFEST",))


def delete_in_site(env: Env, name: str) -> None:
    (root(env) / "site" / name).unlink()


def templated(env: Env) -> dict[str, Any]:
    return {"path": "greeting.txt", "template": "templates/greeting.txt.j2",
            "variables": {"name": env.deployment}}


SUBJECTS = [
    Subject("hello.File", in_root, properties=file_properties, invalid_properties=file_with_missing_template,
            setup=prepare, delete=delete_path),
    Subject("hello.Directory", in_root, properties=directory_properties, invalid_properties=directory_in_the_way,
            setup=prepare, delete=delete_path),
    Subject("hello.File", in_site, name="hello.File in hello.Directory", properties=templated,
            invalid_properties=lambda env: {**templated(env), "template": "templates/missing.j2"},
            files={"templates/greeting.txt.j2": "Hello, {{ name }}!\n"},
            blueprint=site, relationships=[{"type": FILE_IN_DIRECTORY, "target": "site"}],
            list_leftovers=in_root, setup=prepare, delete=delete_in_site),
]

TestHelloConformance = conformance_tests(*SUBJECTS, plugins=[hello.plugin])


def test_every_hello_node_type_has_a_subject() -> None:
    assert set(hello.TYPES["node_types"]) == {s.type for s in SUBJECTS}
