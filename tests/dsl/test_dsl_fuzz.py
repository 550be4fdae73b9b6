"""Fuzzing ``validate`` with mutations of real blueprints: problems, never a crash or a hang.

Seeded and deterministic. The in-process batch (``MUTATIONS`` blueprints through the
same ``Orchestrator.load`` the CLI uses) runs in a child process with a cap on its
address space and a per-blueprint alarm; anything but ``BlueprintError`` is a failure
whose blueprint is saved under the test's tmp directory for reproduction. A sample
then goes through the real command (without the installed plugins, which only slow
its start), checking exit codes and the shape of stderr.

Reproduce one saved case: ``python -m orchestrator validate <saved file>``.
"""

from __future__ import annotations

import json
import os
import random
import re
import resource
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SEED = 14
MUTATIONS = 1_000
CLI_SAMPLE = 50
SECONDS = 5.0  # per blueprint
MEMORY_MB = 1024  # peak RSS of the whole batch
ADDRESS_SPACE = 4 << 30  # a runaway allocation fails the batch instead of taking the machine
LINE = re.compile(r"^.+:\d+:\d+: ")


def seed_blueprints() -> list[Path]:
    paths = [ROOT / "examples/aws-docker/blueprint.yaml", *sorted((ROOT / "examples/hello-plugin").rglob("*.yaml"))]
    paths += sorted(ROOT.glob("tests/**/blueprints/*.yaml")) + sorted((ROOT / "tests/dsl/corpus").glob("*.yaml"))
    return [p for p in paths if p.is_file() and ".venv" not in p.parts]


# ---------------------------------------------------------------- mutations

Mutator = Callable[[random.Random, str], str]
FUNCTION_NAMES = ["get_input", "get_property", "get_attribute", "get_secret", "concat", "get_secrett",
                  "get_capability", "merge", "join", "token", "get_", "concatt", "string_upper", "name"]
ODD_VALUES = ["", "~", "[]", "{}", "[[]]", "-1", "1.5", "true", "'x'", "&a 1", "*a", "!!binary aGk=", "!tag x",
              "0x" + "f" * 90, "9" * 5000, "-" + "9" * 120, "1e999999", ".nan", "'\\x00'", '"\\u2028"', '"\\0"',
              "{get_input: [a, 0, b]}", "{get_property: [SELF]}", "{get_attribute: [TARGET, x]}", "{concat: 1}",
              "http://example.com/x.yaml", "[" * 300 + "]" * 300, "{a: " * 200 + "1" + "}" * 200]


def _lines(text: str) -> list[str]:
    return text.split("\n")


def byte_flip(rng: random.Random, text: str) -> str:
    if not text:
        return text
    chars = list(text)
    for _ in range(rng.randint(1, 4)):
        chars[rng.randrange(len(chars))] = rng.choice(":-[]{}#&*!|>'\"% \t\n,?@`\\" + "ab1" + "\x00\x07\x85\u2028")
    return "".join(chars)


def line_dup(rng: random.Random, text: str) -> str:
    lines = _lines(text)
    i = rng.randrange(len(lines))
    return "\n".join(lines[:i] + [lines[i]] * rng.randint(2, 4) + lines[i + 1:])


def line_del(rng: random.Random, text: str) -> str:
    lines = _lines(text)
    del lines[rng.randrange(len(lines))]
    return "\n".join(lines)


def line_swap(rng: random.Random, text: str) -> str:
    lines = _lines(text)
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    lines[i], lines[j] = lines[j], lines[i]
    return "\n".join(lines)


def indent(rng: random.Random, text: str) -> str:
    lines = _lines(text)
    i = rng.randrange(len(lines))
    lines[i] = (" " * rng.randint(1, 3) + lines[i]) if rng.random() < 0.5 else lines[i][rng.randint(1, 4):]
    return "\n".join(lines)


def control_char(rng: random.Random, text: str) -> str:
    i = rng.randrange(len(text) + 1)
    return text[:i] + rng.choice(["\x00", "\x01", "\x08", "\x1b", "\x7f", "\x80", "\x9f", "\ufffe", "\r", "\t"]) + text[i:]


