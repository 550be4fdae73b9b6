"""From a blueprint file to a validated ``Blueprint`` with plan-time functions resolved.

Each stage adds problems instead of raising, so one run reports everything; stages that
depend on a previous one (e.g. property checks need the types) skip what is already
known to be broken rather than piling up follow-on errors.
"""

from __future__ import annotations

import contextlib
import gc
import graphlib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from orchestrator.dsl import cloudify, input_refs
from orchestrator.dsl.cloudify import PackSource
from orchestrator.dsl.functions import (
    CLOUDIFY_ONLY,
    FUNCTIONS,
    NOT_IN_INPUTS,
    SOURCE,
    TARGET,
    PlanResolver,
    as_function,
    functions_in,
    has_runtime_function,
    unknown_function_message,
)
from orchestrator.dsl.inputs import GivenInput, coerce, display_path
from orchestrator.dsl.limits import MAX_INSTANCES_ENV, MAX_TEMPLATE_INSTANCES_ENV, instance_limits
from orchestrator.dsl.locate import Document, settle
from orchestrator.dsl.model import (
    DEPENDS_ON,
    MISSING,
    Blueprint,
    NodeTemplate,
    Output,
    RelationshipTemplate,
    TypeDef,
)
from orchestrator.dsl.problems import (
    NOWHERE,
    BlueprintError,
    Mark,
    Pending,
    Problems,
    did_you_mean,
    shown,
)
from orchestrator.dsl.schema import (
    INPUT_KEYS,
    PRIMITIVE_TYPES,
    ValueChecker,
    describe,
    description_of,
    fill_defaults,
    parse_property_def,
    plainly_valid,
)
from orchestrator.dsl.types import (
    KINDS,
    TypeSource,
    check_data_types,
    check_property_types,
    parse_type_section,
    resolve_types,
)
from orchestrator.dsl.yaml_source import (
    YDict,
    key_mark,
    mark_of,
    merged_mapping,
    parse_yaml,
    read_yaml_file,
)
from orchestrator.levels import levels
from orchestrator.record import Record

TOP_LEVEL_KEYS = (
    "dsl_version", "description", "imports", "inputs", "data_types", "node_types",
    "relationships", "node_templates", "outputs",
)
MERGED_SECTIONS = ("inputs", "data_types", "node_types", "relationships", "node_templates", "outputs")
TEMPLATE_KEYS = ("type", "properties", "relationships", "instances", "description", "operation_timeout")
RELATIONSHIP_KEYS = ("type", "target", "properties")
OUTPUT_KEYS = ("value", "description")
DSL_VERSIONS = ("orchestrator_1_0",)
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def load_blueprint(
    path: str | Path,
    inputs: Mapping[str, GivenInput] | None = None,
    type_sources: Sequence[TypeSource] = (),
    missing_secret: Callable[[str], str | None] | None = None,
    packs: PackSource = None,
) -> Blueprint:
    """Parse, validate and resolve a blueprint; raise ``BlueprintError`` listing every problem.

    One pass reads files without positions (fast). When it finds problems, their marks
    are looked up afterwards in just the parts of the files they point into (see
    ``locate``), so a problem costs little more than a valid blueprint. Only when that
    cannot be done exactly (a YAML error, a message that quotes a position) is the
    whole pass repeated on files read with positions.

    ``missing_secret(name)`` (for a workflow about to run) says why a secret the blueprint
    uses cannot be had, or None: each such secret is a problem where it is first used.
    """
    with gc_paused():
        outcome = _load(Path(path), inputs, type_sources, fast=True, missing_secret=missing_secret, packs=packs)
        if isinstance(outcome, Blueprint):
            return outcome
        settled = None if outcome.problems.inexact else settle(outcome.problems.items, outcome.documents)
        if settled is not None:
            raise BlueprintError(settled)
        del outcome, settled  # the fast parse is garbage before the slow one is built
        outcome = _load(Path(path), inputs, type_sources, fast=False, missing_secret=missing_secret, packs=packs)
        if isinstance(outcome, Blueprint):
            return outcome
        raise BlueprintError(outcome.problems.items)


