"""Settled marks (fast pass + ``locate``) are exactly the marks of a pass over files read with positions.

``load_blueprint`` reports the problems of the fast pass with marks looked up afterwards
in parts of the files; the slow pass (every file read with positions, then validated
again) is the reference they must equal, problem for problem.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_dsl_corpus import CASES, CORPUS, read_case

from orchestrator.dsl import loader, locate
from orchestrator.dsl.inputs import parse_input_args
from orchestrator.dsl.problems import BlueprintError, Problems
from orchestrator.plugins import get_plugin_manager


def both_passes(path: Path, args: list[str] = ()) -> tuple[list[str] | None, list[str]]:
    """Problem lines: the fast pass settled (``None`` when it cannot be), and the slow pass."""
    given = parse_input_args(args, Problems())
    sources = get_plugin_manager(entry_points=False).type_sources
    with loader.gc_paused():
        fast = loader._load(path, given, sources, fast=True)
        slow = loader._load(path, given, sources, fast=False)
    if isinstance(fast, loader.Blueprint):  # the case's problems are in its -i arguments only
        assert isinstance(slow, loader.Blueprint)
        return [], []
    assert not isinstance(slow, loader.Blueprint)
    expected = [str(p) for p in BlueprintError(slow.problems.items).problems]
    if fast.problems.inexact:
        return None, expected
    settled = locate.settle(fast.problems.items, fast.documents)
    return (None if settled is None else [str(p) for p in BlueprintError(settled).problems]), expected


@pytest.mark.parametrize("narrow", [False, True], ids=["whole-file", "narrowed"])
@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_corpus_marks_settle_as_the_slow_pass_reports_them(path: Path, narrow: bool,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(CORPUS)
    if narrow:  # every file is looked up entry by entry, however small
        monkeypatch.setattr(locate, "WHOLE_FILE_BELOW", 0)
    settled, expected = both_passes(Path(path.name), read_case(path).args)
    if settled is not None:
        assert settled == expected


ODD_ENTRIES = """\
  "quoted.name":
    type: my.Server
    properties: {port: "80", sise: 1}
  'single': {type: my.Server, properties: {port: x}}
  # a comment at the entry's indentation
  with_list:
    type: my.Server
    relationships:
    - {type: orchestrator.relationships.depends_on, target: nowhere}
    properties:
      port: 1
      tags: &tags [a, {b: 1}, {get_inputs: x}]
  aliased:
    type: my.Server
    properties:
      port: 2
      tags: *tags
      endpoint: {host: 1, port: {number: x}}
  plain:
    type: my.Servr
"""


def big_blueprint(n: int, newline: str = "\n") -> str:
    head = """\
inputs:
  size: {type: string, default: small, constraints: [{valid_values: [small, large]}]}
data_types:
  my.Port:
    properties:
      number: {type: integer}
  my.Endpoint:
    properties:
      host: {type: string}
      port: {type: my.Port}
node_types:
  my.Server:
    derived_from: orchestrator.nodes.Root
    properties:
      port: {type: integer, default: 80}
      tags: {type: list, required: false}
      endpoint: {type: my.Endpoint, required: false}
      size: {required: false}
node_templates:
"""
    nodes = "".join(f"  n{i}:\n    type: my.Server\n    properties:\n      size: {{get_input: size}}\n"
                    for i in range(n))
    bad = ("  bad7:\n    type: my.Server\n    properties:\n      port: [1]\n"
           "      endpoint:\n        host: a\n        port: {number: '1', extra: 2}\n")
    tail = "outputs:\n  o: {value: {get_property: [n3, nothing]}}\n  p: {value: {get_attribute: [nobody, x]}}\n"
    return (head + nodes + bad + ODD_ENTRIES + tail).replace("\n", newline)


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["LF", "CRLF"])
def test_a_large_file_settles_entry_by_entry(tmp_path: Path, newline: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "big.yaml"
    path.write_bytes(big_blueprint(3_000, newline).encode())
    assert path.stat().st_size > locate.WHOLE_FILE_BELOW
    reads: list[int] = []
    real = locate.parse_yaml

    def counting(text: str, *args: object, **kwargs: object) -> object:
        reads.append(len(text))
        return real(text, *args, **kwargs)

    monkeypatch.setattr(locate, "parse_yaml", counting)
    settled, expected = both_passes(Path("big.yaml"))
    assert settled == expected
    assert len(expected) >= 10
    # Only entries were read again, never the whole file; the one large read is the
    # node_templates entry, for the alias whose anchor is in another template.
    assert path.stat().st_size not in reads
    assert len([n for n in reads if n > 2_000]) == 1


def test_entry_spans_follow_block_mappings_only() -> None:
    text = "a:\n  b:\n  - x\n  c:\n    d: 1\n    # note\ne: {b: 1}\n"
    assert [text[s:e] for s, e, _ in locate.entry_spans(text, ("a", "c", "d"))] == [
        "a:\n  b:\n  - x\n  c:\n    d: 1\n    # note\n", "  c:\n    d: 1\n    # note\n", "    d: 1\n    # note\n"]
    assert [text[s:e] for s, e, _ in locate.entry_spans(text, ("a", "b"))][1] == "  b:\n  - x\n"  # a list at the key's indentation
    assert [n for *_, n in locate.entry_spans(text, ("e", "b"))] == [1]  # a flow mapping is not scanned
    assert locate.entry_spans("a: 1\na: 2\n", ("a",)) == []  # found twice: not used
