"""The fast (yaml_rs) and slow (PyYAML with marks) parse paths read every document alike.

A blueprint is read by the fast path first and only re-read by the slow path when it has
a problem, so a value must never depend on which path read it.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.dsl.problems import Problems
from orchestrator.dsl.yaml_source import YDict, YList, parse_yaml, parse_yaml_fast


def canonical(value: Any) -> Any:
    """A comparable form that tells 1, 1.0 and True apart, equates nan with nan, drops marks."""
    if isinstance(value, dict):
        assert type(value) in (dict, YDict)
        return ("dict", [(canonical(k), canonical(v)) for k, v in value.items()])
    if isinstance(value, list):
        assert type(value) in (list, YList)
        return ("list", [canonical(v) for v in value])
    if isinstance(value, float) and math.isnan(value):
        return ("float", "nan")
    return (type(value).__name__, value)


def both_paths(text: str) -> tuple[Any, Any]:
    ok, fast = parse_yaml_fast(text)
    assert ok, text
    problems = Problems()
    slow = parse_yaml(text, "doc.yaml", problems)
    assert not problems, problems.items
    return canonical(fast), canonical(slow)


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats()
    | st.text()
    # plain scalars that YAML 1.1 and 1.2 read differently, and YAML indicators
    | st.sampled_from(["yes", "no", "on", "off", "y", "n", "~", "0x1F", "0o17", "017", "1_000", "+1",
                      "1e3", ".5", "-.inf", ".NaN", "2001-12-14", "12:30:45", "=", "<<", "null",
                      "True", "FALSE", "1.0e+3", "0b101", "- a", "a: b", "#x", "&a", "*a", "!t"])
)
keys = st.text(max_size=12) | st.integers() | st.booleans() | st.none()
documents = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=20,
)

# YAML 1.1 (PyYAML's scanner) counts NEL, LS and PS as line breaks and folds them inside
# scalars; YAML 1.2 (yaml_rs) does not. Written raw (safe_dump with allow_unicode) the two
# paths read them differently; escaped (\N, \L, \P) they agree. Real blueprints hardly
# ever hold raw NEL/LS/PS, so such documents are dumped escaped here; the known
# disagreement is pinned by test_raw_yaml_1_1_line_breaks_are_read_differently.
YAML_1_1_BREAKS = ("\x85", "\u2028", "\u2029")


def has_yaml_1_1_break(value: Any) -> bool:
    if isinstance(value, str):
        return any(c in value for c in YAML_1_1_BREAKS)
    if isinstance(value, dict):
        return any(has_yaml_1_1_break(k) or has_yaml_1_1_break(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_yaml_1_1_break(v) for v in value)
    return False


@settings(max_examples=150, deadline=None)
@given(documents, st.sampled_from([False, True, None]), st.booleans(), st.sampled_from([None, 20]))
def test_fast_and_slow_paths_agree(data: Any, flow: bool | None, unicode: bool, width: int | None) -> None:
    unicode = unicode and not has_yaml_1_1_break(data)
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=unicode, default_flow_style=flow, width=width)
    fast, slow = both_paths(text)
    assert fast == slow, text


@pytest.mark.xfail(strict=True, reason="PyYAML folds a raw NEL as a YAML 1.1 line break; yaml_rs keeps it")
def test_raw_yaml_1_1_line_breaks_are_read_differently() -> None:
    fast, slow = both_paths("key: 'a\x85  b'\n")
    assert fast == slow


def test_hand_written_plain_scalars_agree() -> None:
    text = """
plain: [yes, no, on, off, y, n, ~, null, Null, NULL, true, True, TRUE, false,
        0x1F, 0o17, 017, 1_000, +1, -0, 1e3, 1.5e-3, .5, .inf, -.Inf, .nan, 2001-12-14,
        12:30:45, =, 0b101, 1:20, "quoted", 'single']
on: key
yes: key
1: int key
~: null key
block: |
  literal
folded: >
  folded
  text
"""
    fast, slow = both_paths(text)
    assert fast == slow
    assert parse_yaml_fast(text)[1]["on"] == "key"
