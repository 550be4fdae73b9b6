"""Generate benchmark blueprints: flat, chain and fan-out shapes of N nodes.

    python bench/generate.py flat 10000 > /tmp/flat10k.yaml
    python bench/generate.py chain 1000 --dialect cloudify   # node templates only, see below

Every node has two properties (one from an input, one concat) so parsing, validation
and function resolution are all exercised, not just YAML reading.

Both systems are benchmarked on the same node templates: ``node_templates()`` writes
them for either dialect (only the relationship type's name differs), ``generate()``
adds our type definitions, and ``bench/cloudify/run_cloudify.py`` adds Cloudify's
(DSL 1.3, which has constraints on inputs but not on node-type properties, so there
the ``valid_values`` check sits on the input). Standard library only: the Cloudify
harness imports this module from its own virtualenv.
"""

from __future__ import annotations

import argparse
import sys

SHAPES = ("flat", "chain", "fanout")

RELATIONSHIP = {"orchestrator": "orchestrator.relationships.depends_on",
                "cloudify": "cloudify.relationships.depends_on"}

TYPES = """\
inputs:
  size: {type: string, default: small}
node_types:
  bench.Node:
    derived_from: {base}
    properties:
      size: {type: string, constraints: [{valid_values: [small, large]}]}
      label: {type: string, required: false}
      port: {type: integer, default: 80}
node_templates:
"""


def node_templates(shape: str, n: int, node_type: str = "bench.Node", dialect: str = "orchestrator") -> str:
    """The ``node_templates:`` entries (without the key): ``n0`` .. ``n{n-1}``.

    flat: independent nodes; chain: ``n{i}`` depends on ``n{i-1}``; fanout: every node
    depends on ``n0``.
    """
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {', '.join(SHAPES)}")
    rel_type = RELATIONSHIP[dialect]
    lines = []
    for i in range(n):
        lines.append(f"  n{i}:\n    type: {node_type}\n    properties:\n"
                     f"      size: {{get_input: size}}\n      label: {{concat: [node-, '{i}']}}\n")
        if shape == "chain" and i:
            target = f"n{i - 1}"
        elif shape == "fanout" and i:
            target = "n0"
        else:
            continue
        lines.append(f"    relationships:\n      - {{type: {rel_type}, target: {target}}}\n")
    return "".join(lines)


def generate(shape: str, n: int, base: str = "orchestrator.nodes.Root") -> str:
    """An orchestrator blueprint of ``n`` nodes of type ``bench.Node`` (derived from ``base``)."""
    return TYPES.replace("{base}", base) + node_templates(shape, n)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="Write a generated blueprint to stdout.")
    ap.add_argument("shape", choices=SHAPES)
    ap.add_argument("nodes", type=int)
    ap.add_argument("--dialect", choices=tuple(RELATIONSHIP), default="orchestrator",
                    help="cloudify: only the node templates (the harness adds the types)")
    args = ap.parse_args()
    if args.dialect == "orchestrator":
        sys.stdout.write(generate(args.shape, args.nodes))
    else:
        sys.stdout.write("node_templates:\n" + node_templates(args.shape, args.nodes, "bench.nodes.Noop",
                                                               "cloudify"))
