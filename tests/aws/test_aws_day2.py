"""Day 2 on the moto server, through the real CLI and the installed plugin distribution.

``drift`` after out-of-band changes made with boto3 (a key pair deleted, an instance
terminated, another stopped, resized and put in another group, rules revoked and added by
hand, a tag changed, an address disassociated); ``plan -d`` and ``update`` applying in-place changes (rules,
tags, an instance type, a key file's path, a rule's description) and a replacement (a new
image: new instance, the address re-associated by the relink), then an address moving to
another instance; nothing leaks.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from testenv.cli import cli, runtime

from plugins_aws.testing import leaked

pytestmark = pytest.mark.integration

BLUEPRINT = Path(__file__).parent / "blueprints" / "day2.yaml"
NEW_AMI = "ami-1812c061"  # another image of moto's catalogue


def instance(ec2: Any, instance_id: str) -> dict[str, Any]:
    (reservation,) = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    return reservation["Instances"][0]


def ingress(ec2: Any, group_id: str) -> list[tuple[int, str, str | None]]:
    found = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group_id]}])
    return sorted((r["FromPort"], r.get("CidrIpv4"), r.get("Description"))
                  for r in found["SecurityGroupRules"] if not r["IsEgress"])


def tags(resource: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags") or []}


@pytest.fixture
def installed(aws_env: Any, deployment: str, tmp_path: Path) -> Iterator[dict[str, dict[str, Any]]]:
    """``day2.yaml`` installed as ``deployment`` in ``tmp_path``; its runtime properties."""
    (tmp_path / "bp.yaml").write_text(BLUEPRINT.read_text())
    cli("install", "bp.yaml", "-d", deployment, "-i", f"private_key_path={tmp_path / 'key.pem'}", cwd=tmp_path)
    yield runtime(tmp_path, deployment)
    cli("uninstall", "-d", deployment, cwd=tmp_path)
    assert leaked(deployment) == {}


def drift(cwd: Path, deployment: str) -> tuple[int, dict[str, Any]]:
    result = cli("drift", "-d", deployment, "--json", "--exit-code", cwd=cwd, check=False)
    assert result.returncode in (0, 3), result.stdout + result.stderr
    return result.returncode, json.loads(result.stdout)


def test_drift_after_out_of_band_changes(installed, ec2, deployment, tmp_path, request):
    rt = installed
    assert drift(tmp_path, deployment) == (0, {
        "deployment": deployment, "summary": {"in sync": 6, "drifted": 0, "gone": 0, "failed": 0},
        "instances": [{"instance": i, "node": i[:-2], "type": t, "status": "in sync"} for i, t in (
            ("key_0", "aws.ec2.KeyPair"), ("web_sg_0", "aws.ec2.SecurityGroup"),
            ("https_0", "aws.ec2.SecurityGroupRule"), ("web_0", "aws.ec2.Instance"),
            ("worker_0", "aws.ec2.Instance"), ("public_ip_0", "aws.ec2.ElasticIP"))],
        "failures": []})

    web, worker = rt["web_0"]["aws_resource_id"], rt["worker_0"]["aws_resource_id"]
    group = rt["web_sg_0"]["aws_resource_id"]
    ec2.delete_key_pair(KeyName=rt["key_0"]["key_name"])
    ec2.terminate_instances(InstanceIds=[worker])
    ec2.stop_instances(InstanceIds=[web])
    ec2.modify_instance_attribute(InstanceId=web, InstanceType={"Value": "t3.large"})
    extra = ec2.create_security_group(GroupName=f"{deployment}-by-hand", Description="by hand")["GroupId"]
    request.addfinalizer(lambda: ec2.delete_security_group(GroupId=extra))
    ec2.modify_instance_attribute(InstanceId=web, Groups=[group, extra])
    ec2.revoke_security_group_ingress(GroupId=group, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    added = ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080, "IpRanges": [{"CidrIp": "203.0.113.0/24"}]}])
    added_id = added["SecurityGroupRules"][0]["SecurityGroupRuleId"]
    ec2.create_tags(Resources=[group], Tags=[{"Key": "team", "Value": "ops"}])
    ec2.disassociate_address(AssociationId=rt["public_ip_0"]["association_id"])

    code, report = drift(tmp_path, deployment)
    assert code == 3
    assert report["summary"] == {"in sync": 1, "drifted": 3, "gone": 2, "failed": 0}
    assert {i["instance"]: (i["status"], i.get("differences")) for i in report["instances"]} == {
        "key_0": ("gone", {"gone": f"key pair {rt['key_0']['key_name']} no longer exists"}),
        "web_sg_0": ("drifted", {
            "tags.team": {"recorded": "web", "actual": "ops"},
            "rules[1]": {"recorded": "tcp 80 from 0.0.0.0/0", "actual": None},
            "rules (not declared)": {"recorded": None, "actual": [f"tcp 8080 from 203.0.113.0/24 ({added_id})"]}}),
        "https_0": ("in sync", None),
        "web_0": ("drifted", {"state": {"recorded": "running", "actual": "stopped"},
                              "instance_type": {"recorded": "t3.micro", "actual": "t3.large"},
                              "security_groups": {"recorded": [group], "actual": sorted([group, extra])}}),
        "worker_0": ("gone", {"gone": f"instance {worker} is terminated"}),
        "public_ip_0": ("drifted", {"association": {"recorded": web, "actual": None}}),
    }
    text = cli("drift", "-d", deployment, cwd=tmp_path).stdout
    assert "1 in sync, 3 drifted, 2 gone" in text and f"instance {worker} is terminated" in text


def plan(cwd: Path, deployment: str, blueprint: str = "bp.yaml") -> dict[str, Any]:
    return json.loads(cli("plan", blueprint, "-d", deployment, "--json", "-i",
                          f"private_key_path={cwd / 'key2.pem'}", cwd=cwd).stdout)


def test_update_in_place_and_replacements(installed, ec2, deployment, tmp_path):
    rt = installed
    web, worker = rt["web_0"]["aws_resource_id"], rt["worker_0"]["aws_resource_id"]
    group, allocation = rt["web_sg_0"]["aws_resource_id"], rt["public_ip_0"]["aws_resource_id"]
    stranger = {"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080, "IpRanges": [{"CidrIp": "203.0.113.0/24"}]}
    ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[stranger])  # someone else's rule
    text = BLUEPRINT.read_text()
    changed = (text.replace("        - {port: 22, cidr_ip: 10.0.0.0/8, description: ssh}\n", "")
               .replace("        - {port: 80, cidr_ip: 0.0.0.0/0}\n",
                        "        - {port: 80, cidr_ip: 0.0.0.0/0}\n"
                        "        - {port: 8443, cidr_ip: 10.0.0.0/8, description: admin}\n")
               .replace("tags: {team: web}", "tags: {team: platform}")
               .replace("properties: {port: 443, cidr_ip: 0.0.0.0/0,", "properties: {port: 443, cidr_ip: 0.0.0.0/0, "
                        "description: public,")
               .replace("      image_id: ami-12c6146b\n      instance_type: t3.micro\n",
                        f"      image_id: {NEW_AMI}\n      instance_type: t3.micro\n")
               .replace("      instance_type: t3.small\n", "      instance_type: t3.medium\n      tags: {role: batch}\n"))
    (tmp_path / "bp.yaml").write_text(changed)

    proposed = plan(tmp_path, deployment)
    changes = {c["instance"]: c for c in proposed["changes"]}
    assert {i: (c["action"], c.get("reason", "")) for i, c in changes.items()} == {
        "key_0": ("update", ""), "web_sg_0": ("update", ""), "https_0": ("update", ""),
        "web_0": ("replace", "property image_id cannot change in place"),
        "worker_0": ("update", ""), "public_ip_0": ("update", "")}
    assert changes["public_ip_0"]["relationships"] == {
        "relink": ["web_0/aws.relationships.elastic_ip_connected_to_instance"]}
    assert {p["path"] for p in changes["worker_0"]["properties"]} == {"instance_type", "tags.role"}

    cli("update", "bp.yaml", "-d", deployment, "-y", "-i", f"private_key_path={tmp_path / 'key2.pem'}", cwd=tmp_path)
    after = runtime(tmp_path, deployment)
    # in place: the same instance, now t3.medium, running, tagged
    assert after["worker_0"]["aws_resource_id"] == worker
    moved = instance(ec2, worker)
    assert (moved["InstanceType"], moved["State"]["Name"], tags(moved)["role"]) == ("t3.medium", "running", "batch")
    # replaced: a new instance of the new image; the old one terminated; the address follows
    new_web = after["web_0"]["aws_resource_id"]
    assert new_web != web and instance(ec2, web)["State"]["Name"] == "terminated"
    assert instance(ec2, new_web)["ImageId"] == NEW_AMI
    (address,) = ec2.describe_addresses(AllocationIds=[allocation])["Addresses"]
    assert address["InstanceId"] == new_web
    assert after["web_0"]["public_ip_address"] == address["PublicIp"] == after["public_ip_0"]["public_ip"]
    # rules: ours revoked and added by their declarations, the stranger's left alone, descriptions in place
    assert ingress(ec2, group) == [(80, "0.0.0.0/0", None), (443, "0.0.0.0/0", "public"),
                                   (8080, "203.0.113.0/24", None), (8443, "10.0.0.0/8", "admin")]
    (sg,) = ec2.describe_security_groups(GroupIds=[group])["SecurityGroups"]
    assert tags(sg)["team"] == "platform"
    # the private key moved
    assert (tmp_path / "key2.pem").read_text().startswith("-----BEGIN") and not (tmp_path / "key.pem").exists()

    assert plan(tmp_path, deployment)["changes"] == []
    code, report = drift(tmp_path, deployment)
    assert code == 3 and [(i["instance"], i.get("differences")) for i in report["instances"]
                          if i["status"] != "in sync"] == [
        ("web_sg_0", {"rules (not declared)": {"recorded": None, "actual": [
            f"tcp 8080 from 203.0.113.0/24 ({_rule_id(ec2, group, 8080)})"]}})]

    # the address moves to the worker: unlinked from the web instance, established on the worker
    (tmp_path / "bp.yaml").write_text(changed.replace(
        "elastic_ip_connected_to_instance, target: web}", "elastic_ip_connected_to_instance, target: worker}"))
    moving = {c["instance"]: c for c in plan(tmp_path, deployment)["changes"]}
    assert {i: c["action"] for i, c in moving.items()} == {"public_ip_0": "update"}
    assert moving["public_ip_0"]["relationships"] == {
        "added": ["worker_0/aws.relationships.elastic_ip_connected_to_instance"],
        "removed": ["web_0/aws.relationships.elastic_ip_connected_to_instance"]}
    cli("update", "bp.yaml", "-d", deployment, "-y", "-i", f"private_key_path={tmp_path / 'key2.pem'}", cwd=tmp_path)
    (address,) = ec2.describe_addresses(AllocationIds=[allocation])["Addresses"]
    assert address["InstanceId"] == worker
    final = runtime(tmp_path, deployment)
    assert final["worker_0"]["public_ip_address"] == address["PublicIp"]
    assert "elastic_ip" not in final["web_0"]


def _rule_id(ec2: Any, group: str, port: int) -> str:
    found = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group]}])["SecurityGroupRules"]
    return next(r["SecurityGroupRuleId"] for r in found if r.get("FromPort") == port)


NETWORK = Path(__file__).parent / "blueprints" / "network.yaml"


def test_a_public_network_drifts_heals_and_retags(aws_env, ec2, deployment, tmp_path):
    """A route deleted and a gateway detached by hand: drift names both, heal puts them back;
    a new tag reaches the gateway and the table in place."""
    (tmp_path / "bp.yaml").write_text(NETWORK.read_text())
    cli("install", "bp.yaml", "-d", deployment, "-i", "poll_interval=0.1", cwd=tmp_path)
    rt = runtime(tmp_path, deployment)
    table, gateway, vpc = (rt["public_routes_0"]["aws_resource_id"], rt["gateway_0"]["aws_resource_id"],
                           rt["vpc_0"]["aws_resource_id"])
    ec2.delete_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0")
    ec2.detach_internet_gateway(InternetGatewayId=gateway, VpcId=vpc)
    code, found = drift(tmp_path, deployment)
    drifted = {i["instance"] for i in found["instances"] if i["status"] != "in sync"}
    assert code == 3 and drifted == {"default_route_0", "gateway_0"}, found
    cli("heal", "-d", deployment, "--yes", cwd=tmp_path)
    (attached,) = ec2.describe_internet_gateways(Filters=[
        {"Name": "attachment.vpc-id", "Values": [vpc]}])["InternetGateways"]
    (routes,) = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]},
                                                   {"Name": "association.subnet-id",
                                                    "Values": [rt["subnet_0"]["aws_resource_id"]]}])["RouteTables"]
    assert {r["DestinationCidrBlock"]: r["GatewayId"] for r in routes["Routes"]}["0.0.0.0/0"] == \
        attached["InternetGatewayId"]
    assert drift(tmp_path, deployment)[0] == 0
    text = NETWORK.read_text().replace("    type: aws.ec2.InternetGateway\n    properties:\n",
                                       "    type: aws.ec2.InternetGateway\n    properties:\n      tags: {team: net}\n")
    (tmp_path / "bp.yaml").write_text(text)
    cli("update", "bp.yaml", "-d", deployment, "--yes", cwd=tmp_path)
    (now,) = ec2.describe_internet_gateways(InternetGatewayIds=[attached["InternetGatewayId"]])["InternetGateways"]
    assert tags(now)["team"] == "net"  # in place: the same gateway
    cli("uninstall", "-d", deployment, cwd=tmp_path)
    assert leaked(deployment) == {}
