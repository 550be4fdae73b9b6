"""Benchmark Cloudify's local mode (cloudify-common 7.0.5) on a generated blueprint.

Run with the venv made by setup.sh, one configuration per process:

    bench/.venv-cloudify/bin/python bench/cloudify/run_cloudify.py --shape flat --nodes 100 --json

Modes:
  plan     only parse + validate + plan the blueprint (local.init_env)
  install  plan, then the install and uninstall workflows with no-op operations
  sleep    like install, but every lifecycle operation sleeps --sleep-ms

Every lifecycle operation appends "<node> <operation>" to a log file; the run
fails unless each node ran each operation exactly once (install: create,
configure, start; uninstall: stop, delete) and, for a chain, in dependency order.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path
from typing import Any

# bench/generate.py and bench/measure.py are standard library only: the node templates
# are the very ones our benchmarks use, and the measurements are taken the same way.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from generate import node_templates
from measure import Clock, peak_rss_mb

PLUGIN_MODULE = "cfy_bench_ops"
INSTALL_OPS = ("create", "configure", "start")
UNINSTALL_OPS = ("stop", "delete")

# The plugin task. The local executor runs it in a thread of the workflow's
# task pool, in this process; it reads its settings from the environment.
PLUGIN_SOURCE = """\
import os
import time

_COUNTER = os.environ["CFY_BENCH_COUNTER"]
_SLEEP_S = float(os.environ.get("CFY_BENCH_SLEEP_MS", "0")) / 1000.0


def op(ctx, **kwargs):
    if _SLEEP_S:
        time.sleep(_SLEEP_S)
    # One O_APPEND write per call: atomic for short lines, so threads don't mix.
    fd = os.open(_COUNTER, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, ("%s %s\\n" % (ctx.node.id, ctx.operation.name.rsplit('.', 1)[-1])).encode())
    finally:
        os.close(fd)
"""

# Minimal stand-in for Cloudify's types.yaml (not downloadable here): the root
# node type with the lifecycle interface and the three base relationships.
TYPES_YAML = f"""\
tosca_definitions_version: cloudify_dsl_1_3

# The same input and properties as our generated blueprint (bench/generate.py). DSL 1.3
# has constraints on inputs but not on node-type properties, so valid_values sits here.
inputs:
  size:
    type: string
    default: small
    constraints:
      - valid_values: [small, large]

plugins:
  default_workflows:
    executor: central_deployment_agent
    install: false
  bench:
    executor: central_deployment_agent
    install: false

workflows:
  install: default_workflows.cloudify.plugins.workflows.install
  uninstall: default_workflows.cloudify.plugins.workflows.uninstall

node_types:
  cloudify.nodes.Root:
    interfaces:
      cloudify.interfaces.lifecycle:
        create: {{}}
        configure: {{}}
        start: {{}}
        stop: {{}}
        delete: {{}}

  bench.nodes.Noop:
    derived_from: cloudify.nodes.Root
    properties:
      size: {{type: string}}
      label: {{type: string, required: false}}
      port: {{type: integer, default: 80}}
    interfaces:
      cloudify.interfaces.lifecycle:
{chr(10).join(f"        {name}: bench.{PLUGIN_MODULE}.op" for name in INSTALL_OPS + UNINSTALL_OPS)}

relationships:
  cloudify.relationships.depends_on:
    properties:
      connection_type:  # required by the planner for depends_on/connected_to
        default: all_to_all
    source_interfaces:
      cloudify.interfaces.relationship_lifecycle:
        preconfigure: {{}}
        postconfigure: {{}}
        establish: {{}}
        unlink: {{}}
    target_interfaces:
      cloudify.interfaces.relationship_lifecycle:
        preconfigure: {{}}
        postconfigure: {{}}
        establish: {{}}
        unlink: {{}}
  cloudify.relationships.contained_in:
    derived_from: cloudify.relationships.depends_on
  cloudify.relationships.connected_to:
    derived_from: cloudify.relationships.depends_on
