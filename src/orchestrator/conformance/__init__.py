"""Plugin conformance: prove a node type's operations are idempotent, resumable and clean.

The disasters users meet most are an operation that runs twice (after a crash or a
retry) and leaks a second VM, container or process, a stop that does not stop, and an
uninstall that leaves something behind. This suite runs one node type through the
**real engine and the plugin's real hooks** (installs and uninstalls with a temporary
state file, a fresh deployment id per run) and counts what exists in the target system
after each step. It checks every operation the type's plugin implements: ``create``,
``configure``, ``start``, ``stop``, ``delete``, and the relationship hooks of the
subject's relationships.

==================== ==================================================================
check                passes when
==================== ==================================================================
create twice         create run again with the runtime properties the first one saved
                     finds its resource: still exactly one, same id, nothing forgotten
operations twice     each other operation (configure, start, stop, relationship hooks)
                     run again after it succeeded: no duplicate, nothing forgotten
crash in create      the process "dies" inside create (at each ``ctx.instance.update()``
                     before it is written, and after create returned but before the
                     engine recorded success); a fresh orchestrator resumes ``install``:
                     exactly one resource (and one running, with a probe)
crash in operations  the same for every other operation: a crash at each of its points,
                     then the interrupted workflow resumes (install for configure, start
                     and relationship hooks; uninstall for stop, unlink and delete):
                     no duplicate, and nothing left once uninstalled
crash, uninstall     a crash at each point of each install operation, then the user
                     uninstalls instead: delete finds what was made with only what was
                     saved (delete after a partial create); nothing is left
stop stops           after install the ``running`` probe shows the resource; once stop
                     returned it shows nothing (needs ``running``)
retry before create  a transient error before the hook ran: retried, one resource
retry after create   a transient error after the hook's side effect: one resource
adopt external       ``use_external_resource``: install adopts, uninstall leaves it
                     (needs ``adopt``)
full cycle           install lists one resource; uninstall leaves nothing; a second
                     uninstall is harmless
deleted behind back  the resource vanishes out of band; uninstall still succeeds
bad properties       a failing create raises ``NonRecoverableError`` with a message, the
                     workflow fails with a summary, and nothing is left after uninstall
                     (needs ``invalid_properties``)
==================== ==================================================================

A plugin's test module turns it on with a few lines::

    from orchestrator.conformance import Subject, conformance_tests
    from my_plugin import plugin, testing

    TestConformance = conformance_tests(
        Subject("my.Widget", properties={"size": 1},
                list_resources=lambda env: testing.widgets(env.deployment),
                invalid_properties={"size": -1}),
        plugins=[plugin],
    )

Each check of each subject is its own test item (``test_crash_in_create[my.Widget]``),
failures say what leaked, and a report (``PASS my.Widget  create twice  1 resource``) is
printed at the end of the session. ``run_checks`` does the same without pytest.

Crashes are simulated in-process by ``orchestrator.faults``: a type-less hook wrapper
raises ``SimulatedCrash`` (a ``BaseException``, so nothing catches it as an error) at the
chosen point, and the state takes no write from then on: exactly what a killed process
leaves. The ``orch`` fixture offers the same in a plugin's own tests
(``orch.install(bp, crash=orch.crash("start", node="web", at_save=1))``).
"""

from __future__ import annotations

from orchestrator.faults import SimulatedCrash

from .checks import CHECK_IDS, CHECKS, Check
from .results import FAIL, PASS, SKIP, CheckResult, format_report, run_check, run_checks
from .session import FAST, MAX_SAVE_POINTS, Failed, Operation, Skipped
from .subject import Env, Fixtures, Subject
from .suite import conformance_tests

__all__ = [
    "CHECKS",
    "CHECK_IDS",
    "FAIL",
    "FAST",
    "MAX_SAVE_POINTS",
    "PASS",
    "SKIP",
    "Check",
    "CheckResult",
    "Env",
    "Failed",
    "Fixtures",
    "Operation",
    "SimulatedCrash",
    "Skipped",
    "Subject",
    "conformance_tests",
    "format_report",
    "run_check",
    "run_checks",
]