class _Failed(Record):
    """A pass that found problems, and the files it read (fast pass only) to settle their marks."""

    __slots__ = ("problems", "documents")

    def __init__(self, problems: Problems, documents: list[Document]) -> None:
        self.problems = problems
        self.documents = documents


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Loading allocates many long-lived containers and no cycles; collecting mid-way is waste.

    What was made meanwhile goes straight to the oldest generation (``freeze`` then
    ``unfreeze``, two list merges) instead of being scanned by the young collection that
    re-enabling would trigger (6 % of a 10,000-node plan). Cyclic garbage among it is still
    collected, by the next full collection.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.freeze()
            gc.unfreeze()
            gc.enable()


def _load(path: Path, inputs: Mapping[str, GivenInput] | None, type_sources: Sequence[TypeSource],
          fast: bool, missing_secret: Callable[[str], str | None] | None = None,
          packs: PackSource = None) -> Blueprint | _Failed:
    if cloudify.sniff(path):
        return _load_cloudify(path, inputs, type_sources, missing_secret, packs)
    problems = Problems()
    documents: list[Document] = []
    display = display_path(path)
    try:
        sections, description = _read_documents(path, display, problems, documents if fast else None)
    except cloudify.IsCloudify:
        return _load_cloudify(path, inputs, type_sources, missing_secret, packs)
    if sections is None:
        return _Failed(problems, documents)
    bp = build_blueprint(path, display, description, sections, type_sources, problems)
    return _finish(bp, sections, inputs, problems, missing_secret, documents)


def _load_cloudify(path: Path, inputs: Mapping[str, GivenInput] | None, type_sources: Sequence[TypeSource],
                   missing_secret: Callable[[str], str | None] | None, packs: PackSource) -> Blueprint | _Failed:
    """A Cloudify blueprint: its own front-end reads it (with positions) into our sections."""
    from orchestrator.dsl.cloudify.front import load_cloudify

    outcome = load_cloudify(path, inputs or {}, type_sources, missing_secret, packs)
    return outcome if isinstance(outcome, Blueprint) else _Failed(outcome, [])


def build_blueprint(path: Path, display: str, description: str, sections: Mapping[str, YDict],
                    type_sources: Sequence[TypeSource], problems: Problems) -> Blueprint:
    """An empty ``Blueprint`` with the types of the plugins and the sections resolved."""
    types = _build_types(sections, type_sources, problems)
    return Blueprint(
        path=path.resolve(), display=display, description=description,
        inputs={}, data_types=types["data_types"], node_types=types["node_types"],
        relationship_types=types["relationships"], templates={}, outputs={},
    )


def _finish(bp: Blueprint, sections: Mapping[str, YDict], inputs: Mapping[str, GivenInput] | None,
            problems: Problems, missing_secret: Callable[[str], str | None] | None,
            documents: list[Document]) -> Blueprint | _Failed:
    """``fill_blueprint``, then the blueprint or what was wrong with it."""
    fill_blueprint(bp, sections, inputs, problems, missing_secret)
    return _Failed(problems, documents) if problems else bp


def fill_blueprint(bp: Blueprint, sections: Mapping[str, YDict], inputs: Mapping[str, GivenInput] | None,
                   problems: Problems, missing_secret: Callable[[str], str | None] | None) -> None:
    """Inputs, templates, the graph, properties and outputs, into ``bp``; problems added."""
    checker = ValueChecker(bp.data_types, problems)
    _check_type_defaults(bp, checker)
    reported_inputs = _read_inputs(bp, sections["inputs"], inputs or {}, checker, problems)
    resolver = PlanResolver(bp, problems)
    _read_templates(bp, sections["node_templates"], resolver, problems, reported_inputs)
    if _check_graph(bp, problems):
        _check_instance_total(bp, problems)
    _resolve_properties(bp, resolver, checker, problems)
    _read_outputs(bp, sections["outputs"], resolver, problems)
    if missing_secret is not None:
        for name, mark in bp.secret_marks.items():
            why = missing_secret(name)
            if why is not None:
                problems.add(mark, why)