"""


def blueprint_yaml(shape: str, nodes: int) -> str:
    """The types above plus the shared generated node templates (flat or chain)."""
    return TYPES_YAML + "\nnode_templates:\n" + node_templates(
        shape, nodes, "bench.nodes.Noop", dialect="cloudify")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--shape", choices=("flat", "chain"), default="flat")
    p.add_argument("--nodes", type=int, default=100)
    p.add_argument("--mode", choices=("plan", "install", "sleep"), default="install")
    p.add_argument("--concurrency", type=int, default=8, help="task_thread_pool_size")
    p.add_argument("--sleep-ms", type=float, default=50.0, help="operation sleep in sleep mode")
    p.add_argument("--json", action="store_true", help="print only the JSON result")
    p.add_argument(
        "--show-events", action="store_true", help="let Cloudify print its events to stderr"
    )
    return p.parse_args(argv)


def read_ops(path: Path) -> list[tuple[str, str]]:
    """(node, operation) pairs in the order the operations finished."""
    if not path.exists():
        return []
    pairs = (line.split(" ", 1) for line in path.read_text().splitlines())
    return [(node, op) for node, op in pairs]


def verify_ops(
    ops: list[tuple[str, str]], ops_names: tuple[str, ...], shape: str, nodes: int
) -> None:
    """Each node ran each operation exactly once, and a chain ran in dependency order."""
    expected = {(f"n{i}", op) for i in range(nodes) for op in ops_names}
    if len(ops) != len(expected) or set(ops) != expected:
        raise RuntimeError(
            f"ran {len(ops)} operations ({len(set(ops))} distinct), expected {len(expected)}"
        )
    if shape != "chain":
        return
    pos = {key: i for i, key in enumerate(ops)}
    for i in range(1, nodes):
        prev, cur = f"n{i - 1}", f"n{i}"
        if "create" in ops_names and pos[(cur, "create")] < pos[(prev, "start")]:
            raise RuntimeError(f"{cur} was created before {prev} had started")
        if "stop" in ops_names and pos[(prev, "stop")] < pos[(cur, "delete")]:
            raise RuntimeError(f"{prev} was stopped before {cur} was deleted")


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    blueprint = workdir / "blueprint.yaml"
    blueprint.write_text(blueprint_yaml(args.shape, args.nodes))
    (workdir / f"{PLUGIN_MODULE}.py").write_text(PLUGIN_SOURCE)
    counter = workdir / "ops.log"
    os.environ["CFY_BENCH_COUNTER"] = str(counter)
    os.environ["CFY_BENCH_SLEEP_MS"] = str(args.sleep_ms if args.mode == "sleep" else 0)
    sys.path.insert(0, str(workdir))  # the plugin module lives beside the blueprint

    from cloudify.workflows import local  # imported late: counted in neither timing

    result: dict[str, Any] = {"plan_s": None, "install_s": None, "uninstall_s": None, "ops": 0,
                              "cpu_plan_s": None, "cpu_install_s": None, "cpu_uninstall_s": None,
                              "rss_after_import_mb": peak_rss_mb()}
    with contextlib.ExitStack() as stack:
        # Cloudify writes one line per task event to sys.stdout: send it to
        # /dev/null (still formatted and written, as `cfy local` would) and keep
        # stdout for the result.
        events = sys.stderr if args.show_events else stack.enter_context(open(os.devnull, "w"))
        stack.enter_context(contextlib.redirect_stdout(events))

        # Clock: wall time and CPU time of all threads of this process.
        with Clock() as plan:
            # Default storage is InMemoryStorage: nothing shared between runs.
            env = local.init_env(str(blueprint), name=f"bench-{os.getpid()}", ignored_modules=[])
        result["plan_s"], result["cpu_plan_s"] = plan.wall, plan.cpu
        planned = len(env.storage.get_node_instances())
        if planned != args.nodes:
            raise RuntimeError(f"planned {planned} node instances, expected {args.nodes}")
        cpu_total = plan.cpu

        if args.mode != "plan":
            kw = {"task_retries": 0, "task_thread_pool_size": args.concurrency}
            with Clock() as install:
                env.execute("install", **kw)
            result["install_s"], result["cpu_install_s"] = install.wall, install.cpu
            verify_ops(read_ops(counter), INSTALL_OPS, args.shape, args.nodes)

            with Clock() as uninstall:
                env.execute("uninstall", **kw)
            result["uninstall_s"], result["cpu_uninstall_s"] = uninstall.wall, uninstall.cpu
            ops = read_ops(counter)
            verify_ops(ops, INSTALL_OPS + UNINSTALL_OPS, args.shape, args.nodes)
            result["ops"] = len(ops)
            states = {i.state for i in env.storage.get_node_instances()}
            if states != {"deleted"}:
                raise RuntimeError(f"node instance states after uninstall: {states}")
            cpu_total += install.cpu + uninstall.cpu
        result["cpu_s"] = cpu_total  # plan + install + uninstall (the checks excluded)
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Under `timeout`, exit through the with-block so the temp dir is removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(124))
    with tempfile.TemporaryDirectory(prefix="cfy-bench-") as tmp:
        result = run(args, Path(tmp))

    ops = result["ops"]
    busy_s = (result["install_s"] or 0.0) + (result["uninstall_s"] or 0.0)
    out: dict[str, Any] = {
        "system": "cloudify",
        "shape": args.shape,
        "nodes": args.nodes,
        "mode": args.mode,
        "concurrency": args.concurrency,
        "sleep_ms": args.sleep_ms if args.mode == "sleep" else 0,
        **result,
        "per_op_us": busy_s / ops * 1e6 if ops else None,
        "cpu_per_op_us": (result["cpu_install_s"] + result["cpu_uninstall_s"]) / ops * 1e6 if ops else None,
        "peak_rss_mb": peak_rss_mb(),
        "python": platform.python_version(),
        "cloudify_version": version("cloudify-common"),
    }
    if args.json:
        print(json.dumps(out))
    else:
        for key, value in out.items():
            print(f"{key:>16}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
