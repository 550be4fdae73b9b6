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

Built with ``orchestrator.sdk``: one class per type, one method per operation; the
entry point names the ``plugin`` object at the bottom. Day 2: a file's content and mode
change in place (``update``); a new ``path`` replaces it (``replace_on_change``), and so
does a directory's; ``check_drift`` compares what is on disk with what was written; the
custom operation ``cat`` shows a file. Every lifecycle operation is idempotent,
so a retried or resumed one is safe: ``create`` adopts a file that already has our
content (written by an attempt that crashed before saving), ``delete`` is fine when
the file is already gone.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator import NonRecoverableError
from orchestrator.sdk import Plugin, Relationship, Resource

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
                         "replace_on_change": True,
                         "description": "Absolute, or relative to the working directory."},
            },
        },
        FILE: {
            "derived_from": "orchestrator.nodes.Root",
            "description": "A local file with fixed content or a rendered template.",
            "properties": {
                "path": {"type": "string", "required": True, "constraints": [{"min_length": 1}],
                         "replace_on_change": True,
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
            "operations": {  # orchestrator execute -d NAME cat [-p lines=N]
                "cat": {"description": "The file's content as it is on disk now.",
                        "inputs": {"lines": {"type": "integer", "default": 0,
                                             "constraints": [{"greater_or_equal": 0}],
                                             "description": "Only the first N lines (0: all)."}}},
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


class Directory(Resource):
    def create(self) -> None:
        path = Path(self.properties["path"]).expanduser().absolute()
        if "created" not in self.runtime:
            # Decide "ours or not" once, and save the answer before the side effect: a
            # create resumed after a crash must not mistake its own directory for a stranger's.
            self.save(path=str(path), created=not path.exists())
        if path.exists() and not path.is_dir():
            raise NonRecoverableError(f"{path} exists and is not a directory")
        path.mkdir(parents=True, exist_ok=True)
        self.logger.info("directory %s ready (%s)", path, "created" if self.runtime["created"] else "existed")

    def check_drift(self) -> str | None:
        path = Path(self.runtime.get("path") or self.properties["path"])
        return None if path.is_dir() else "gone"

    def delete(self) -> None:
        path = Path(self.runtime.get("path") or self.properties["path"]).expanduser().absolute()
        if not self.runtime.get("created"):
            self.logger.info("leaving %s in place: it existed before this deployment", path)
        elif not path.is_dir():
            self.logger.info("directory %s is already gone", path)
        elif any(path.iterdir()):
            self.logger.warning("leaving %s in place: it holds files this deployment did not write", path)
        else:
            path.rmdir()
            self.logger.info("removed directory %s", path)
        self.runtime.pop("path", None)
        self.runtime.pop("created", None)


class File(Resource):
    def directory(self) -> Path | None:
        """The path of the directory this file is contained in, if any."""
        for rel in self.instance.relationships:
            if CONTAINED_IN in rel.type_hierarchy and DIRECTORY in rel.target.node.type_hierarchy:
                target = rel.target
                return Path(target.instance.runtime_properties.get("path") or target.node.properties["path"])
        return None

    def path(self) -> Path:
        path = Path(self.properties["path"]).expanduser()
        if not path.is_absolute():
            path = (self.directory() or Path.cwd()) / path
        return path.absolute()

    def content(self) -> bytes:
        if self.properties.get("template"):
            return self.ctx.get_resource_and_render(self.properties["template"], self.properties["variables"])
        return self.properties["content"].encode("utf-8")

    def create(self) -> None:
        path, data, mode = self.path(), self.content(), self.properties["mode"]
        if not path.parent.is_dir():
            raise NonRecoverableError(f"directory {path.parent} does not exist")
        if path.is_dir():
            raise NonRecoverableError(f"{path} is a directory")
        if path.exists() and path.read_bytes() == data:
            # Ours from an attempt that crashed before saving, or identical anyway: adopt it.
            os.chmod(path, mode)
            self.logger.info("%s already has the expected content", path)
        elif path.exists() and self.runtime.get("path") != str(path):
            raise NonRecoverableError(f"{path} exists with other content; refusing to overwrite a "
                                      f"file this deployment did not write")
        else:
            write_atomically(path, data, mode)
            self.logger.info("wrote %s (%d bytes, mode %s)", path, len(data), oct(mode))
        self.save(path=str(path), sha256=hashlib.sha256(data).hexdigest(), size=len(data))

    def update(self) -> None:
        """New content or mode, in place (a new path replaces the file instead)."""
        path, data, mode = Path(self.runtime["path"]), self.content(), self.properties["mode"]
        write_atomically(path, data, mode)
        self.logger.info("rewrote %s (%s changed)", path, ", ".join(sorted(self.ctx.changes)))
        self.save(sha256=hashlib.sha256(data).hexdigest(), size=len(data))

    def check_drift(self) -> dict[str, Any] | str | None:
        path = Path(self.runtime.get("path") or self.path())
        try:
            data, mode = path.read_bytes(), path.stat().st_mode & 0o777
        except FileNotFoundError:
            return "gone"
        drift: dict[str, Any] = {}
        if hashlib.sha256(data).hexdigest() != self.runtime.get("sha256"):
            drift["content"] = {"recorded_sha256": self.runtime.get("sha256"),
                                "actual_sha256": hashlib.sha256(data).hexdigest()}
        if mode != self.properties["mode"]:
            drift["mode"] = {"recorded": oct(self.properties["mode"]), "actual": oct(mode)}
        return drift or None

    def cat(self, lines: int) -> str:
        """The custom operation ``cat`` (``orchestrator execute``): reads, changes nothing."""
        path = Path(self.runtime.get("path") or self.path())
        try:
            text = path.read_text("utf-8", errors="replace")
        except FileNotFoundError:
            raise NonRecoverableError(f"{path} is gone (orchestrator heal writes it again)") from None
        return "".join(text.splitlines(keepends=True)[:lines]) if lines else text

    def delete(self) -> None:
        ours = "path" in self.runtime
        path = Path(self.runtime["path"]) if ours else self.path()
        try:
            current = path.read_bytes()
        except FileNotFoundError:
            self.logger.info("%s is already gone", path)
        else:
            # Without saved runtime properties (create crashed before saving them) the file
            # is ours only if it holds exactly what create would have written.
            if ours or current == self.content():
                path.unlink(missing_ok=True)
                self.logger.info("removed %s", path)
            else:
                self.logger.warning("leaving %s in place: this deployment did not write it", path)
        for key in ("path", "sha256", "size"):
            self.runtime.pop(key, None)


class FileInDirectory(Relationship):
    """The file (source) is listed in its directory's (target's) MANIFEST while both exist."""

    def establish(self) -> None:
        self.edit_manifest(lambda lines, name: lines.append(name))  # listed once: lines are a set
        self.logger.info("listed %s in %s", self.source.instance.id, MANIFEST)

    def unlink(self) -> None:
        if "path" not in self.target.instance.runtime_properties:
            return  # the directory is already gone
        self.edit_manifest(lambda lines, name: lines.remove(name) if name in lines else None)

    def edit_manifest(self, edit: Callable[[list[str], str], None]) -> None:
        directory = Path(self.target.instance.runtime_properties["path"])
        name = os.path.relpath(self.source.instance.runtime_properties["path"], directory)
        manifest = directory / MANIFEST
        with _manifest_lock:
            lines = manifest.read_text("utf-8").splitlines() if manifest.exists() else []
            edit(lines, name)
            if lines:
                manifest.write_text("".join(f"{line}\n" for line in sorted(set(lines))), "utf-8")
            else:
                manifest.unlink(missing_ok=True)


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


plugin = Plugin(TYPES, {DIRECTORY: Directory, FILE: File, FILE_IN_DIRECTORY: FileInDirectory})
"""The plugin object the ``hello`` entry point names."""
