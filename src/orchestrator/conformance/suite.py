"""The suite as pytest test classes: one test per check, parametrized by subject, and a report."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from orchestrator.engine.options import Options

from .checks import Check
from .results import FAIL, SKIP, run_check, select
from .subject import Fixtures, Subject


def conformance_tests(*subjects: Subject, plugins: Sequence[object] = (), entry_points: bool = False,
                      fixtures: Sequence[str] = (), options: Options | None = None,
                      checks: Iterable[str] | None = None, name: str = "TestConformance") -> type:
    """A pytest test class: one test per check, parametrized by subject.

    Assign it to a ``Test*`` name in a test module::

        TestAwsConformance = conformance_tests(Subject(...), Subject(...), plugins=PLUGINS,
                                               fixtures=["aws_env"])

    ``fixtures`` are set up before every check (the subject's own are added); any other
    fixture is reachable from a subject's callables as ``env.fixtures.NAME``.
    """
    import pytest

    if not subjects:
        raise ValueError("conformance_tests needs at least one Subject")
    labels = [s.label for s in subjects]
    duplicates = sorted({n for n in labels if labels.count(n) > 1})
    if duplicates:
        raise ValueError(f"subjects need distinct names (name=...): {', '.join(duplicates)}")
    namespace: dict[str, Any] = {
        "__doc__": f"Plugin conformance of {', '.join(labels)} (orchestrator.conformance).",
    }
    for check in select(checks):
        test = _make_test(check, plugins, entry_points, fixtures, options, pytest)
        namespace[test.__name__] = pytest.mark.parametrize("subject", subjects, ids=labels)(test)
    return type(name, (), namespace)


def _make_test(check: Check, plugins: Sequence[object], entry_points: bool, fixtures: Sequence[str],
               options: Options | None, pytest: Any) -> Callable[..., None]:
    def test(self: Any, subject: Subject, request: Any) -> None:
        if check.id not in subject.skip and (subject.checks is None or check.id in set(subject.checks)):
            for fixture in (*fixtures, *subject.fixtures):
                request.getfixturevalue(fixture)
        result = run_check(check, subject, plugins=plugins, entry_points=entry_points,
                           tmp_path=request.getfixturevalue("tmp_path"),
                           fixtures=Fixtures(getter=request.getfixturevalue), options=options)
        # (report imports pytest; importing orchestrator.conformance does not)
        from .report import reporter

        reporter(request.config).results.append(result)
        if result.status == SKIP:
            pytest.skip(f"{subject.label}: {result.detail}")
        if result.status == FAIL:
            pytest.fail(f"{subject.label} {check.title}: {result.detail}", pytrace=False)

    test.__name__ = f"test_{check.id}"
    test.__qualname__ = test.__name__
    test.__doc__ = f"Conformance check '{check.title}'."
    return test