# ---------------------------------------------------------------- documents and imports


def _read_documents(path: Path, display: str, problems: Problems,
                    documents: list[Document] | None) -> tuple[dict[str, YDict] | None, str]:
    """Read the blueprint and its imports (each file once) into merged sections.

    With ``documents`` the files are read fast (no positions) and listed there.
    """
    merged = {name: merged_mapping() for name in MERGED_SECTIONS}
    origin: dict[tuple[str, str], Mark] = {}
    seen: set[Path] = set()
    queue: list[tuple[Path, str, Mark | None]] = [(path, display, None)]
    description = ""
    root_ok = False
    while queue:
        file, file_label, imported_at = queue.pop(0)
        try:
            real = file.resolve()
            what = "" if file.is_file() else "is not a file" if file.exists() else "does not exist"
        except (OSError, ValueError) as exc:  # a NUL or a name too long for the file system
            real, what = file, f"cannot be read: {getattr(exc, 'strerror', None) or exc}"
        if real in seen:
            continue
        seen.add(real)
        if imported_at is not None and what:
            problems.add(imported_at, f"imported file '{shown(file_label)}' {what}")
            continue
        before = len(problems)
        data = read_yaml_file(file, file_label, problems, fast=documents is not None, documents=documents)
        if data is None:
            if imported_at is None and len(problems) == before:
                problems.add(Mark(file_label, 1, 1), "the blueprint is empty")
            continue
        if not isinstance(data, dict):
            problems.add(mark_of(data) if isinstance(data, list) else Mark(file_label, 1, 1),
                         "a blueprint must be a mapping of top-level keys")
            continue
        if imported_at is None:
            if "tosca_definitions_version" in data:
                raise cloudify.IsCloudify()
            root_ok = True
            description = description_of(data, "the blueprint", problems)
        for key in data:
            if key not in TOP_LEVEL_KEYS:
                problems.add(key_mark(data, key), f"unknown top-level key '{shown(key)}'{did_you_mean(key, TOP_LEVEL_KEYS)}")
        version = data.get("dsl_version")
        if version is not None and version not in DSL_VERSIONS:
            problems.add(mark_of(data, "dsl_version"),
                         f"unsupported dsl_version {shown(repr(version))} (supported: {', '.join(DSL_VERSIONS)})")
        for name in MERGED_SECTIONS:
            _merge_section(name, data.get(name), mark_of(data, name), merged[name], origin, problems)
        imports = data.get("imports")
        if imports is None:
            continue
        if not isinstance(imports, list):
            problems.add(mark_of(data, "imports"), "imports must be a list of relative file paths")
            continue
        for i, item in enumerate(imports):
            imark = mark_of(imports, i)
            if not isinstance(item, str):
                problems.add(imark, "an import must be a relative file path")
                continue
            if _URL.match(item):
                problems.add(imark, f"cannot import '{shown(item)}': imports by URL are not available"
                             " (nothing is downloaded); save the file and import it by relative path")
                continue
            target = file.parent / item
            queue.append((target, shown(display_path(target)), imark))
    return (merged if root_ok else None), description


def _merge_section(name: str, raw: Any, mark: Mark, into: YDict, origin: dict, problems: Problems) -> None:
    if raw is None:
        return
    if not isinstance(raw, dict):
        problems.add(mark, f"'{shown(name)}' must be a mapping")
        return
    if into.mark is NOWHERE:
        into.mark = mark
    sources = into.key_marks.sources  # type: ignore[attr-defined]
    for key, value in raw.items():
        if key in into:
            if into[key] != value:
                first = into.key_marks[key]
                problems.add(key_mark(raw, key), f"{name} entry '{shown(key)}' is defined differently at {first}")
                problems.inexact |= isinstance(first, Pending)
            continue
        into[key] = value
        sources[key] = raw


# ---------------------------------------------------------------- types


