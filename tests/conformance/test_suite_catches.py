"""The conformance suite itself: it catches what it claims to, and passes what is right.

Two sample plugins make "resources" (files in a directory, named after the deployment):

- ``sample.Leaky`` ignores the runtime properties an earlier attempt saved, so every
  create makes a new file with a random name: the classic duplicate-VM bug;
- ``sample.Good`` names its file after deployment and instance, adopts what it finds,
  saves the name right after writing, supports ``use_external_resource`` and fails
  bad properties with ``NonRecoverableError``.

``sample.Careless`` is ``sample.Good`` with one flaw chosen by a property, to show that
each remaining check catches its own kind of bug.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from orchestrator import NonRecoverableError, hookimpl
from orchestrator.conformance import (
    CHECK_IDS,
    FAIL,
    PASS,
    SKIP,
    Env,
    Subject,
    conformance_tests,
    format_report,
    run_checks,
)

PROPERTIES = {
    "directory": {"type": "string"},
    "content": {"type": "string", "default": "resource\n"},
    "use_external_resource": {"type": "boolean", "default": False},
    "resource_id": {"type": "string", "required": False},
}


def directory(env: Env) -> Path:
    return env.tmp_path / "resources"


def make_directory(env: Env) -> None:
    directory(env).mkdir(exist_ok=True)


def files_of(env: Env) -> list[str]:
    """The lister: files of ``env.deployment`` on disk."""
    return sorted(p.name for p in directory(env).glob(f"{env.deployment}-*"))


def valid(env: Env) -> dict[str, Any]:
    return {"directory": str(directory(env))}


def invalid(env: Env) -> dict[str, Any]:
    return {"directory": str(directory(env)), "content": ""}


def adopt(env: Env) -> str:
    name = f"{env.deployment}-external"
    (directory(env) / name).write_text("made out of band\n")
    return name


def delete_file(env: Env, name: str) -> None:
    (directory(env) / name).unlink()


class LeakyPlugin:
    """Creates a new randomly named file on every call, whatever was saved before."""

    __name__ = "sample_leaky"

    @hookimpl
    def register_types(self) -> dict[str, Any]:
        properties = {**PROPERTIES, "save": {"type": "boolean", "default": True}}
        return {"node_types": {"sample.Leaky": {"derived_from": "orchestrator.nodes.Root",
                                                "properties": properties}}}

    @hookimpl
    def create(self, ctx: Any) -> None:
        props = ctx.node.properties
        if not props["content"]:
            raise NonRecoverableError("content must not be empty")
        path = Path(props["directory"]) / f"{ctx.deployment.id}-{uuid.uuid4().hex[:8]}"
        path.write_text(props["content"])
        ctx.instance.runtime_properties["path"] = str(path)
        if props["save"]:
            ctx.instance.update()

    @hookimpl
    def delete(self, ctx: Any) -> None:
        path = ctx.instance.runtime_properties.pop("path", None)
        if path:
            Path(path).unlink(missing_ok=True)


class GoodPlugin:
    """Idempotent, resumable and clean; ``flaw`` (sample.Careless only) breaks one thing."""

    __name__ = "sample_good"
    TYPE = "sample.Good"

    @hookimpl
    def register_types(self) -> dict[str, Any]:
        return {"node_types": {self.TYPE: {"derived_from": "orchestrator.nodes.Root",
                                           "properties": self.properties()}}}

    def properties(self) -> dict[str, Any]:
        return PROPERTIES

    def flaw(self, ctx: Any) -> str:
        return str(ctx.node.properties.get("flaw", ""))

    @hookimpl
    def create(self, ctx: Any) -> None:
        props, runtime = ctx.node.properties, ctx.instance.runtime_properties
        folder = Path(props["directory"])
        if props["use_external_resource"]:
            path = folder / str(props.get("resource_id"))
            if not path.is_file():
                raise NonRecoverableError(f"external resource {path} does not exist")
            runtime.update(path=str(path), external=True)
            if self.flaw(ctx) == "adopt_copies":
                (folder / f"{ctx.deployment.id}-copy").write_text(path.read_text())
            return
        if not props["content"]:
            if self.flaw(ctx) == "vague_error":
                raise RuntimeError()
            raise NonRecoverableError("content must not be empty")
        path = folder / f"{ctx.deployment.id}-{ctx.instance.id}"
        if not path.exists():
            path.write_text(props["content"])
        runtime.update(path=str(path), external=False)
        ctx.instance.update()

    @hookimpl
    def delete(self, ctx: Any) -> None:
        runtime = ctx.instance.runtime_properties
        flaw = self.flaw(ctx)
        if runtime.get("external") and flaw != "deletes_adopted":
            return
        path = Path(runtime.get("path") or
                    Path(ctx.node.properties["directory"]) / f"{ctx.deployment.id}-{ctx.instance.id}")
        if flaw == "keeps_on_uninstall":
            return
        if flaw == "fails_when_gone":
            path.unlink()
        else:
            path.unlink(missing_ok=True)
        runtime.pop("path", None)


class CarelessPlugin(GoodPlugin):
    __name__ = "sample_careless"
    TYPE = "sample.Careless"

    def properties(self) -> dict[str, Any]:
        return {**PROPERTIES, "flaw": {"type": "string"}}


LEAKY, GOOD, CARELESS = LeakyPlugin(), GoodPlugin(), CarelessPlugin()


def subject(type_name: str, **extra: Any) -> Subject:
    fields: dict[str, Any] = {"properties": valid, "invalid_properties": invalid, "adopt": adopt,
                              "delete": delete_file, "setup": make_directory}
    return Subject(type_name, files_of, **{**fields, **extra})


# ---------------------------------------------------------------- a well-behaved plugin passes

TestGoodSample = conformance_tests(subject("sample.Good"), plugins=[GOOD])


def test_good_sample_passes_everything_without_pytest(tmp_path: Path) -> None:
    results = run_checks(subject("sample.Good"), plugins=[GOOD], tmp_path=tmp_path)
    assert [r.check for r in results] == list(CHECK_IDS)
    no_such_operation = {"operations_twice", "stop_stops"}  # it implements create and delete only
    assert all(r.status == (SKIP if r.check in no_such_operation else PASS) for r in results), format_report(results)
    report = format_report(results)
    assert "PASS sample.Good  create twice         1 resource" in report
    assert "PASS sample.Good  crash in operations  resumed after every crash point (delete: after)" in report
    assert report.splitlines()[-1].startswith(f"{len(CHECK_IDS) - 2} passed, 0 failed, 2 skipped in ")


def test_good_sample_also_passes_with_deleter_left_to_the_plugin(tmp_path: Path) -> None:
    """Without a deleter, 'deleted behind back' runs the plugin's own delete out of band."""
    bare = Subject("sample.Good", files_of, properties=valid, setup=make_directory)
    (result,) = run_checks(bare, plugins=[GOOD], tmp_path=tmp_path, checks=["deleted_behind_back"])
    assert result.status == PASS, result.line()
    assert "plugin's delete hook" in result.detail


