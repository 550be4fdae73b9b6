"""CONTRIBUTING.md is executable: every fenced code block in it is run or checked here.

The info string after the opening fence says what happens to a block:

``python file=PATH``    written to PATH in a scratch project; blocks naming the same PATH
                        are joined in document order (the reader builds the file the
                        same way). Modules under ``src/`` are imported and registered
                        through the ``orch`` fixture; ``tests/*.py`` are run by pytest in
                        a subprocess; other files are imported by the test that
                        exercises them (``patterns/servers.py`` below).
``python``              executed with ``exec`` (the project's ``src/`` importable).
``yaml file=PATH``      written, then loaded by the real blueprint loader with the
``yaml``                guide's plugins: it must be a valid blueprint.
``toml file=PATH``      written and parsed with ``tomllib``; ``pyproject.toml``'s entry
``toml``                points must name modules the guide writes; they become a real
                        ``*.dist-info`` so the command line finds the guide's plugins.
``jinja file=PATH``, ``markdown file=PATH``, ``text file=PATH``
                        written verbatim (resources, README).
``text tree``           a layout: every path listed must be written by some block.
``console``             lines starting with ``$ `` are commands (leading ``VAR=value``
                        allowed): ``orchestrator ...`` is parsed by the real CLI (an
                        unknown subcommand or option fails), ``make T`` needs target T
                        in the Makefile, ``python -m M`` needs module M, other programs
                        must be in ``KNOWN_TOOLS``. Other lines are sample output.
``console run``         also run, in order, in the scratch project with the guide's
                        plugins installed (dist-info on ``PYTHONPATH``); each command must
                        exit 0, and every sample-output line must appear in its output
                        (``...`` lines are skipped).

Any other info string fails ``test_every_block_is_of_a_known_kind``. Besides the
blocks: every hook in ``orchestrator.hookspecs`` must have a docstring and be
mentioned in the guide, and every public ``ctx`` attribute must be in its reference.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import types
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import click
import pytest
import tomllib
from testenv.dists import write_distribution

import orchestrator
from orchestrator import hookspecs
from orchestrator.cli import cli as orchestrator_cli
from orchestrator.engine import context as context_module

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "CONTRIBUTING.md"
KNOWN_TOOLS = {"pip", "python", "pytest", "twine", "ruff", "git"}
WRITTEN_VERBATIM = {"jinja", "markdown", "text"}
FENCE = re.compile(r"^```(.*)$")


@attrs.define
class Block:
    lang: str
    attrs: dict[str, str | bool]
    text: str
    line: int  # of the opening fence

    @property
    def where(self) -> str:
        return f"CONTRIBUTING.md:{self.line}"

    @property
    def file(self) -> str | None:
        value = self.attrs.get("file")
        return value if isinstance(value, str) else None


def parse_blocks(text: str) -> list[Block]:
    blocks, current, body = [], None, []
    for number, line in enumerate(text.splitlines(), 1):
        fence = FENCE.match(line)
        if current is None and fence:
            lang, *words = fence[1].split()
            options: dict[str, str | bool] = {}
            for word in words:
                key, eq, value = word.partition("=")
                options[key] = value if eq else True
            current, body = Block(lang, options, "", number), []
        elif current is not None and line.strip() == "```":
            current.text = "\n".join(body) + "\n"
            blocks.append(current)
            current = None
        elif current is not None:
            body.append(line)
    assert current is None, f"CONTRIBUTING.md:{current.line}: unclosed code block"
    return blocks


BLOCKS = parse_blocks(GUIDE.read_text(encoding="utf-8"))


def blocks(lang: str, **options: str | bool) -> list[Block]:
    return [b for b in BLOCKS if b.lang == lang and all(b.attrs.get(k) == v for k, v in options.items())]


# ---------------------------------------------------------------- the scratch project


@attrs.define
class Project:
    root: Path
    files: dict[str, str]  # path -> joined text
    site: Path  # holds the distribution's dist-info

    @property
    def src(self) -> Path:
        return self.root / "src"

    def modules(self) -> list[str]:
        names = []
        for path in self.files:
            if path.startswith("src/") and path.endswith(".py"):
                parts = Path(path).relative_to("src").with_suffix("").parts
                names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
        return sorted(names)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
        paths = [str(self.site), str(self.src), env.get("PYTHONPATH")]
        env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
        env.update(extra)
        return env


def _pyproject(files: dict[str, str]) -> dict[str, Any]:
    return tomllib.loads(files["pyproject.toml"])


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """The guide's plugin project, written from its blocks, importable in this process."""
    root = tmp_path_factory.mktemp("guide")
    files: dict[str, str] = {}
    for block in BLOCKS:
        if block.file:
            files[block.file] = files[block.file] + "\n\n" + block.text if block.file in files else block.text
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text, encoding="utf-8")
    meta = _pyproject(files)["project"]
    site = write_distribution(root.parent / f"{root.name}-site", meta["name"],
                              meta["entry-points"]["orchestrator.plugins"], {}, version=meta["version"])
    proj = Project(root, files, site)
    sys.path.insert(0, str(proj.src))
    importlib.invalidate_caches()
    try:
        yield proj
    finally:
        sys.path.remove(str(proj.src))
        top = {m.split(".")[0] for m in proj.modules()}
        for name in [m for m in sys.modules if m.split(".")[0] in top]:
            del sys.modules[name]