def _build_types(sections: Mapping[str, YDict], sources: Sequence[TypeSource],
                 problems: Problems) -> dict[str, dict[str, TypeDef]]:
    defined: dict[str, dict[str, TypeDef]] = {section: {} for section in KINDS}
    for source in sources:
        for section in KINDS:
            parse_type_section(source.sections.get(section), section, source.plugin, problems, defined[section])
    for section in KINDS:
        parse_type_section(sections[section] or None, section, None, problems, defined[section])
    for section in KINDS:
        resolve_types(defined[section], problems)
    check_data_types(defined["data_types"], problems)
    check_property_types(
        [t for section in KINDS for t in defined[section].values()], defined["data_types"], problems
    )
    return defined


def plugin_types(sources: Sequence[TypeSource]) -> dict[str, dict[str, TypeDef]]:
    """The types the plugins register, per section, resolved (operations included); problems
    are the plugins' own and were reported when they loaded."""
    empty = {name: merged_mapping() for name in MERGED_SECTIONS}
    return _build_types(empty, sources, Problems())


def plugin_type_source(plugin: str, result: Any) -> TypeSource:
    """Normalise one ``register_types()`` result (mapping or YAML text) into a TypeSource.

    YAML text is parsed with positions (``<plugin NAME>:LINE:COL``); a mapping is used as
    it is (problems in it are reported at ``<plugin NAME>``), which keeps building a
    plugin manager cheap: every command builds one.
    """
    if isinstance(result, str):
        problems = Problems()
        data = parse_yaml(result, f"<plugin {plugin}>", problems)
        problems.raise_if_any()
    else:
        data = dict(result)
    if not isinstance(data, dict):
        data = {}
    return TypeSource(origin=plugin, sections=data, plugin=plugin)


# ---------------------------------------------------------------- inputs


def _read_inputs(bp: Blueprint, raw: YDict, given: Mapping[str, GivenInput],
                 checker: ValueChecker, problems: Problems) -> set[str]:
    """Declare inputs and check their values; return the names already reported as bad.

    A reported input gets no value, so ``get_input`` of it adds no follow-on problems.
    """
    broken: set[str] = set()  # inputs whose definition or value has a problem
    for name, body in raw.items():
        before = len(problems)
        prop = parse_property_def(str(name), body, key_mark(raw, name), "input", problems, allowed=INPUT_KEYS)
        if not checker.known_type(prop.type):
            problems.add(mark_of(body, "type"), f"input '{shown(name)}' has unknown type '{shown(prop.type)}'"
                         f"{did_you_mean(prop.type or '', [*PRIMITIVE_TYPES, *bp.data_types])}")
            prop.type = None
        if len(problems) > before:
            broken.add(str(name))
        bp.inputs[str(name)] = prop
    for name, item in given.items():
        if name not in bp.inputs:
            problems.add(item.name_mark or item.mark, f"unknown input '{shown(name)}'{did_you_mean(name, bp.inputs)}")
    settled: dict[str, Any] = {}

    def settle(name: str, chain: tuple[str, ...] = ()) -> Any:
        """The input's checked value (MISSING if it has none), once; Cloudify defaults may
        name other inputs (``input_refs``), which are settled first."""
        if name not in settled:
            settled[name] = _input_value(bp, name, given, checker, problems, broken, settle, chain)
        return settled[name]

    for name in bp.inputs:
        settle(name)
    return broken


def _input_value(bp: Blueprint, name: str, given: Mapping[str, GivenInput], checker: ValueChecker,
                 problems: Problems, broken: set[str], settle: input_refs.Lookup, chain: tuple[str, ...]) -> Any:
    """Check one input's value (given, else its default) and store it in ``bp.input_values``."""
    prop = bp.inputs[name]
    if name in broken:
        return MISSING
    if name in given:
        value, mark = coerce(given[name], prop), given[name].mark
    elif prop.default is not MISSING:
        value, mark = prop.default, mark_of(prop.raw, "default")
    else:
        if prop.required:
            problems.add(prop.mark, f"input '{shown(name)}' is required but was not given (use -i {name}=VALUE)")
            broken.add(name)
        return MISSING
    where = f"input '{shown(name)}'" if name in given else f"default of input '{shown(name)}'"
    if bp.dialect == "cloudify" and name not in given and input_refs.has_get_input(value):
        try:
            value = input_refs.expand(value, mark, (*chain, name), bp.inputs, settle, problems, where)
        except input_refs.Failed:
            broken.add(name)
            return MISSING
    before = len(problems)
    for fn, fmark in functions_in(value, mark):
        if fn in NOT_IN_INPUTS:
            problems.add(fmark, f"{where}: {fn} cannot be used in an input (inputs are known before"
                         " any node exists, and cannot refer to each other)")
        elif fn not in FUNCTIONS or (fn in CLOUDIFY_ONLY and bp.dialect != "cloudify"):
            problems.add(fmark, f"{where}: {unknown_function_message(fn)}")
    if len(problems) > before:
        broken.add(name)
        return MISSING
    checker.check_property(prop, value, mark, where)
    if len(problems) > before:
        broken.add(name)
        return MISSING
    bp.input_values[name] = value
    return value