def _replace_value(rng: random.Random, text: str, value: str) -> str:
    lines = _lines(text)
    candidates = [i for i, line in enumerate(lines) if re.match(r"^\s*[-\w.]+:\s*\S", line)]
    if not candidates:
        return text + f"\nx: {value}\n"
    i = rng.choice(candidates)
    key = lines[i].split(":", 1)[0]
    lines[i] = f"{key}: {value}"
    return "\n".join(lines)


def odd_value(rng: random.Random, text: str) -> str:
    return _replace_value(rng, text, rng.choice(ODD_VALUES))


def huge_number(rng: random.Random, text: str) -> str:
    return _replace_value(rng, text, rng.choice(["9" * 5000, "-" + "9" * 4400, "0x" + "f" * 5000, "1" * 101]))


def deep_nesting(rng: random.Random, text: str) -> str:
    depth = rng.choice([99, 101, 500, 2000, 20_000])
    if rng.random() < 0.5:
        return _replace_value(rng, text, "[" * depth + "]" * depth)
    nest = "\n" + "".join(" " * (4 + i) + "-\n" for i in range(min(depth, 3000)))
    return _replace_value(rng, text, "").rstrip("\n") + nest


def alias_bomb(rng: random.Random, text: str) -> str:
    levels = rng.randint(3, 9)
    parts = ["a0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    parts += [f"a{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels)]
    inner = "{" + ", ".join(parts) + "}"
    return _replace_value(rng, text, rng.choice([inner, "&r [1, *r]", f"{inner}\nz: *l{levels - 1}"]))


def function_name(rng: random.Random, text: str) -> str:
    name = rng.choice([*FUNCTION_NAMES, "".join(rng.choice("get_abcxyz") for _ in range(rng.randint(1, 12)))])
    new = re.sub(r"\{(get_\w+|concat):", "{" + name + ":", text, count=rng.randint(1, 3))
    return new if new != text else _replace_value(rng, text, f"{{{name}: [a, b]}}")


def type_swap(rng: random.Random, text: str) -> str:
    return _replace_value(rng, text, rng.choice(["[a, b]", "{a: 1}", "42", "null", "true", "'text'", "-"]))


def long_line(rng: random.Random, text: str) -> str:
    return _replace_value(rng, text, "x" * rng.choice([300, 100_000]))


def instances(rng: random.Random, text: str) -> str:
    return re.sub(r"(\n\s+)type:", r"\1instances: " + str(rng.choice([10**8, 20_000, 9999])) + r"\1type:", text, count=1)


MUTATORS: list[Mutator] = [byte_flip, byte_flip, line_dup, line_del, line_swap, indent, indent, control_char,
                           odd_value, odd_value, huge_number, deep_nesting, alias_bomb, function_name,
                           function_name, type_swap, long_line, instances]


def mutations(n: int, seed: int = SEED) -> list[tuple[str, str, str]]:
    """``(name, source, text)`` for ``n`` mutated blueprints, the same every run."""
    rng = random.Random(seed)
    seeds = [(p, p.read_text(encoding="utf-8")) for p in seed_blueprints()]
    result = []
    for i in range(n):
        path, text = rng.choice(seeds)
        steps = [rng.choice(MUTATORS) for _ in range(rng.choice([1, 1, 1, 2, 3]))]
        for step in steps:
            text = step(rng, text)
        result.append((f"m{i:04d}-{'+'.join(s.__name__ for s in steps)}", str(path.relative_to(ROOT)), text))
    return result


# ---------------------------------------------------------------- the batch (child process)


class Hang(Exception):
    pass


def _alarm(_signum: int, _frame: object) -> None:
    raise Hang(f"still running after {2 * SECONDS:.0f}s")


