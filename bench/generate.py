"""Generate benchmark blueprints: flat, chain and fan-out shapes of N nodes.

    python bench/generate.py flat 10000 > /tmp/flat10k.yaml

Every node has two properties (one from an input, one concat) so parsing, validation
and function resolution are all exercised, not just YAML reading.
"""

from __future__ import annotations

import sys

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


def generate(shape: str, n: int, base: str = "orchestrator.nodes.Root") -> str:
    """A blueprint of ``n`` nodes of type ``bench.Node`` (derived from ``base``)."""
    node_type = "bench.Node"
    lines = [TYPES.replace("{base}", base)]
    for i in range(n):
        lines.append(f"  n{i}:\n    type: {node_type}\n    properties:\n"
                     f"      size: {{get_input: size}}\n      label: {{concat: [node-, '{i}']}}\n")
        if shape == "chain" and i:
            target = f"n{i - 1}"
        elif shape == "fanout" and i:
            target = "n0"
        else:
            continue
        lines.append(f"    relationships:\n      - {{type: orchestrator.relationships.depends_on, target: {target}}}\n")
    return "".join(lines)


if __name__ == "__main__":
    shape, n = sys.argv[1], int(sys.argv[2])
    if shape not in ("flat", "chain", "fanout"):
        raise SystemExit("shape must be flat, chain or fanout")
    sys.stdout.write(generate(shape, n))