# ---------------------------------------------------------------- a non-idempotent one is caught


@pytest.fixture(scope="module")
def leaky_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    results = run_checks(subject("sample.Leaky"), plugins=[LEAKY], tmp_path=tmp_path_factory.mktemp("leaky"))
    return {r.check: r for r in results}


LEAK = r"cf-{0}-\w{{6}}-\w{{8}}"  # a leaky file of deployment cf-<check>-<token>


@pytest.mark.parametrize("check, message", [
    ("create_twice", rf"^create ran twice and left 2 resources: {LEAK.format('twice')}, {LEAK.format('twice')}$"),
    ("crash_in_create", rf"^crash before create's save #1: the resumed install left 2 resources: "
                        rf"{LEAK.format('crash1')}, {LEAK.format('crash1')} \(after the crash: 1 resource: "
                        rf"{LEAK.format('crash1')}\)$"),
    ("crash_then_uninstall", rf"^crash before create's save #1, then uninstall: it left 1 resource: "
                             rf"{LEAK.format('cun1')} \(after the crash: 1 resource: {LEAK.format('cun1')}\)$"),
    ("retry_after_create", rf"^create retried after a transient error after create and left 2 resources: "
                           rf"{LEAK.format('rta')}, {LEAK.format('rta')}$"),
])
def test_leaky_sample_is_caught_with_what_leaked(leaky_results: dict[str, Any], check: str, message: str) -> None:
    result = leaky_results[check]
    assert result.status == FAIL
    assert result.line().startswith(f"FAIL sample.Leaky  {result.title}")
    assert re.search(message, result.detail), result.detail


@pytest.mark.parametrize("check, message", [
    ("crash_in_create", rf"^crash after create returned: the resumed install left 2 resources: "
                        rf"{LEAK.format('crash1')}, {LEAK.format('crash1')} \(after the crash: 1 resource"),
    ("crash_then_uninstall", rf"^crash after create returned, then uninstall: it left 1 resource: "
                             rf"{LEAK.format('cun1')} "),
])
def test_leaky_sample_that_never_saves_is_caught_after_create(tmp_path: Path, check: str, message: str) -> None:
    """Without ``ctx.instance.update()`` there is no save point: the crash comes after create."""
    quiet = subject("sample.Leaky", properties=lambda env: {**valid(env), "save": False})
    (result,) = run_checks(quiet, plugins=[LEAKY], tmp_path=tmp_path, checks=[check])
    assert result.status == FAIL
    assert re.search(message, result.detail), result.detail


