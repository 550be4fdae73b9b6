"""JSON output every reader takes: NaN and infinities from a plugin become text."""

from __future__ import annotations

import datetime
import json

from orchestrator import jsonable


def _strict(text: str) -> object:
    def refuse(constant: str) -> object:
        raise ValueError(f"{constant} is not JSON")
    return json.loads(text, parse_constant=refuse)


def test_nan_and_infinities_are_text_and_the_rest_as_json_dumps_writes_it() -> None:
    value = {"n": float("nan"), "low": [float("-inf"), 1.5], "when": datetime.date(2020, 1, 2), "ok": {"a": 1}}
    assert _strict(jsonable.dumps(value)) == {"n": "nan", "low": ["-inf", 1.5], "when": "2020-01-02",
                                              "ok": {"a": 1}}
    assert jsonable.dumps({"a": [1, "x"]}, indent=2) == json.dumps({"a": [1, "x"]}, indent=2)