def plugin_modules(project: Project) -> list[Any]:
    """The plugins the guide's entry points name (``module`` or ``module:attribute``), imported."""
    targets = _pyproject(project.files)["project"]["entry-points"]["orchestrator.plugins"].values()
    plugins = []
    for target in targets:
        module, _, attribute = target.partition(":")
        plugin: Any = importlib.import_module(module)
        for part in attribute.split(".") if attribute else ():
            plugin = getattr(plugin, part)
        plugins.append(plugin)
    return plugins


# ---------------------------------------------------------------- every block


def test_every_block_is_of_a_known_kind() -> None:
    for block in BLOCKS:
        if block.lang in ("python", "yaml", "toml") or (block.lang in WRITTEN_VERBATIM and block.file):
            continue
        if (block.lang, set(block.attrs)) in (("text", {"tree"}), ("console", set()), ("console", {"run"})):
            continue
        pytest.fail(f"{block.where}: no test handles a ```{block.lang} {block.attrs} block; "
                    f"see the conventions in {Path(__file__).name}")


def test_the_layout_lists_what_the_guide_writes(project: Project) -> None:
    (tree,) = blocks("text", tree=True)
    listed = [line.strip() for line in tree.text.splitlines() if line.strip()]
    assert sorted(listed) == sorted(p for p in project.files if not p.startswith("patterns/")), tree.where


def test_toml_blocks_parse_and_entry_points_name_written_modules(project: Project) -> None:
    for block in blocks("toml"):
        tomllib.loads(block.text)
    meta = _pyproject(project.files)["project"]
    for name, target in meta["entry-points"]["orchestrator.plugins"].items():
        assert target.split(":")[0] in project.modules(), f"entry point {name} = {target}: no such module"
    from packaging.requirements import Requirement

    from orchestrator import DISTRIBUTION

    (core,) = [Requirement(d) for d in meta["dependencies"] if Requirement(d).name == DISTRIBUTION]
    assert core.specifier.contains(orchestrator.__version__), f"{core} excludes the current core"


def test_python_blocks_import_and_register(orch: Any, project: Project) -> None:
    for module in project.modules():
        importlib.import_module(module)
    pm = orch.use(*plugin_modules(project))  # fails on any load error
    assert [e for e in pm.load_errors if not e.fatal] == []


def test_plain_python_blocks_run(project: Project) -> None:
    for block in blocks("python"):
        if not block.file:
            exec(compile(block.text, block.where, "exec"), {"__name__": "guide_block"})


def test_yaml_blocks_are_valid_blueprints(orch: Any, project: Project) -> None:
    orch.use(*plugin_modules(project))
    loader = orch.orchestrator()
    for i, block in enumerate(blocks("yaml")):
        path = project.root / block.file if block.file else orch.blueprint(block.text, name=f"block{i}.yaml")
        try:
            loader.load(path)
        except Exception as exc:
            pytest.fail(f"{block.where}: not a valid blueprint:\n{exc}")


def test_the_guide_blueprint_installs_with_its_template(orch: Any, project: Project, tmp_path: Path) -> None:
    orch.use(*plugin_modules(project))
    run = orch.install(project.root / "blueprint.yaml", inputs={"directory": str(tmp_path), "name": "Lin"})
    assert run.ok, run.failures
    card = (tmp_path / "card.txt").read_text()
    assert "Bonjour, Lin!\nThis card was written by deployment test.\nFrom: Bob <bob@example.com>\n" in card
    assert orch.uninstall().ok
    assert not (tmp_path / "card.txt").exists()