def test_leaky_sample_is_only_caught_where_it_is_wrong(leaky_results: dict[str, Any]) -> None:
    # One create per install, and a clean delete: these checks have nothing to catch.
    # (A transient error *before* create means the hook runs once: nothing to duplicate.)
    for check in ("retry_before_create", "full_cycle", "deleted_behind_back", "bad_properties"):
        assert leaky_results[check].status == PASS, leaky_results[check].line()
    # It ignores use_external_resource too, and makes a file of its own instead.
    assert leaky_results["adopt_external"].status == FAIL
    assert re.match(r"install with use_external_resource changed what exists: 1 resource: cf-adopt-\w+-external "
                    r"before, 2 resources: ", leaky_results["adopt_external"].detail)


# ---------------------------------------------------------------- each other check catches its bug


@pytest.mark.parametrize("flaw, check, message", [
    ("keeps_on_uninstall", "full_cycle", "uninstall left 1 resource: cf-cycle-"),
    ("fails_when_gone", "deleted_behind_back",
     "uninstall after the resource was deleted out of band failed: subject_0: delete (sample_careless) "
     "failed: FileNotFoundError"),
    ("deletes_adopted", "adopt_external", "uninstall did not leave the adopted resource alone: 1 resource: "
                                          "cf-adopt-"),
    ("adopt_copies", "adopt_external", "install with use_external_resource changed what exists"),
    ("vague_error", "bad_properties", "create raised RuntimeError, not NonRecoverableError (11 attempts): "
                                      "(no message)"),
])
def test_careless_sample_is_caught(tmp_path: Path, flaw: str, check: str, message: str) -> None:
    careless = subject("sample.Careless",
                       properties=lambda env: {**valid(env), "flaw": flaw},
                       invalid_properties=lambda env: {**invalid(env), "flaw": flaw})
    (result,) = run_checks(careless, plugins=[CARELESS], tmp_path=tmp_path, checks=[check])
    assert result.status == FAIL, result.line()
    assert message in result.detail, result.detail


def test_misconfigured_subjects_are_reported_as_set_up_errors(tmp_path: Path) -> None:
    blind = Subject("sample.Good", lambda env: [], properties=valid, setup=make_directory)
    (result,) = run_checks(blind, plugins=[GOOD], tmp_path=tmp_path / "a", checks=["full_cycle"])
    assert result.status == FAIL
    assert "list_resources shows no resource" in result.detail

    schema_rejects = subject("sample.Good", invalid_properties={"content": 3})
    (result,) = run_checks(schema_rejects, plugins=[GOOD], tmp_path=tmp_path / "b", checks=["bad_properties"])
    assert result.status == FAIL
    assert result.detail.startswith("set-up: invalid_properties were rejected before create ran")

    nothing = Subject("sample.Good", files_of, properties=valid, setup=make_directory)
    results = run_checks(nothing, plugins=[GOOD], tmp_path=tmp_path / "c", checks=["adopt_external", "bad_properties"])
    assert [r.status for r in results] == [SKIP, SKIP]

    with pytest.raises(ValueError, match="unknown conformance checks: nope"):
        run_checks(nothing, plugins=[GOOD], tmp_path=tmp_path / "d", checks=["nope"])


def test_in_pytest_each_check_is_an_item_and_failures_say_what_leaked(tmp_path: Path) -> None:
    """What a plugin author sees: one item per check and subject, the leak named, a report."""
    import subprocess
    import sys

    module = tmp_path / "test_samples_conformance.py"
    module.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_suite_catches import GOOD, LEAKY, subject\n"
        "from orchestrator.conformance import conformance_tests\n"
        "TestGood = conformance_tests(subject('sample.Good'), plugins=[GOOD])\n"
        "TestLeaky = conformance_tests(subject('sample.Leaky'), plugins=[LEAKY],\n"
        "                              checks=['create_twice', 'full_cycle'])\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", str(module), "-v", "-p", "no:cacheprovider",
                           "--rootdir", str(tmp_path)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    for check in CHECK_IDS:
        outcome = "SKIPPED" if check in ("operations_twice", "stop_stops") else "PASSED"
        assert f"test_samples_conformance.py::TestGood::test_{check}[sample.Good] {outcome}" in out, out
    assert "TestLeaky::test_full_cycle[sample.Leaky] PASSED" in out
    assert "FAILED test_samples_conformance.py::TestLeaky::test_create_twice[sample.Leaky]" in out
    assert re.search(r"_ TestLeaky.test_create_twice\[sample.Leaky\] _+\nsample.Leaky create twice: "
                     r"create ran twice and left 2 resources: cf-twice-\w+-\w{8}, cf-twice-\w+-\w{8}\n", out), out
    assert "= plugin conformance =" in out
    report = out.split("plugin conformance", 1)[1]
    assert re.search(r"PASS sample.Good   create twice         1 resource  \[\d+\.\d\ds\]", report), report
    assert re.search(r"FAIL sample.Leaky  create twice         create ran twice and left 2 resources", report)
    assert re.search(rf"{len(CHECK_IDS) - 1} passed, 1 failed, 2 skipped in \d", report), report