# ---------------------------------------------------------------- templates


def _read_templates(bp: Blueprint, raw: YDict, resolver: PlanResolver, problems: Problems,
                    reported_inputs: set[str]) -> None:
    per_template, _ = instance_limits(problems)
    for name, body in raw.items():
        name = str(name)
        tmark = key_mark(raw, name)
        if not isinstance(body, dict):
            problems.add(tmark, f"node template '{shown(name)}' must be a mapping with at least 'type'")
            continue
        for key in body:
            if key not in TEMPLATE_KEYS:
                problems.add(key_mark(body, key),
                             f"unknown key '{shown(key)}' in node template '{shown(name)}'{did_you_mean(key, TEMPLATE_KEYS)}")
        if "description" in body:
            description_of(body, f"node template '{name}'", problems)
        type_name = body.get("type")
        ntype = None
        if type_name is None:
            problems.add(tmark, f"node template '{shown(name)}' has no 'type'")
        elif not isinstance(type_name, str) or type_name not in bp.node_types:
            problems.add(mark_of(body, "type"), f"node template '{shown(name)}': unknown node type '{shown(type_name)}'"
                         f"{did_you_mean(str(type_name), bp.node_types)}")
        else:
            ntype = bp.node_types[type_name]
        props = body.get("properties")
        if props is None:
            props = YDict()
        elif not isinstance(props, dict):
            problems.add(mark_of(body, "properties"), f"node template '{shown(name)}': properties must be a mapping")
            props = YDict()
        instances = body.get("instances", 1)
        if "instances" in body:
            instances = _instance_count(name, body, instances, resolver, problems, reported_inputs, per_template)
        template = NodeTemplate(name=name, type=str(type_name), properties=props, relationships=[],
                                instances=instances, mark=tmark,
                                operation_timeout=_operation_timeout(name, body, problems))
        if ntype is not None and ntype.hierarchy:
            template.hierarchy, template.owner = ntype.hierarchy, ntype.owner
        template.relationships = _read_relationships(bp, template, body, raw, problems)
        bp.templates[name] = template


def _instance_count(name: str, body: Mapping, instances: Any, resolver: PlanResolver, problems: Problems,
                    reported_inputs: set[str], per_template: int) -> int:
    """A template's ``instances``: a whole number within the limit, known when planning (else 1,
    with the problem reported)."""
    imark = mark_of(body, "instances")
    before = len(problems)
    fn = as_function(instances)
    if fn is not None and fn[0] == "get_input" and _input_name(fn[1]) in reported_inputs:
        instances = 1  # the input's own problem says what is wrong
    elif isinstance(instances, dict):  # e.g. {get_input: count}
        instances = resolver.resolve(instances, imark, None, f"node template '{shown(name)}': instances", ())
    if len(problems) > before:
        instances = 1  # the function's own problem says what is wrong
    elif has_runtime_function(instances):
        problems.add(imark, f"node template '{shown(name)}': instances must be known when planning;"
                     " get_attribute and get_secret are only resolved at run time")
        instances = 1
    elif isinstance(instances, bool) or not isinstance(instances, int) or instances < 0:
        problems.add(imark, f"node template '{shown(name)}': instances must be a whole number >= 0,"
                     f" got {describe(instances)}")
        instances = 1
    elif instances > per_template:
        problems.add(imark, f"node template '{shown(name)}': instances {instances} is more than the limit of"
                     f" {per_template} per node template (set {MAX_TEMPLATE_INSTANCES_ENV} to change it)")
        instances = 1
    return instances