def test_the_guide_tests_pass(project: Project) -> None:
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                          cwd=project.root, env=project.env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


class FakeCloud:
    """Just enough of a cloud for the idempotency sketch; can lose a create's response."""

    class NotFound(Exception):
        pass

    def __init__(self) -> None:
        self.servers: dict[str, dict[str, Any]] = {}
        self.lose_next_response = False

    def create_server(self, name: str, tags: dict[str, str]) -> dict[str, Any]:
        server = {"id": f"srv-{len(self.servers) + 1}", "name": name, "tags": tags, "status": "starting"}
        self.servers[server["id"]] = server
        if self.lose_next_response:
            self.lose_next_response = False
            raise ConnectionError("connection reset")  # created, but we never learn its id
        return dict(server)

    def get_server(self, server_id: str) -> dict[str, Any] | None:
        server = self.servers.get(server_id)
        if server is None:
            return None
        server["status"] = "running"  # it boots between two looks
        return dict(server)

    def find_servers(self, tags: dict[str, str]) -> list[dict[str, Any]]:
        return [dict(s) for s in self.servers.values() if tags.items() <= s["tags"].items()]

    def delete_server(self, server_id: str) -> None:
        if self.servers.pop(server_id, None) is None:
            raise self.NotFound(server_id)


def test_the_idempotency_pattern_survives_a_lost_response(orch: Any, project: Project) -> None:
    from orchestrator.sdk import Plugin, owner_markers

    servers = _load(project, "patterns/servers.py")
    cloud = FakeCloud()
    servers.Server.client = cloud
    plugin = Plugin({"node_types": {"cloudy.Server": {"derived_from": "orchestrator.nodes.Root",
                                                      "properties": {"name": {"type": "string"}}}}},
                    {"cloudy.Server": servers.Server}, name="cloudy")
    orch.use(plugin)
    node = orch.node("cloudy.Server", {"name": "web"})

    cloud.lose_next_response = True
    with pytest.raises(ConnectionError):
        node.call("create")  # the server exists, its id was never saved
    node.call("create", retry_number=1)  # found by its markers, id saved
    assert node.runtime_properties == {"server_id": "srv-1", "external_resource": False}
    assert node.run("start") == 0  # running at the first look
    assert list(cloud.servers) == ["srv-1"]  # one server, whatever happened

    node.call("delete")
    node.call("delete")  # nothing left: still fine
    assert cloud.servers == {}

    orphan = orch.node("cloudy.Server", {"name": "db"}, id="orphan")
    cloud.create_server("db", owner_markers("test", "orphan_0"))
    orphan.call("delete")  # create died before saving: found by its markers and deleted
    assert cloud.servers == {}


