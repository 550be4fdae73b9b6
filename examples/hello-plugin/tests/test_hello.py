"""Tests of the hello plugin, written the way a third-party author writes them.

Only the ``orch`` fixture (installed with ``orchestrator`` as a pytest plugin) and the
public names of ``orchestrator`` are used: single hooks through ``orch.node(...)`` and
``node.call(...)``, whole blueprints through ``orch.install(...)``.
"""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest
from orchestrator_hello.plugin import plugin

from orchestrator import NonRecoverableError

BLUEPRINT = Path(__file__).resolve().parents[1] / "blueprint.yaml"
FILE_IN_DIRECTORY = "hello.relationships.file_in_directory"


@pytest.fixture
def hello(orch):
    orch.use(plugin)
    return orch


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ---------------------------------------------------------------- single hooks


def test_create_writes_the_file_and_saves_runtime_properties(hello, tmp_path):
    target = tmp_path / "hi.txt"
    node = hello.node("hello.File", {"path": str(target), "content": "hi\n"})

    node.call("create")

    assert target.read_text() == "hi\n"
    assert mode_of(target) == 0o644  # the default, 420
    assert node.runtime_properties == {
        "path": str(target), "sha256": hashlib.sha256(b"hi\n").hexdigest(), "size": 3}
    assert any("wrote" in line and str(target) in line for line in node.logs)


def test_properties_are_validated_with_defaults_filled_in(hello, tmp_path):
    node = hello.node("hello.File", {"path": str(tmp_path / "x")})
    assert node.properties["content"] == "Hello, world!\n"
    assert node.properties["mode"] == 420
    with pytest.raises(Exception, match=r"not in the range 0\.\.511"):
        hello.node("hello.File", {"path": str(tmp_path / "x"), "mode": 1000})
    with pytest.raises(Exception, match="missing required property 'path'"):
        hello.node("hello.File", {"content": "no path"})


def test_create_twice_is_harmless(hello, tmp_path):
    node = hello.node("hello.File", {"path": str(tmp_path / "a"), "content": "a", "mode": 0o600})
    node.call("create")
    saved = dict(node.runtime_properties)

    node.call("create")  # a retry, or a resume after a crash

    assert node.runtime_properties == saved
    assert (tmp_path / "a").read_text() == "a"
    assert mode_of(tmp_path / "a") == 0o600
    assert "already has the expected content" in node.logs[-1]


def test_create_adopts_a_file_written_by_a_crashed_attempt(hello, tmp_path):
    # The file exists with our content but no runtime properties were saved.
    (tmp_path / "a").write_text("a")
    node = hello.node("hello.File", {"path": str(tmp_path / "a"), "content": "a"})

    node.call("create")

    assert node.runtime_properties["path"] == str(tmp_path / "a")


def test_create_refuses_to_overwrite_a_stranger(hello, tmp_path):
    (tmp_path / "a").write_text("someone else's")
    node = hello.node("hello.File", {"path": str(tmp_path / "a"), "content": "a"})

    with pytest.raises(NonRecoverableError, match="refusing to overwrite"):
        node.call("create")

    assert (tmp_path / "a").read_text() == "someone else's"
    assert node.runtime_properties == {}


def test_create_overwrites_its_own_file_changed_behind_its_back(hello, tmp_path):
    node = hello.node("hello.File", {"path": str(tmp_path / "a"), "content": "a"})
    node.call("create")
    (tmp_path / "a").write_text("edited")

    node.call("create")

    assert (tmp_path / "a").read_text() == "a"


def test_delete_removes_the_file_and_tolerates_it_being_gone(hello, tmp_path):
    node = hello.node("hello.File", {"path": str(tmp_path / "a")})
    node.call("create")

    node.call("delete")
    assert not (tmp_path / "a").exists()
    assert node.runtime_properties == {}

    node.call("delete")  # already gone: fine
    assert "already gone" in node.logs[-1]


def test_delete_without_runtime_properties_leaves_a_stranger_alone(hello, tmp_path):
    (tmp_path / "a").write_text("someone else's")
    node = hello.node("hello.File", {"path": str(tmp_path / "a"), "content": "a"})

    node.call("delete")  # create failed before saving anything

    assert (tmp_path / "a").read_text() == "someone else's"
    assert "did not write it" in node.logs[-1]


def test_template_is_rendered_with_variables_and_ctx(hello, tmp_path):
    # orch.node's blueprint lives in orch.tmp_path: resources are looked up there.
    (hello.tmp_path / "t.j2").write_text("Hi {{ who }} from {{ ctx.instance.id }}\n")
    node = hello.node("hello.File", {"path": str(tmp_path / "out"), "template": "t.j2",
                                     "variables": {"who": "Ada"}}, id="card")

    node.call("create")

    assert (tmp_path / "out").read_text().startswith("Hi Ada from card_0")


def test_a_missing_template_fails_without_retries(hello, tmp_path):
    node = hello.node("hello.File", {"path": str(tmp_path / "out"), "template": "nope.j2"})
    with pytest.raises(NonRecoverableError, match=r"nope\.j2"):
        node.call("create")


