"""The AWS plugin on a moto server: install and uninstall of n instances at concurrency 10.

    python bench/aws_bench.py [--instances 50] [--concurrency 10] [--repeat 3] [--json]

The workload of the comparison with Cloudify's own AWS plugin: a key pair, a security
group with two rules, n EC2 instances using both (n - 1 in one template, 1 more holding
an elastic IP). moto runs as a server in its own process (boto3 speaks HTTP to it, as to
AWS; never ``mock_aws`` in-process), started once, reset before each run (terminated
instances pile up in moto and slow every later describe) and warmed up with one call of
each kind (moto builds a region's backend, default VPC and AMI catalogue on first use: a
second or two no real endpoint makes anyone wait). Each run is a fresh deployment; install and uninstall are timed apart (``Prepared.run()`` only). The
first run also pays for importing boto3 and building its EC2 client, once per process.
Goal (issue 18): each <= 3 s for 50 instances at concurrency 10.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

GOAL_S = 3.0

BLUEPRINT = """\
dsl_version: orchestrator_1_0
inputs:
  replicas: {type: integer}
node_templates:
  key:
    type: aws.ec2.KeyPair
  web_sg:
    type: aws.ec2.SecurityGroup
    properties:
      rules:
        - {port: 22, cidr_ip: 203.0.113.0/24}
        - {port: 443, cidr_ip: 0.0.0.0/0}
  vm:
    type: aws.ec2.Instance
    instances: {get_input: replicas}
    properties: {image_id: ami-12c6146b, instance_type: t3.micro}
    relationships:
      - {type: aws.relationships.instance_uses_keypair, target: key}
      - {type: aws.relationships.instance_in_security_group, target: web_sg}
  front:
    type: aws.ec2.Instance
    properties: {image_id: ami-12c6146b, instance_type: t3.micro}
    relationships:
      - {type: aws.relationships.instance_uses_keypair, target: key}
      - {type: aws.relationships.instance_in_security_group, target: web_sg}
      - {type: aws.relationships.instance_connected_to_elastic_ip, target: ip}
  ip:
    type: aws.ec2.ElasticIP
"""


def run(instances: int, concurrency: int, repeat: int) -> list[dict[str, Any]]:
    from testenv.moto_server import start_moto

    from orchestrator.deployments import Orchestrator
    from orchestrator.engine.runner import Options
    from orchestrator.plugins import get_plugin_manager

    server = start_moto(in_process=False, die_with_parent=True)
    os.environ.update({"AWS_ENDPOINT_URL": server.endpoint_url, "AWS_ACCESS_KEY_ID": "bench",
                       "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"})
    rows = []
    try:
        tmp = Path(tempfile.mkdtemp(prefix="orch-aws-bench-"))
        path = tmp / "bp.yaml"
        path.write_text(BLUEPRINT)
        pm = get_plugin_manager(env={"ORCHESTRATOR_PLUGINS": "aws,aws_keypair,aws_security_group,"
                                                             "aws_ec2_instance,aws_elastic_ip"})
        errors = [str(e) for e in pm.load_errors if e.fatal]
        if errors:
            raise SystemExit("; ".join(errors))
        options = Options(concurrency=concurrency)
        for n in range(repeat):
            server.reset()  # terminated instances pile up in moto and slow every describe down
            warm_up(server.endpoint_url)
            orch = Orchestrator(pm=pm, state_path=tmp / f"state{n}.db")
            prepared = orch.prepare_install(path, {"replicas": instances - 1}, deployment=f"bench{n}")
            started = time.perf_counter()
            installed = prepared.run(options)
            install_s = time.perf_counter() - started
            prepared = orch.prepare_uninstall(f"bench{n}")
            started = time.perf_counter()
            uninstalled = prepared.run(options)
            uninstall_s = time.perf_counter() - started
            if not (installed.ok and uninstalled.ok):
                raise SystemExit(f"run {n}: {installed.failures or uninstalled.failures}")
            rows.append({"instances": instances, "concurrency": concurrency, "install_s": install_s,
                         "uninstall_s": uninstall_s, "operations": installed.operations + uninstalled.operations})
            orch.close()
    finally:
        server.stop()
    return rows


def warm_up(endpoint: str) -> None:
    """One call of each kind the workload makes, from a client of its own."""
    import boto3

    ec2 = boto3.client("ec2", endpoint_url=endpoint, region_name="us-east-1")
    for call in (ec2.describe_vpcs, ec2.describe_security_groups, ec2.describe_key_pairs, ec2.describe_addresses,
                 ec2.describe_instances, lambda: ec2.describe_images(ImageIds=["ami-12c6146b"])):
        call()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--instances", type=int, default=50)
    ap.add_argument("--concurrency", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = run(args.instances, args.concurrency, args.repeat)
    if args.json:
        print(json.dumps({"aws": rows}))
        return
    for key in ("install_s", "uninstall_s"):
        values = [r[key] for r in rows]
        median = statistics.median(values)
        verdict = "met" if median <= GOAL_S else "missed"
        print(f"{key[:-2]:9} {args.instances} instances, concurrency {args.concurrency}: median {median:.2f}s "
              f"(runs {', '.join(f'{v:.2f}' for v in values)}; goal <= {GOAL_S:g}s {verdict})")


if __name__ == "__main__":
    main()
