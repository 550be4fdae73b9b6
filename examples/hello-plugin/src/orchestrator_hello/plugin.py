"""The ``hello`` plugin: files and directories on the local machine.

Types
    ``hello.Directory``  a directory (created with its parents; removed by uninstall
                         only if this deployment created it and it is empty)
    ``hello.File``       a file with fixed ``content`` or a Jinja2 ``template`` shipped
                         beside the blueprint
    ``hello.relationships.file_in_directory``
                         a file contained in a directory: a relative ``path`` is taken
                         inside the directory, and the directory's ``MANIFEST`` lists the
                         file while both exist (``establish`` / ``unlink``)

Every hook is idempotent, so a retried or resumed operation is safe: ``create`` adopts
a file that already has our content (written by an attempt that crashed before its
runtime properties were saved), ``delete`` is fine when the file is already gone.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator import NonRecoverableError, hookimpl

DIRECTORY = "hello.Directory"
FILE = "hello.File"
FILE_IN_DIRECTORY = "hello.relationships.file_in_directory"
CONTAINED_IN = "orchestrator.relationships.contained_in"
MANIFEST = "MANIFEST"

TYPES: dict[str, Any] = {
    "node_types": {
        DIRECTORY: {
            "derived_from": "orchestrator.nodes.Root",
            "description": "A local directory, created with its parents.",
            "properties": {
                "path": {"type": "string", "required": True, "constraints": [{"min_length": 1}],
                         "description": "Absolute, or relative to the working directory."},
            },
        },
        FILE: {
            "derived_from": "orchestrator.nodes.Root",
            "description": "A local file with fixed content or a rendered template.",
            "properties": {
                "path": {"type": "string", "required": True, "constraints": [{"min_length": 1}],
                         "description": "Absolute, or relative to the hello.Directory the file "
                                        "is contained in (else to the working directory)."},
                "content": {"type": "string", "default": "Hello, world!\n"},
                "template": {"type": "string", "required": False,
                             "description": "A Jinja2 template beside the blueprint, rendered "
                                            "with `variables` and `ctx`; replaces `content`."},
                "variables": {"type": "dict", "default": {}},
                "mode": {"type": "integer", "default": 420,  # 0o644
                         "constraints": [{"in_range": [0, 511]}],  # 0o000 .. 0o777
                         "description": "Permission bits, in decimal (420 is 0o644)."},
            },
        },
    },
    "relationships": {
        FILE_IN_DIRECTORY: {
            "derived_from": CONTAINED_IN,
            "description": "The file lives in the directory and is listed in its MANIFEST.",
        },
    },
}

_manifest_lock = threading.Lock()  # hooks of one deployment run in threads of one process


@hookimpl
def register_types() -> dict[str, Any]:
    return TYPES


# ---------------------------------------------------------------- hello.Directory


def create_directory(ctx: Any) -> None:
    runtime = ctx.instance.runtime_properties
    path = Path(ctx.node.properties["path"]).expanduser().absolute()
    if "created" not in runtime:
        # Decide "ours or not" once, and save the answer before the side effect: a
        # create resumed after a crash must not mistake its own directory for a stranger's.
        runtime["path"] = str(path)
        runtime["created"] = not path.exists()
        ctx.instance.update()
    if path.exists() and not path.is_dir():
        raise NonRecoverableError(f"{path} exists and is not a directory")
    path.mkdir(parents=True, exist_ok=True)
    ctx.logger.info("directory %s ready (%s)", path, "created" if runtime["created"] else "existed")


def delete_directory(ctx: Any) -> None:
    runtime = ctx.instance.runtime_properties
    path = Path(runtime.get("path") or ctx.node.properties["path"]).expanduser().absolute()
    if not runtime.get("created"):
        ctx.logger.info("leaving %s in place: it existed before this deployment", path)
    elif not path.is_dir():
        ctx.logger.info("directory %s is already gone", path)
    elif any(path.iterdir()):
        ctx.logger.warning("leaving %s in place: it holds files this deployment did not write", path)
    else:
        path.rmdir()
        ctx.logger.info("removed directory %s", path)
    runtime.pop("path", None)
    runtime.pop("created", None)


# ---------------------------------------------------------------- hello.File


def directory_of(ctx: Any) -> Path | None:
    """The path of the directory this file is contained in, if any."""
    for rel in ctx.instance.relationships:
        if CONTAINED_IN in rel.type_hierarchy and DIRECTORY in rel.target.node.type_hierarchy:
            target = rel.target
            return Path(target.instance.runtime_properties.get("path") or target.node.properties["path"])
    return None


def file_path(ctx: Any) -> Path:
    path = Path(ctx.node.properties["path"]).expanduser()
    if not path.is_absolute():
        path = (directory_of(ctx) or Path.cwd()) / path
    return path.absolute()


def file_content(ctx: Any) -> bytes:
    props = ctx.node.properties
    if props.get("template"):
        return ctx.get_resource_and_render(props["template"], props["variables"])
    return props["content"].encode("utf-8")


def write_atomically(path: Path, data: bytes, mode: int) -> None:
    """Readers see the old file or the whole new one, never half of it."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(temporary, mode)  # whatever the umask was
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def create_file(ctx: Any) -> None:
    runtime = ctx.instance.runtime_properties
    path, data, mode = file_path(ctx), file_content(ctx), ctx.node.properties["mode"]
    if not path.parent.is_dir():
        raise NonRecoverableError(f"directory {path.parent} does not exist")
    if path.is_dir():
        raise NonRecoverableError(f"{path} is a directory")
    if path.exists() and path.read_bytes() == data:
        # Ours from an attempt that crashed before saving, or identical anyway: adopt it.
        os.chmod(path, mode)
        ctx.logger.info("%s already has the expected content", path)
    elif path.exists() and runtime.get("path") != str(path):
        raise NonRecoverableError(f"{path} exists with other content; refusing to overwrite a "
                                  f"file this deployment did not write")
    else:
        write_atomically(path, data, mode)
        ctx.logger.info("wrote %s (%d bytes, mode %s)", path, len(data), oct(mode))
    runtime.update(path=str(path), sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    ctx.instance.update()  # saved right after the side effect


def delete_file(ctx: Any) -> None:
    runtime = ctx.instance.runtime_properties
    ours = "path" in runtime
    path = Path(runtime["path"]) if ours else file_path(ctx)
    try:
        current = path.read_bytes()
    except FileNotFoundError:
        ctx.logger.info("%s is already gone", path)
    else:
        # Without saved runtime properties (create crashed before saving them) the file
        # is ours only if it holds exactly what create would have written.
        if ours or current == file_content(ctx):
            path.unlink(missing_ok=True)
            ctx.logger.info("removed %s", path)
        else:
            ctx.logger.warning("leaving %s in place: this deployment did not write it", path)
    for key in ("path", "sha256", "size"):
        runtime.pop(key, None)


# ---------------------------------------------------------------- file_in_directory


def _edit_manifest(ctx: Any, edit: Callable[[list[str], str], None]) -> None:
    directory = Path(ctx.target.instance.runtime_properties["path"])
    name = os.path.relpath(ctx.source.instance.runtime_properties["path"], directory)
    manifest = directory / MANIFEST
    with _manifest_lock:
        lines = manifest.read_text("utf-8").splitlines() if manifest.exists() else []
        edit(lines, name)
        if lines:
            manifest.write_text("".join(f"{line}\n" for line in sorted(set(lines))), "utf-8")
        else:
            manifest.unlink(missing_ok=True)


@hookimpl
def establish(ctx: Any) -> None:
    """List the file in its directory's MANIFEST (idempotent: listed once)."""
    _edit_manifest(ctx, lambda lines, name: lines.append(name))
    ctx.logger.info("listed %s in %s", ctx.source.instance.id, MANIFEST)


@hookimpl
def unlink(ctx: Any) -> None:
    """Take the file off the MANIFEST; the last file removes the MANIFEST itself."""
    if "path" not in ctx.target.instance.runtime_properties:
        return  # the directory is already gone
    _edit_manifest(ctx, lambda lines, name: lines.remove(name) if name in lines else None)


# ---------------------------------------------------------------- lifecycle routing

# One plugin, two node types: each hook picks the implementation for the node's type
# (walking the hierarchy, so a blueprint type derived from hello.File works too).
OPERATIONS: dict[str, dict[str, Callable[[Any], None]]] = {
    "create": {DIRECTORY: create_directory, FILE: create_file},
    "delete": {DIRECTORY: delete_directory, FILE: delete_file},
}


def _run(operation: str, ctx: Any) -> None:
    for type_name in reversed(ctx.node.type_hierarchy):
        implementation = OPERATIONS[operation].get(type_name)
        if implementation is not None:
            implementation(ctx)
            return


@hookimpl
def create(ctx: Any) -> None:
    _run("create", ctx)


@hookimpl
def delete(ctx: Any) -> None:
    _run("delete", ctx)