def test_a_file_in_a_directory(hello, tmp_path):
    directory = hello.node("hello.Directory", {"path": str(tmp_path / "site")}, id="site")
    directory.call("create")
    assert directory.runtime_properties == {"path": str(tmp_path / "site"), "created": True}

    file = hello.node("hello.File", {"path": "index.txt"}, id="index",
                      relationships=[(FILE_IN_DIRECTORY, directory)])
    file.call("create")
    assert file.runtime_properties["path"] == str(tmp_path / "site" / "index.txt")

    link = hello.relationship(FILE_IN_DIRECTORY, file, directory)
    link.call("establish")
    link.call("establish")  # listed once
    assert (tmp_path / "site" / "MANIFEST").read_text() == "index.txt\n"

    link.call("unlink")
    file.call("delete")
    directory.call("delete")
    assert not (tmp_path / "site").exists()


def test_a_directory_that_existed_before_is_left_in_place(hello, tmp_path):
    directory = hello.node("hello.Directory", {"path": str(tmp_path)})
    directory.call("create")
    directory.call("delete")
    assert tmp_path.is_dir()
    assert "existed before" in directory.logs[-1]


# ---------------------------------------------------------------- whole blueprint


def test_the_example_blueprint_installs_and_uninstalls(hello, tmp_path):
    out = tmp_path / "out"

    run = hello.install(BLUEPRINT, inputs={"directory": str(out), "name": "Ada"})

    assert run.ok, run.failures
    assert run.states == {"site_0": "started", "greeting_0": "started", "readme_0": "started"}
    assert run.calls_of("create")[0] == "site_0"  # targets first
    assert sorted(run.calls_of("establish")) == ["greeting_0->site_0", "readme_0->site_0"]
    assert all(call.outcome == "ok" for call in run.calls)
    greeting = (out / "greeting.txt").read_bytes()
    assert greeting.startswith(b"Hello, Ada!\n")
    assert mode_of(out / "README") == 0o444
    assert (out / "MANIFEST").read_text() == "README\ngreeting.txt\n"
    assert run.outputs == {
        "directory": str(out),
        "greeting_path": str(out / "greeting.txt"),
        "greeting_sha256": hashlib.sha256(greeting).hexdigest(),
        "greeting_size": len(greeting),
    }

    gone = hello.uninstall()

    assert gone.ok, gone.failures
    assert set(gone.states.values()) == {"deleted"}
    assert gone.calls_of("delete")[-1] == "site_0"  # dependents first
    assert not out.exists()


def test_reinstalling_creates_nothing_twice(hello, tmp_path):
    out = tmp_path / "out"
    first = hello.install(BLUEPRINT, inputs={"directory": str(out)})
    assert first.ok

    again = hello.install(BLUEPRINT, inputs={"directory": str(out)})

    assert again.ok
    assert again.calls == []  # every operation already succeeded
    assert again.outputs == first.outputs


def test_day_two_a_changed_greeting_is_rewritten_in_place_and_drift_is_seen(hello, tmp_path):
    out = tmp_path / "out"
    assert hello.install(BLUEPRINT, inputs={"directory": str(out)}).ok
    changed = {"directory": str(out), "name": "Ada"}

    diff = hello.diff(BLUEPRINT, inputs=changed)
    assert {c.instance: c.action for c in diff.changes} == {"greeting_0": "update", "readme_0": "update"}

    run = hello.update(BLUEPRINT, inputs=changed)

    assert run.ok, run.failures
    assert sorted(run.calls_of("update")) == ["greeting_0", "readme_0"]  # in place: no delete, no create
    assert not run.calls_of("create") and not run.calls_of("delete")
    assert (out / "greeting.txt").read_text().startswith("Hello, Ada!")
    assert hello.diff(BLUEPRINT, inputs=changed).changes == []
    assert hello.drift() == {"site_0": None, "greeting_0": None, "readme_0": None}

    (out / "greeting.txt").write_text("edited by hand\n")
    (out / "README").unlink()
    drift = hello.drift()
    assert set(drift["greeting_0"]) == {"content"} and drift["readme_0"] == "gone" and drift["site_0"] is None


def test_day_two_a_new_path_replaces_the_file(hello, tmp_path):
    out = tmp_path / "out"
    assert hello.install(BLUEPRINT, inputs={"directory": str(out)}).ok
    moved = BLUEPRINT.read_text().replace("path: README", "path: README.txt")
    diff = hello.diff(moved, inputs={"directory": str(out)})
    (replaced,) = diff.by_action("replace")
    assert replaced.instance == "readme_0" and "path" in replaced.reason

    run = hello.update(moved, inputs={"directory": str(out)})

    assert run.ok, run.failures
    assert run.calls_of("delete") == ["readme_0"] and run.calls_of("create") == ["readme_0"]
    assert (out / "README.txt").exists() and not (out / "README").exists()
    assert (out / "MANIFEST").read_text() == "README.txt\ngreeting.txt\n"


def test_cat_shows_a_file_and_checks_its_inputs(hello, tmp_path):
    from orchestrator import BlueprintError

    out = tmp_path / "out"
    assert hello.install(BLUEPRINT, inputs={"directory": str(out), "name": "Ada"}).ok
    assert hello.execute("cat", {"lines": 1}, nodes=["greeting"]) == {"greeting_0": "Hello, Ada!\n"}
    assert hello.execute("cat", nodes=["readme"]) == {"readme_0": "This directory greets Ada.\n"}
    file = hello.node("hello.File", {"path": str(tmp_path / "x.txt")})
    file.call("create")
    with pytest.raises(BlueprintError, match="input 'lines' of operation 'cat': -1 is not greater than or equal to 0"):
        file.operation("cat", lines=-1)
    (tmp_path / "x.txt").unlink()
    with pytest.raises(NonRecoverableError, match="is gone"):
        file.operation("cat")