def _operation_timeout(name: str, body: Mapping, problems: Problems) -> float | None:
    """A template's ``operation_timeout``: seconds each of its hook calls may take."""
    value = body.get("operation_timeout")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 7 * 86400:
        problems.add(mark_of(body, "operation_timeout"), f"node template '{name}': operation_timeout must be "
                     f"a number of seconds > 0 and at most a week, got {describe(value)}")
        return None
    return float(value)


def _input_name(args: Any) -> str | None:
    """The input a ``get_input`` argument names (``name`` or ``[name, key, ...]``)."""
    if isinstance(args, list) and args:
        args = args[0]
    return args if isinstance(args, str) else None


def _read_relationships(bp: Blueprint, template: NodeTemplate, body: Mapping, raw: YDict,
                        problems: Problems) -> list[RelationshipTemplate]:
    rels_raw = body.get("relationships")
    if rels_raw is None:
        return []
    if not isinstance(rels_raw, list):
        problems.add(mark_of(body, "relationships"),
                     f"node template '{shown(template.name)}': relationships must be a list of {{type, target}}")
        return []
    result: list[RelationshipTemplate] = []
    hosts: list[RelationshipTemplate] = []
    for i, item in enumerate(rels_raw):
        imark = mark_of(rels_raw, i)

        def where(i: int = i) -> str:  # worded only for a problem: most relationships have none
            return f"node template '{shown(template.name)}': relationship {i + 1}"

        if not isinstance(item, dict):
            problems.add(imark, f"{where()} must be a mapping with 'type' and 'target'")
            continue
        for key in item:
            if key not in RELATIONSHIP_KEYS:
                problems.add(key_mark(item, key), f"unknown key '{shown(key)}' in {where()}{did_you_mean(key, RELATIONSHIP_KEYS)}")
        rtype, target = item.get("type"), item.get("target")
        bad = False
        if rtype is None:
            problems.add(imark, f"{where()} has no 'type'")
            bad = True
        elif not isinstance(rtype, str) or rtype not in bp.relationship_types:
            problems.add(mark_of(item, "type"), f"{where()}: unknown relationship type '{shown(rtype)}'"
                         f"{did_you_mean(str(rtype), bp.relationship_types)}")
            bad = True
        if target is None:
            problems.add(imark, f"{where()} has no 'target'")
            bad = True
        elif not isinstance(target, str):
            problems.add(mark_of(item, "target"), f"{where()}: target must be a node template name")
            bad = True
        elif target not in raw:
            problems.add(mark_of(item, "target"), f"{where()}: target '{shown(target)}' is not a node template"
                         f"{did_you_mean(target, [str(k) for k in raw])}")
            bad = True
        elif target == template.name:
            problems.add(mark_of(item, "target"), f"{where()}: a node cannot target itself")
            bad = True
        props = item.get("properties") or {}
        if not isinstance(props, dict):
            problems.add(mark_of(item, "properties"), f"{where()}: properties must be a mapping")
            props = YDict()
        if bad:
            continue
        rt = bp.relationship_types[rtype]
        rel = RelationshipTemplate(type=rtype, target=target, properties=props, index=len(result), mark=imark,
                                   hierarchy=rt.hierarchy or [DEPENDS_ON, rtype], owner=rt.owner)
        result.append(rel)
        if rel.is_contained_in:
            hosts.append(rel)
    if len(hosts) > 1:
        names = ", ".join(f"'{shown(h.target)}'" for h in hosts)
        problems.add(hosts[1].mark, f"node template '{shown(template.name)}' is contained_in more than one host: {names}")
    if hosts:
        template.host = hosts[0].target
    return result