def _load(project: Project, path: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(f"guide_{Path(path).stem}", project.root / path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- commands


def _commands(block: Block) -> list[tuple[dict[str, str], list[str], list[str]]]:
    """(environment, argv, sample output lines) for each ``$`` line of a console block."""
    result: list[tuple[dict[str, str], list[str], list[str]]] = []
    for line in block.text.splitlines():
        if line.startswith("$ "):
            words = shlex.split(line[2:])
            env = {}
            while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
                key, _, value = words.pop(0).partition("=")
                env[key] = value
            result.append((env, words, []))
        elif line.strip() and line.strip() != "...":
            assert result, f"{block.where}: output before the first command"
            result[-1][2].append(line.rstrip())
    return result


def _check_orchestrator_args(args: list[str], where: str) -> None:
    command: click.Command = orchestrator_cli
    rest = list(args)
    while isinstance(command, click.Group):
        name = next((a for a in rest if not a.startswith("-")), None)
        assert name is not None, f"{where}: 'orchestrator {' '.join(args)}' names no subcommand"
        sub = command.get_command(click.Context(command), name)
        assert sub is not None, f"{where}: 'orchestrator {name}' is not a command"
        rest = rest[rest.index(name) + 1:]
        command = sub
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            command.make_context(command.name or "", rest)
    except click.ClickException as exc:
        pytest.fail(f"{where}: 'orchestrator {' '.join(args)}': {exc.format_message()}")


def _make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([A-Za-z0-9_-]+)\s*:(?!=)", text, flags=re.MULTILINE))


def test_console_commands_exist() -> None:
    targets = _make_targets()
    for block in blocks("console"):
        for _, argv, _ in _commands(block):
            program, args = argv[0], argv[1:]
            if program == "orchestrator":
                _check_orchestrator_args(args, block.where)
            elif program == "make":
                assert args and all(a in targets for a in args), f"{block.where}: no make target {args}"
            elif program == "python" and args[:1] == ["-m"]:
                assert importlib.util.find_spec(args[1]) is not None or args[1] == "build", \
                    f"{block.where}: no module {args[1]}"
            else:
                assert program in KNOWN_TOOLS, f"{block.where}: unknown program {program!r}"


def test_console_run_blocks_run(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process through click's runner (a subprocess per command costs ~0.7 s each);
    the plugins are still found through their entry points, in the dist-info."""
    from click.testing import CliRunner

    monkeypatch.chdir(project.root)
    monkeypatch.syspath_prepend(str(project.site))
    for key in [k for k in os.environ if k.startswith("ORCHESTRATOR_")]:
        monkeypatch.delenv(key)
    runner = CliRunner()
    for block in blocks("console", run=True):
        for env, argv, expected in _commands(block):
            assert argv[0] == "orchestrator", f"{block.where}: only orchestrator commands are run"
            result = runner.invoke(orchestrator_cli, argv[1:], env=env, prog_name="orchestrator")
            shown = " ".join([*(f"{k}={v}" for k, v in env.items()), *argv])
            output = result.output  # stdout and stderr, interleaved
            assert result.exit_code == 0, f"{block.where}: $ {shown}\n{output}{result.exception!r}"
            for line in expected:
                assert line in output, f"{block.where}: $ {shown}\nexpected {line!r} in:\n{output}"


def test_the_guide_code_is_lint_clean(project: Project) -> None:
    """Readers copy these files: they pass the same ruff rules as ours (run from the project)."""
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed")
    proc = subprocess.run([ruff, "check", "--no-cache", "--isolated", "--target-version", "py310",
                           "--select", "E,F,W,I,B,UP,SIM,RUF", "--ignore", "E501,RUF012,SIM105", "."],
                          cwd=project.root, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.integration
def test_the_guide_project_builds_a_wheel(project: Project, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path),
                           str(project.root)], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (wheel,) = tmp_path.glob("orchestrator_greeting-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        text = zf.read(entry_points).decode()
    assert "[orchestrator.plugins]" in text
    assert "greeting = orchestrator_greeting.plugin:plugin" in text
    assert "orchestrator_greeting/plugin.py" in names


# ---------------------------------------------------------------- the reference


def _hookspecs() -> dict[str, Any]:
    return {name: fn for name, fn in vars(hookspecs).items()
            if callable(fn) and hasattr(fn, f"{orchestrator.PROJECT_NAME}_spec")}


def test_every_hook_has_a_docstring_and_is_in_the_guide() -> None:
    guide = GUIDE.read_text(encoding="utf-8")
    specs = _hookspecs()
    assert {"register_types", "create", "delete", "establish", "unlink"} <= set(specs)
    for name, fn in specs.items():
        assert (fn.__doc__ or "").strip(), f"hookspec {name} has no docstring"
        assert re.search(rf"`{name}(\([^`]*\))?`|^#+ .*\b{name}\b|def {name}\(", guide, re.MULTILINE), \
            f"hook {name} is not mentioned in CONTRIBUTING.md (as `{name}` or `{name}(ctx)`)"


CTX_PARTS = {
    "ctx": context_module.OperationContext,
    "ctx.node": context_module.NodeContext,
    "ctx.instance": context_module.InstanceContext,
    "ctx.deployment": context_module.DeploymentContext,
    "ctx.blueprint": context_module.BlueprintContext,
    "ctx.operation": context_module.OperationInfo,
    "ctx.relationship": context_module.RelationshipContext,
    "ctx.source": context_module.EntityContext,
}


def test_the_ctx_reference_is_complete() -> None:
    guide = GUIDE.read_text(encoding="utf-8")
    missing = []
    for prefix, cls in CTX_PARTS.items():
        names = {n for n in getattr(cls, "__slots__", ()) if not n.startswith("_")}
        names |= {n for n, v in vars(cls).items()
                  if not n.startswith("_") and (callable(v) or isinstance(v, property))}
        missing += [f"{prefix}.{n}" for n in sorted(names) if f"{prefix}.{n}" not in guide]
    assert not missing, f"CONTRIBUTING.md's ctx reference lacks {missing}"
