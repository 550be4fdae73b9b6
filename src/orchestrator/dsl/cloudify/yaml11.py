"""YAML as Cloudify reads it: YAML 1.1 scalars and ``<<`` merge keys, with positions.

Cloudify's parser is PyYAML's safe loader, so a Cloudify blueprint means ``yes`` as true,
``0755`` as 493 and ``<<: *defaults`` as a merge; its ``dsl_definitions`` exist to hold
the anchors those merges use. Our own dialect reads YAML 1.2 without merge keys
(``yaml_source``); this reader keeps everything else of it: marks on every mapping and
sequence, duplicate keys as errors (a key a merge brought in may be overridden, as
YAML 1.1 says), the depth, alias and integer limits, and syntax errors as problems.
Timestamps stay the text they were written as (a plan is JSON), and the tags that make
something other than plain data (``!!binary``, ``!!set``, ...) are refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
import yaml.resolver

from orchestrator.dsl.limits import MAX_INT_DIGITS
from orchestrator.dsl.problems import Mark, Problems, shown
from orchestrator.dsl.yaml_marked import _construct_sequence, _Loader, _Marked, parse_marked
from orchestrator.dsl.yaml_source import YDict, read_text

MERGE_TAG = "tag:yaml.org,2002:merge"


class _Loader11(_Loader):
    """The positioned loader of ``yaml_source`` with YAML 1.1 resolution and merge keys."""

    def resolve(self, kind: type, value: str, implicit: tuple[bool, bool]) -> str:
        return yaml.resolver.Resolver.resolve(self, kind, value, implicit)


class _PyLoader11(_Marked, yaml.SafeLoader):  # type: ignore[misc]
    """``_Loader11`` on PyYAML's pure-Python parser, which is Cloudify's: it reads some text
    libyaml refuses, ``{concat:[a, b]}`` (no space after the colon) above all."""

    resolve = _Loader11.resolve


def _construct_int(loader: _Loader11, node: yaml.ScalarNode) -> Any:
    digits = sum(c.isdigit() for c in node.value)
    if digits > MAX_INT_DIGITS:
        loader.problems.add(loader.mark(node), f"integer too large: more than {MAX_INT_DIGITS} digits")
        return None
    return yaml.constructor.SafeConstructor.construct_yaml_int(loader, node)


def _construct_text(loader: _Loader11, node: yaml.ScalarNode) -> str:
    return str(loader.construct_scalar(node))


def _refuse(loader: _Loader11, node: yaml.Node) -> None:
    loader.problems.add(loader.mark(node), f"YAML tag '{shown(node.tag)}' is not supported here (plain data only)")


def _construct_mapping11(loader: _Loader11, node: yaml.MappingNode) -> YDict:
    return loader.nested(node, YDict(), _fill_mapping11)


def _fill_mapping11(loader: _Loader11, node: yaml.MappingNode, result: YDict) -> None:
    explicit = sum(1 for key, _ in node.value if key.tag != MERGE_TAG)
    loader.flatten_mapping(node)  # merged pairs first, then the mapping's own
    first_own = len(node.value) - explicit
    own: dict[Any, Mark] = {}
    for index, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node, deep=True)
        kmark = loader.mark(key_node)
        try:
            hash(key)
        except TypeError:
            loader.problems.add(kmark, "a mapping key must be a scalar")
            continue
        if index >= first_own:
            if key in own:
                loader.problems.add(kmark, f"duplicate key '{shown(key)}' (first defined at line {own[key].line})")
            own[key] = kmark
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_marks[key] = kmark
        result.value_marks[key] = loader.mark(value_node)


_Loader11.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Loader11.add_constructor("tag:yaml.org,2002:float", yaml.constructor.SafeConstructor.construct_yaml_float)
_Loader11.add_constructor("tag:yaml.org,2002:bool", yaml.constructor.SafeConstructor.construct_yaml_bool)
_Loader11.add_constructor("tag:yaml.org,2002:null", yaml.constructor.SafeConstructor.construct_yaml_null)
_Loader11.add_constructor("tag:yaml.org,2002:str", _construct_text)
_Loader11.add_constructor("tag:yaml.org,2002:timestamp", _construct_text)
_Loader11.add_constructor("tag:yaml.org,2002:map", _construct_mapping11)
_Loader11.add_constructor("tag:yaml.org,2002:seq", _construct_sequence)
for _tag in ("binary", "set", "omap", "pairs"):
    _Loader11.add_constructor(f"tag:yaml.org,2002:{_tag}", _refuse)


_PyLoader11.yaml_constructors = dict(_Loader11.yaml_constructors)

PURE_RETRY_LIMIT = 256_000  # characters: past this libyaml's syntax error stands (the pure parser takes ~5 s a MB)


def parse_yaml11(text: str, filename: str, problems: Problems) -> Any:
    """Parse one YAML 1.1 document with positions; problems are added, the result is ``None`` then.

    libyaml reads first (fast); a syntax error it finds is checked with the pure-Python parser
    Cloudify uses, and what that one reads is what the blueprint means."""
    found = Problems()
    data = parse_marked(text, filename, found, loader_class=_Loader11)
    if found and len(text) <= PURE_RETRY_LIMIT and all(p.message.startswith("YAML syntax error: ")
                                                       for p in found.items):
        again = Problems()
        pure = parse_marked(text, filename, again, loader_class=_PyLoader11)
        if not again:
            return pure
    problems.items.extend(found.items)
    return data


def read_yaml11(path: Path, display: str, problems: Problems) -> Any:
    """Read and parse a file; an unreadable or non-UTF-8 file is a problem where it goes wrong."""
    text = read_text(path, display, problems)
    return None if text is None else parse_yaml11(text, display, problems)
