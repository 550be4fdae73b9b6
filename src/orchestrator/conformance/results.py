"""Running checks without pytest, and what a run reports."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from orchestrator.engine.options import Options

from .checks import CHECK_IDS, CHECKS, Check
from .session import FAST, Failed, Session, Skipped
from .subject import Fixtures, Subject

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"


@attrs.define
class CheckResult:
    subject: str
    check: str
    title: str
    status: str  # PASS | FAIL | SKIP
    detail: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.status != FAIL

    def line(self, width: int = 0) -> str:
        return f"{self.status} {self.subject:<{width}}  {self.title:<19}  {self.detail}  [{self.seconds:.2f}s]"


def format_report(results: Sequence[CheckResult]) -> str:
    """One line per check and subject, then totals."""
    if not results:
        return "no conformance checks ran"
    width = max(len(r.subject) for r in results)
    lines = [r.line(width) for r in results]
    counts = {s: sum(1 for r in results if r.status == s) for s in (PASS, FAIL, SKIP)}
    total = sum(r.seconds for r in results)
    lines.append(f"{counts[PASS]} passed, {counts[FAIL]} failed, {counts[SKIP]} skipped in {total:.1f}s")
    return "\n".join(lines)


def select(checks: Iterable[str] | None) -> list[Check]:
    if checks is None:
        return list(CHECKS)
    by_id = {c.id: c for c in CHECKS}
    unknown = [c for c in checks if c not in by_id]
    if unknown:
        raise ValueError(f"unknown conformance checks: {', '.join(unknown)} (known: {', '.join(CHECK_IDS)})")
    return [by_id[c] for c in checks]


def run_check(check: str | Check, subject: Subject, *, plugins: Sequence[object] = (), entry_points: bool = False,
              tmp_path: Path, fixtures: Fixtures | Mapping[str, Any] | None = None,
              options: Options | None = None) -> CheckResult:
    """Run one check on one subject; never raises for a failing plugin."""
    check = check if isinstance(check, Check) else select([check])[0]
    if not isinstance(fixtures, Fixtures):
        fixtures = Fixtures(fixtures)
    started = time.perf_counter()
    tmp_path.mkdir(parents=True, exist_ok=True)
    session: Session | None = None
    status, detail = PASS, ""
    try:
        if check.id in subject.skip:
            raise Skipped(subject.skip[check.id])
        if subject.checks is not None and check.id not in set(subject.checks):
            raise Skipped("not among the subject's checks")
        session = Session(check.id, check.short, subject, plugins, entry_points, tmp_path, fixtures, options or FAST)
        detail = check.run(session)
    except Skipped as exc:
        status, detail = SKIP, str(exc)
    except Failed as exc:
        status, detail = FAIL, str(exc)
    except Exception as exc:  # a lister, deleter or factory that broke: say where
        status, detail = FAIL, f"{type(exc).__name__}: {exc}"
    finally:
        try:
            if session is not None:
                session.close()
        except Failed as exc:
            if status != FAIL:
                status, detail = FAIL, str(exc)
    return CheckResult(subject.label, check.id, check.title, status, detail, time.perf_counter() - started)


def run_checks(*subjects: Subject, plugins: Sequence[object] = (), entry_points: bool = False,
               tmp_path: Path | str | None = None, fixtures: Mapping[str, Any] | None = None,
               options: Options | None = None, checks: Iterable[str] | None = None) -> list[CheckResult]:
    """Every selected check on every subject, without pytest; ``print(format_report(...))``."""
    base = Path(tmp_path) if tmp_path is not None else Path(tempfile.mkdtemp(prefix="conformance-"))
    results = []
    for subject in subjects:
        for n, check in enumerate(select(checks)):
            where = base / f"{_slug(subject.label)}-{n}-{check.id}"
            results.append(run_check(check, subject, plugins=plugins, entry_points=entry_points,
                                     tmp_path=where, fixtures=fixtures, options=options))
    return results


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text)