def _check_graph(bp: Blueprint, problems: Problems) -> bool:
    """Relationships must form a DAG; print the cycle a user has to break. True when they do."""
    if _acyclic(bp):
        return True
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()  # finds the cycle to show
    for t in bp.templates.values():
        sorter.add(t.name, *(r.target for r in t.relationships if r.target in bp.templates))
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        cycle: list[str] = exc.args[1]
        cycle = list(reversed(cycle))  # graphlib lists dependents last; show source -> target
        first = bp.templates[cycle[0]]
        rel = next((r for r in first.relationships if r.target == cycle[1]), None)
        problems.add(rel.mark if rel else first.mark, f"dependency cycle: {' -> '.join(cycle)}")
        return False
    return True


def _acyclic(bp: Blueprint) -> bool:
    """Whether the templates' relationships form no cycle (by ``levels``: a quarter of the cost
    of graphlib's ``prepare`` on 10,000 templates; graphlib is kept for finding the cycle)."""
    placed, count = levels((t.name, [r.target for r in t.relationships if r.target in bp.templates])
                           for t in bp.templates.values())
    return sum(map(len, placed)) == count


def _check_instance_total(bp: Blueprint, problems: Problems) -> None:
    """The node instances a plan would make (hosts replicate what they contain) stay bounded.

    Counted here, in linear time, so ``plan`` never starts building a hundred million.
    """
    _, limit = instance_limits(Problems())  # a bad value was reported with the per-template one
    planned: dict[str, int] = {t.name: t.instances for t in bp.templates.values() if t.host is None}
    for template in bp.templates.values():
        chain = []
        t: NodeTemplate | None = template
        while t is not None and t.name not in planned:  # walk up to a counted host, then count down
            chain.append(t)
            t = bp.templates.get(t.host) if t.host else None
        for c in reversed(chain):
            host_count = planned.get(c.host, 1) if c.host else 1
            planned[c.name] = min(c.instances * host_count, limit + 1)  # capped: no huge numbers
    total = sum(planned.values())
    if total > limit:
        top = max(bp.templates.values(), key=lambda t: planned[t.name])
        count = planned[top.name]
        part = f"more than {limit}" if count > limit else str(count)
        problems.add(top.mark, f"node template '{shown(top.name)}': the deployment would have more than {limit} node"
                     f" instances ({part} of them from this node template); set {MAX_INSTANCES_ENV} to change"
                     " the limit")


# ---------------------------------------------------------------- properties and outputs


def _resolve_properties(bp: Blueprint, resolver: PlanResolver, checker: ValueChecker,
                        problems: Problems) -> None:
    cloudify_dialect = bp.dialect == "cloudify"  # Cloudify: an adopted resource needs no other property
    for t in bp.templates.values():
        ntype = bp.node_types.get(t.type)
        if ntype is None or not ntype.hierarchy:
            continue
        schema = ntype.properties
        name = shown(t.name)
        for key in t.properties:
            if key not in schema:
                problems.add(key_mark(t.properties, key), f"node template '{name}': unknown property '{shown(key)}'"
                             f" of type '{shown(t.type)}'{did_you_mean(key, schema)}")
        waived = cloudify_dialect and t.properties.get("use_external_resource") is True
        for pname, prop in schema.items():
            if pname not in t.properties and prop.required and prop.default is MISSING and not waived:
                problems.add(t.mark, f"node template '{name}': missing required property '{shown(pname)}'"
                             f" of type '{shown(t.type)}'")
        values = resolver.template_properties(t, schema)
        runtime = set()
        for pname, value in values.items():
            if has_runtime_function(value):
                runtime.add(pname)  # checked as far as it is known; the rest at run time
            prop = schema.get(pname)
            if prop is None:
                continue
            if plainly_valid(prop, value):
                pass
            elif pname in t.properties:
                checker.check_property(prop, value, mark_of(t.properties, pname),
                                       f"node template '{name}': property '{pname}'")
            else:  # a type's default: reported once, where the default is written
                where, mark = _default_source(ntype, pname, bp.node_types)
                checker.check_property(prop, value, mark, where)
            values[pname] = fill_defaults(prop, value, bp.data_types)
        t.values, t.runtime_paths = values, frozenset(runtime)
        for rel in t.relationships:
            _resolve_relationship(bp, t, rel, resolver, checker, problems)


