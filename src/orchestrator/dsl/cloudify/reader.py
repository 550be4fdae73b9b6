"""Reading a Cloudify blueprint and its imports into merged sections, offline.

Cloudify fetched ``types.yaml`` and plugin YAML over the network (or from its manager's
catalog for ``plugin:NAME``). Here every such import resolves to a pack shipped with an
installed distribution, and any other URL is one clear problem: nothing is downloaded.
A local file that declares types a pack provides (a vendored ``plugin.yaml``) gets the
pack's definitions of them, so the blueprint runs the same types either way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from orchestrator.cloudify import CloudifyPack
from orchestrator.dsl.cloudify import VERSION_KEY, VERSIONS
from orchestrator.dsl.cloudify.yaml11 import parse_yaml11, read_yaml11
from orchestrator.dsl.inputs import display_path
from orchestrator.dsl.problems import Mark, Problems, did_you_mean, shown
from orchestrator.dsl.yaml_source import YDict, key_mark, mark_of

TOP_LEVEL_KEYS = (
    VERSION_KEY, "description", "imports", "dsl_definitions", "metadata", "inputs", "plugins",
    "node_types", "relationships", "node_templates", "policy_types", "policy_triggers", "groups",
    "policies", "workflows", "outputs", "data_types", "capabilities", "labels", "blueprint_labels",
    "upload_resources", "deployment_settings", "resource_tags",
)
MERGED = ("inputs", "plugins", "data_types", "node_types", "relationships", "node_templates", "outputs",
          "capabilities", "groups", "policies", "workflows", "policy_types", "policy_triggers",
          "upload_resources")
TYPE_SECTIONS = ("data_types", "node_types", "relationships")
IGNORED = ("description", "dsl_definitions", "metadata", "labels", "blueprint_labels", "resource_tags",
           "deployment_settings")  # documentation and manager bookkeeping: nothing to run
# Cloudify's own types.yaml, wherever a blueprint found it.
CLOUDIFY_TYPES = (
    r"cloudify/types/types\.yaml",
    r"https?://(www\.)?(getcloudify\.org|cloudify\.co)(/[\w.-]+)*/types\.yaml",
    r"https?://raw\.githubusercontent\.com/cloudify-cosmo/cloudify-manager/[^/]+/resources/rest-service/"
    r"cloudify/types/types\.yaml",
)
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


@attrs.define
class Read:
    """The merged sections of a blueprint and its imports, with the packs they import."""

    version: str
    sections: dict[str, YDict]
    packs: dict[str, CloudifyPack] = attrs.field(factory=dict)  # name -> pack, in import order
    pack_plugin: dict[str, str] = attrs.field(factory=dict)  # pack name -> plugin that ships it
    from_pack: dict[str, str] = attrs.field(factory=dict)  # type name -> pack name
    # An import was not available offline: types it would have declared are unknown, and
    # saying so for each use would only repeat that one problem.
    incomplete: bool = False


class Reader:
    """One blueprint's files, read once each, problems collected."""

    def __init__(self, packs: Sequence[tuple[str, CloudifyPack]], base: CloudifyPack, problems: Problems) -> None:
        self.available = [(plugin, pack) for plugin, pack in packs]
        self.base = base
        self.problems = problems
        self.read = Read("", {name: _merged() for name in MERGED})
        self._pack_types: dict[str, str] = {}  # type name -> pack name, of every pack available
        self._origin: dict[tuple[str, str], Mark] = {}

    def load(self, path: Path) -> Read | None:
        display = display_path(path)
        data = read_yaml11(path, display, self.problems)
        if data is None:
            if not self.problems:
                self.problems.add(Mark(display, 1, 1), "the blueprint is empty")
            return None
        if not isinstance(data, dict):
            self.problems.add(Mark(display, 1, 1), "a blueprint must be a mapping of top-level keys")
            return None
        version = data.get(VERSION_KEY)
        if version not in VERSIONS:
            self.problems.add(mark_of(data, VERSION_KEY) if VERSION_KEY in data else Mark(display, 1, 1),
                              f"unsupported {VERSION_KEY} {shown(repr(version))} (supported: {', '.join(VERSIONS)})")
            return None
        self.read.version = version
        for _plugin, pack in self.available:
            for section in TYPE_SECTIONS:
                for name in _types_of(pack, section):
                    self._pack_types.setdefault(name, pack.name)
        for name in _types_of_all(self.base):
            self._pack_types[name] = self.base.name
        seen: set[Path] = set()
        queue: list[tuple[Path, str, Any]] = [(path, display, data)]
        while queue:
            file, label, body = queue.pop(0)
            if body is None:
                body = read_yaml11(file, label, self.problems)
                if body is None:
                    continue
                if not isinstance(body, dict):
                    self.problems.add(Mark(label, 1, 1), "an imported file must be a mapping of top-level keys")
                    continue
            self._merge_file(body, label)
            for target, tlabel in self._imports(body, file):
                real = target.resolve()
                if real not in seen:
                    seen.add(real)
                    queue.append((target, tlabel, None))
        return self.read

    # -- imports ---------------------------------------------------------------------

    def _imports(self, body: YDict, file: Path) -> list[tuple[Path, str]]:
        raw = body.get("imports")
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.problems.add(mark_of(body, "imports"), "imports must be a list")
            return []
        files = []
        for i, item in enumerate(raw):
            mark = mark_of(raw, i)
            if isinstance(item, dict) and len(item) == 1 and str(next(iter(item))).startswith("plugin:"):
                # DSL 1.5: "- plugin:NAME: {properties}" gives the plugin properties every node of it uses
                item = str(next(iter(item)))
                self.problems.add(mark, f"not supported: properties of the import '{shown(item)}' (plugin "
                                  "properties, DSL 1.5): give them to the node templates that need them")
            if not isinstance(item, str):
                self.problems.add(mark, "an import must be a path, a URL or plugin:NAME")
                continue
            if re.match(r"^[\w.-]+--", item):
                self.read.incomplete = True
                self.problems.add(mark, f"not supported: namespaced import '{shown(item)}' (namespaces need a "
                                  "Cloudify manager's blueprint catalog)")
                continue
            if self._pack_import(item, mark):
                continue
            if _URL.match(item) or item.startswith("plugin:"):
                self.read.incomplete = True
                self.problems.add(mark, f"not available offline: {shown(item)} (no installed orchestrator plugin "
                                  "ships it; nothing is downloaded)")
                continue
            target = file.parent / item
            label = shown(display_path(target))
            if not target.is_file():
                self.read.incomplete = True  # as for an import not available: what it declares is unknown
                self.problems.add(mark, f"imported file '{label}' does not exist")
                continue
            files.append((target, label))
        return files

    def _pack_import(self, item: str, mark: Mark) -> bool:
        """Load the pack an import names (``plugin:NAME``, a known URL); False if none does."""
        plain = item.split("?", 1)[0]
        if any(re.fullmatch(p, plain) for p in CLOUDIFY_TYPES):
            self._use(self.base, "orchestrator.builtin")
            return True
        if plain.startswith("plugin:"):
            name = plain[len("plugin:"):].strip()
            for plugin, pack in self.available:
                if pack.name == name:
                    self._use(pack, plugin)
                    return True
            return False
        for plugin, pack in self.available:
            if pack.answers(item):
                self._use(pack, plugin)
                return True
        return False

    def _use(self, pack: CloudifyPack, plugin: str) -> None:
        if pack.name in self.read.packs:
            return
        self.read.packs[pack.name] = pack
        self.read.pack_plugin[pack.name] = plugin
        data = pack_data(pack, self.problems)
        for section in (*TYPE_SECTIONS, "plugins"):
            raw = data.get(section)
            if isinstance(raw, dict):
                into = self.read.sections[section]
                for name, body in raw.items():
                    into[name] = body
                    into.key_marks[name] = key_mark(raw, name)
                    if section in TYPE_SECTIONS:
                        self.read.from_pack[str(name)] = pack.name

    # -- sections --------------------------------------------------------------------

    def _merge_file(self, body: YDict, label: str) -> None:
        for key in body:
            if key not in TOP_LEVEL_KEYS:
                self.problems.add(key_mark(body, key), f"unknown top-level key '{shown(key)}'"
                                  f"{did_you_mean(str(key), TOP_LEVEL_KEYS)}")
        version = body.get(VERSION_KEY)
        if version is not None and version not in VERSIONS:
            self.problems.add(mark_of(body, VERSION_KEY), f"unsupported {VERSION_KEY} {shown(repr(version))}")
        for section in MERGED:
            raw = body.get(section)
            if raw is None:
                continue
            if not isinstance(raw, dict):
                self.problems.add(mark_of(body, section), f"'{section}' must be a mapping")
                continue
            into = self.read.sections[section]
            for name, value in raw.items():
                if section in TYPE_SECTIONS and str(name) in self._pack_types:
                    self._use_pack_named(self._pack_types[str(name)])
                    continue  # the pack's definition stands for this copy of the plugin's YAML
                if name in into:
                    if into[name] != value and section != "plugins":
                        self.problems.add(key_mark(raw, name), f"{section} entry '{shown(name)}' is defined "
                                          f"differently at {self._origin.get((section, str(name)), into.key_marks.get(name))}")
                    continue
                into[name] = value
                into.key_marks[name] = key_mark(raw, name)
                into.value_marks[name] = mark_of(raw, name)
                self._origin[(section, str(name))] = key_mark(raw, name)

    def _use_pack_named(self, name: str) -> None:
        if name == self.base.name:
            self._use(self.base, "orchestrator.builtin")
            return
        for plugin, pack in self.available:
            if pack.name == name:
                self._use(pack, plugin)
                return


def _merged() -> YDict:
    return YDict()


_PACK_DATA: dict[int, Any] = {}


def pack_data(pack: CloudifyPack, problems: Problems) -> Mapping[str, Any]:
    """A pack's types as positioned data (``<pack NAME>:LINE:COL``), parsed once per process."""
    cached = _PACK_DATA.get(id(pack))
    if cached is not None and cached[0] is pack:
        return cached[1]
    if isinstance(pack.types, str):
        own = Problems()
        data = parse_yaml11(pack.types, f"<pack {pack.name}>", own)
        problems.items.extend(own.items)
    else:
        data = pack.types
    data = data if isinstance(data, dict) else {}
    _PACK_DATA[id(pack)] = (pack, data)
    return data


def _types_of(pack: CloudifyPack, section: str) -> list[str]:
    data = pack_data(pack, Problems())
    raw = data.get(section)
    return [str(k) for k in raw] if isinstance(raw, dict) else []


def _types_of_all(pack: CloudifyPack) -> list[str]:
    return [name for section in TYPE_SECTIONS for name in _types_of(pack, section)]


__all__ = ["CLOUDIFY_TYPES", "Read", "Reader", "pack_data"]