def run_batch(workdir: Path, n: int) -> dict:
    """Validate ``n`` mutations in this process; the report the test reads."""
    from orchestrator.deployments import Orchestrator
    from orchestrator.dsl import BlueprintError
    from orchestrator.plugins import get_plugin_manager

    orch = Orchestrator(pm=get_plugin_manager())
    signal.signal(signal.SIGALRM, _alarm)
    failures, slowest, outcomes = [], (0.0, ""), {"valid": 0, "problems": 0}
    os.chdir(workdir)
    for name, source, text in mutations(n):
        path = workdir / f"{name}.yaml"
        path.write_text(text, encoding="utf-8")
        start = time.perf_counter()
        signal.alarm(int(2 * SECONDS))
        try:
            orch.load(path)
            outcomes["valid"] += 1
        except BlueprintError as exc:
            outcomes["problems"] += 1
            bad = [str(p) for p in exc.problems if not LINE.match(str(p)) or "\n" in str(p)]
            if bad:
                failures.append({"case": path.name, "source": source, "error": f"bad problem line: {bad[0][:300]}"})
        except BaseException as exc:  # anything else is the bug being looked for
            failures.append({"case": path.name, "source": source,
                             "error": "".join(traceback.format_exception(exc))[-2000:]})
        finally:
            signal.alarm(0)
        elapsed = time.perf_counter() - start
        if elapsed > SECONDS:
            failures.append({"case": path.name, "source": source, "error": f"took {elapsed:.1f}s"})
        slowest = max(slowest, (elapsed, path.name))
        if not any(f["case"] == path.name for f in failures):
            path.unlink()  # keep only what reproduces a failure
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"failures": failures, "slowest": slowest, "outcomes": outcomes, "peak_rss_mb": rss_mb}


def _child_limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


# ---------------------------------------------------------------- the tests


def test_mutations_validate_cleanly(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, __file__, str(tmp_path), str(MUTATIONS)], capture_output=True, text=True,
        timeout=600, preexec_fn=_child_limits,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.splitlines()[-1])
    assert sum(report["outcomes"].values()) == MUTATIONS
    assert report["outcomes"]["problems"] > MUTATIONS // 2  # the mutations do break things
    assert not report["failures"], json.dumps(report["failures"][:5], indent=2)
    assert report["slowest"][0] <= SECONDS, report["slowest"]
    assert report["peak_rss_mb"] < MEMORY_MB, report["peak_rss_mb"]


def test_a_sample_through_the_real_command(tmp_path: Path) -> None:
    cases = mutations(MUTATIONS)[::MUTATIONS // CLI_SAMPLE][:CLI_SAMPLE]
    assert len(cases) == CLI_SAMPLE

    def run(case: tuple[str, str, str]) -> str | None:
        name, source, text = case
        path = tmp_path / f"{name}.yaml"
        path.write_text(text, encoding="utf-8")
        proc = subprocess.run([sys.executable, "-m", "orchestrator", "validate", path.name], cwd=tmp_path,
                              capture_output=True, text=True, timeout=60, preexec_fn=_child_limits,
                              env={**os.environ, "ORCHESTRATOR_PLUGINS": "none"})  # starts 3x faster
        lines = proc.stderr.splitlines()
        if proc.returncode not in (0, 2) or "Traceback" in proc.stderr:
            return f"{path} (from {source}): exit {proc.returncode}\n{proc.stderr[-2000:]}"
        problems = lines
        if proc.returncode == 2:
            if not problems or not re.fullmatch(r"\d+ problems? found", problems[-1]):
                return f"{path}: no summary line: {lines[-3:]}"
            problems = problems[:-1]
        bad = [ln for ln in problems if not LINE.match(ln)]
        return f"{path}: not FILE:LINE:COL: {bad[0][:300]}" if bad else None

    with ThreadPoolExecutor(max_workers=8) as pool:
        errors = [e for e in pool.map(run, cases) if e]
    assert not errors, "\n\n".join(errors[:5])


if __name__ == "__main__":
    report = run_batch(Path(sys.argv[1]), int(sys.argv[2]))
    print(json.dumps(report))