def _resolve_relationship(bp: Blueprint, t: NodeTemplate, rel: RelationshipTemplate, resolver: PlanResolver,
                          checker: ValueChecker, problems: Problems) -> None:
    rtype = bp.relationship_types[rel.type]
    if not rel.properties and not rtype.properties:  # most relationships: nothing to resolve or check
        rel.values = {}
        return
    where = f"node template '{shown(t.name)}': relationship to '{shown(rel.target)}'"
    for key in rel.properties:
        if key not in rtype.properties:
            problems.add(key_mark(rel.properties, key), f"{where}: unknown property '{shown(key)}'"
                         f"{did_you_mean(key, rtype.properties)}")
    rel.values = {k: resolver.resolve(v, mark_of(rel.properties, k), t, f"{where}: property '{shown(k)}'",
                                      (SOURCE, TARGET)) for k, v in rel.properties.items()}
    for pname, prop in rtype.properties.items():
        if pname in rel.values:
            checker.check_property(prop, rel.values[pname], mark_of(rel.properties, pname),
                                   f"{where}: property '{shown(pname)}'")
        elif prop.default is not MISSING:
            rel.values[pname] = prop.default
            default_where, default_mark = _default_source(rtype, pname, bp.relationship_types)
            checker.check_property(prop, prop.default, default_mark, default_where)
        elif prop.required:
            problems.add(rel.mark, f"{where}: missing required property '{shown(pname)}' of relationship type '{shown(rel.type)}'")
            continue
        if pname in rel.values:
            rel.values[pname] = fill_defaults(prop, rel.values[pname], bp.data_types)


def _default_source(t: TypeDef, pname: str, types: Mapping[str, TypeDef]) -> tuple[str, Mark]:
    """Where the default of ``pname`` is written: ``("node type 'x': default of property 'p'", mark)``.

    That is the nearest type of ``t``'s hierarchy whose own definition states a default.
    """
    for name in reversed(t.hierarchy):
        own = types[name].own_properties.get(pname) if name in types else None
        if own is not None and isinstance(own.raw, dict) and "default" in own.raw:
            return f"{types[name].kind} '{name}': default of property '{pname}'", mark_of(own.raw, "default")
    return f"{t.kind} '{t.name}': default of property '{pname}'", t.mark


def _check_type_defaults(bp: Blueprint, checker: ValueChecker) -> None:
    """The defaults a blueprint's own types state fit their property, used or not.

    Defaults holding functions are checked where they are resolved (per template), as
    are the defaults of plugin types (only when a template uses them).
    """
    for types in (bp.data_types, bp.node_types, bp.relationship_types):
        for t in types.values():
            if t.plugin is not None or not t.hierarchy:
                continue
            for pname, own in t.own_properties.items():
                if isinstance(own.raw, dict) and "default" in own.raw:
                    checker.check_property(t.properties.get(pname, own), own.default, mark_of(own.raw, "default"),
                                           f"{t.kind} '{shown(t.name)}': default of property '{shown(pname)}'")


def _read_outputs(bp: Blueprint, raw: YDict, resolver: PlanResolver, problems: Problems) -> None:
    for name, body in raw.items():
        omark = key_mark(raw, name)
        if not isinstance(body, dict) or "value" not in body:
            problems.add(omark, f"output '{shown(name)}' must be a mapping with a 'value'")
            continue
        for key in body:
            if key not in OUTPUT_KEYS:
                problems.add(key_mark(body, key), f"unknown key '{shown(key)}' in output '{shown(name)}'{did_you_mean(key, OUTPUT_KEYS)}")
        value = resolver.resolve(body["value"], mark_of(body, "value"), None, f"output '{shown(name)}'", ())
        bp.outputs[str(name)] = Output(str(name), value, description_of(body, f"output '{shown(name)}'", problems), omark)


__all__ = ["build_blueprint", "fill_blueprint", "load_blueprint", "plugin_type_source", "plugin_types"]
