"""Real Cloudify blueprints installed, read and uninstalled through the CLI, unedited.

AWS is the moto server (``AWS_ENDPOINT_URL``, dummy credentials, the blueprints'
``get_secret`` calls answered by ``ORCHESTRATOR_SECRET_*``); Docker is the test engine
(``DOCKER_HOST``: containers ``contained_in`` a Cloudify host or an EC2 "VM" run there, as
``examples/aws-docker`` does for our own blueprints). Each test checks what the blueprint
made with boto3 or the Docker SDK, the outputs, and that uninstall leaves nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from plugins_aws.tags import DEPLOYMENT_TAG as TAG

pytestmark = pytest.mark.integration

CORPUS = Path(__file__).parent / "corpus"
KEYS_DEMO = CORPUS / "cloudify-aws-plugin/examples/ec2-keys-feature-demo/blueprint.yaml"
EIP_DEMO = CORPUS / "cloudify-aws-plugin/examples/ec2-instance-feature-demo/elastic-ip.yaml"
SG_DEMO = CORPUS / "cloudify-aws-plugin/examples/security-group-feature-demo/blueprint.yaml"
PULL_TEST = CORPUS / "cloudify-docker-plugin/docker_plugin/tests/blueprint/test_pull-blueprint.yaml"
SMOKE = CORPUS / "blueprint-examples/introduction-to-blueprints/ex1-input-output-blueprint.yaml"
NODECELLAR = CORPUS / "cloudify-nodecellar-docker-example/ec2-blueprint.yaml"
AMI = "ami-12c6146b"  # in moto's catalogue
SECRETS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION_NAME": "us-east-1",
           "EC2_REGION_NAME": "us-east-1", "AWS_SESSION_TOKEN": ""}


class Cli:
    """``python -m orchestrator`` in one directory with one state file and one environment."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd, self.env = cwd, {**env, "ORCHESTRATOR_STATE": str(cwd / "state.db")}

    def __call__(self, *args: str, ok: bool = True, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "orchestrator", *args],
                                cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=timeout)
        assert "Traceback" not in result.stderr, result.stderr
        if ok:
            assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
        return result

    def outputs(self, deployment: str) -> dict[str, Any]:
        return json.loads(self("outputs", "-d", deployment, "--json").stdout)

    def states(self, deployment: str) -> dict[str, str]:
        rows = json.loads(self("status", "-d", deployment, "--json").stdout)
        items = rows.get("instances", rows) if isinstance(rows, dict) else rows
        return {r["instance"]: r["state"] for r in items}


@pytest.fixture
def deployment() -> str:
    return f"cfy{uuid.uuid4().hex[:8]}"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORCHESTRATOR_", "DOCKER_"))}
    env.update({f"ORCHESTRATOR_SECRET_{k}": v for k, v in SECRETS.items()})
    env.update(extra)
    return env


@pytest.fixture
def aws_cli(aws_env: Any, tmp_path: Path) -> Cli:
    """The CLI on the moto server (``aws_env`` set the variables boto3 reads)."""
    return Cli(tmp_path, _env())


@pytest.fixture
def docker_url(docker_engine: Any) -> str:
    return str(docker_engine.base_url)


@pytest.fixture
def both_cli(aws_env: Any, docker_url: str, tmp_path: Path) -> Cli:
    """The CLI on moto and on the test engine: what runs on an EC2 "VM" runs there."""
    return Cli(tmp_path, _env(DOCKER_HOST=docker_url))


def _ec2() -> Any:
    return boto3.client("ec2", region_name="us-east-1")


_DESCRIBE = {  # kind -> (describe operation, its filters parameter, result key)
    "key_pairs": ("describe_key_pairs", "Filters", "KeyPairs"),
    "security_groups": ("describe_security_groups", "Filters", "SecurityGroups"),
    "addresses": ("describe_addresses", "Filters", "Addresses"),
    "vpcs": ("describe_vpcs", "Filters", "Vpcs"),
    "internet_gateways": ("describe_internet_gateways", "Filters", "InternetGateways"),
    "nat_gateways": ("describe_nat_gateways", "Filter", "NatGateways"),
    "route_tables": ("describe_route_tables", "Filters", "RouteTables"),
    "volumes": ("describe_volumes", "Filters", "Volumes"),
}


def _tagged(kind: str, deployment: str) -> list[dict[str, Any]]:
    ec2 = _ec2()
    flt = [{"Name": f"tag:{TAG}", "Values": [deployment]}]
    if kind == "instances":
        found = ec2.describe_instances(Filters=[*flt, {"Name": "instance-state-name",
                                                       "Values": ["pending", "running", "stopping", "stopped"]}])
        return [i for r in found["Reservations"] for i in r["Instances"]]
    operation, parameter, key = _DESCRIBE[kind]
    return getattr(ec2, operation)(**{parameter: flt})[key]


def _leaked(deployment: str) -> dict[str, int]:
    from plugins_aws.testing import leaked

    return {kind: len(ids) for kind, ids in leaked(deployment).items()}


# ---------------------------------------------------------------- AWS plugin feature demos


def test_key_pair_demo(aws_cli: Cli, deployment: str) -> None:
    aws_cli("validate", str(KEYS_DEMO))
    assert "my_key_0" in aws_cli("plan", str(KEYS_DEMO)).stdout
    aws_cli("install", str(KEYS_DEMO), "-d", deployment)
    assert aws_cli.states(deployment) == {"my_key_0": "started"}
    (key,) = _tagged("key_pairs", deployment)
    assert aws_cli.outputs(deployment) == {}
    aws_cli("uninstall", "-d", deployment)
    assert not _ec2().describe_key_pairs(Filters=[{"Name": "key-name", "Values": [key["KeyName"]]}])["KeyPairs"]
    assert _leaked(deployment) == {}


def test_elastic_ip_demo_adopts_an_address_and_leaves_it(aws_cli: Cli, deployment: str) -> None:
    ec2 = _ec2()
    address = ec2.allocate_address(Domain="vpc")
    try:
        inputs = ["-i", "aws_access_key_id=testing", "-i", "aws_secret_access_key=testing",
                  "-i", "ec2_region_name=us-east-1", "-i", "ec2_region_endpoint=ec2.us-east-1.amazonaws.com",
                  "-i", f"existing_ip={address['PublicIp']}"]
        aws_cli("validate", str(EIP_DEMO), *inputs)
        aws_cli("install", str(EIP_DEMO), "-d", deployment, *inputs)
        assert aws_cli.states(deployment) == {"ip_0": "started"}
        assert aws_cli.outputs(deployment) == {}
        aws_cli("uninstall", "-d", deployment)
        (still,) = ec2.describe_addresses(AllocationIds=[address["AllocationId"]])["Addresses"]
        assert still["PublicIp"] == address["PublicIp"]  # adopted: kept, as Cloudify keeps external resources
    finally:
        ec2.release_address(AllocationId=address["AllocationId"])


def test_security_group_demo_rule_with_two_peers(aws_cli: Cli, deployment: str) -> None:
    ec2 = _ec2()
    vpc = ec2.create_vpc(CidrBlock="10.77.0.0/16")["Vpc"]["VpcId"]
    try:
        aws_cli("install", str(SG_DEMO), "-d", deployment, "-i", f"vpc={vpc}")
        groups = {g["GroupName"]: g for g in _tagged("security_groups", deployment)}
        assert set(groups) == {"security_group0", "security_group1"}
        (perm,) = [p for p in ec2.describe_security_groups(GroupIds=[groups["security_group0"]["GroupId"]])
                   ["SecurityGroups"][0]["IpPermissions"]]
        assert perm["IpProtocol"] == "icmp"
        assert [r["CidrIp"] for r in perm["IpRanges"]] == ["0.0.0.0/0"]
        assert [g["GroupId"] for g in perm["UserIdGroupPairs"]] == [groups["security_group1"]["GroupId"]]
        aws_cli("uninstall", "-d", deployment)
        assert _leaked(deployment) == {}
    finally:
        ec2.delete_vpc(VpcId=vpc)


# ---------------------------------------------------------------- Docker plugin pull test


@contextlib.contextmanager
def _absent(client: Any, ref: str) -> Iterator[None]:
    """``ref`` not on the engine when the block starts (so it is pulled), nor after it."""
    import docker

    def remove() -> None:
        with contextlib.suppress(docker.errors.ImageNotFound, docker.errors.APIError):
            client.images.remove(ref)

    remove()
    try:
        yield
    finally:
        remove()


def test_docker_pull_test_blueprint_pulls_and_runs(both_cli: Cli, docker_engine: Any, busybox_image: str,
                                                   deployment: str) -> None:
    client = docker_engine.client()
    repo, tag = busybox_image.rsplit(":", 1)
    with _absent(client, busybox_image):
        inputs = ["-i", f"test_repo={repo}", "-i", f"test_tag={tag}", "-i", f"test_container_name={deployment}"]
        assert "test_container_0" in both_cli("plan", str(PULL_TEST), *inputs).stdout
        both_cli("install", str(PULL_TEST), "-d", deployment, *inputs)
        container = client.containers.get(deployment)
        assert container.status == "running" and container.image.tags[0] == busybox_image
        assert set(container.attrs["HostConfig"]["PortBindings"]) == {"3306/tcp", "8080/tcp"}
        assert container.attrs["Config"]["Tty"] and container.attrs["Config"]["OpenStdin"]
        assert both_cli.states(deployment) == {"host_0": "started", "test_container_0": "started"}
        both_cli("uninstall", "-d", deployment)
        assert not client.containers.list(all=True, filters={"name": deployment})


# ---------------------------------------------------------------- smoke test


def test_smoke_inputs_and_outputs_on_root(tmp_path: Path, deployment: str) -> None:
    cli = Cli(tmp_path, _env())
    cli("install", str(SMOKE), "-d", deployment)
    assert cli.outputs(deployment) == {"hello": "World"}
    cli("uninstall", "-d", deployment)
    cli("install", str(SMOKE), "-d", deployment, "-i", "hello=Cloudify")
    assert cli.outputs(deployment) == {"hello": "Cloudify"}
    cli("uninstall", "-d", deployment)


# ---------------------------------------------------------------- legacy AWS + Docker (nodecellar)

STAND_INS = {  # the images the blueprint names, built from busybox: same commands, nothing pulled
    "dockerfile/mongodb:latest": ("mongod", "trap 'exit 0' TERM\nsleep 3600 & wait\n"),
    "uric/nodecellar:latest": ("nodejs", 'httpd -p "$NODECELLAR_PORT" -h /www\ntrap "exit 0" TERM\n'
                                         "sleep 3600 & wait\n"),
}


def _context(base: str, command: str, script: str) -> Any:
    """A build context (tar): the command as a shell script on PATH, and a page for httpd."""
    import io
    import tarfile

    files = {"Dockerfile": f"FROM {base}\nCOPY {command} /bin/{command}\nCOPY index.html /www/index.html\n",
             command: f"#!/bin/sh\n{script}", "index.html": "nodecellar\n"}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, text in files.items():
            info = tarfile.TarInfo(name)
            data = text.encode()
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


@pytest.fixture
def stand_ins(docker_engine: Any, busybox_image: str) -> Iterator[None]:
    import docker

    client = docker_engine.client()
    try:
        client.images.get(busybox_image)
    except docker.errors.ImageNotFound:
        client.images.pull(busybox_image)
    for ref, (command, script) in STAND_INS.items():
        client.images.build(fileobj=_context(busybox_image, command, script), custom_context=True, tag=ref,
                            rm=True, pull=False)
    yield
    for ref in STAND_INS:
        with contextlib.suppress(docker.errors.ImageNotFound, docker.errors.APIError):
            client.images.remove(ref)


def test_legacy_nodecellar_on_two_vms_with_containers(both_cli: Cli, docker_engine: Any, stand_ins: None,
                                                      deployment: str, tmp_path: Path) -> None:
    from testenv import free_port

    ports = {"web": free_port(), "mongo": free_port(), "status": free_port()}
    (tmp_path / "inputs.yaml").write_text(json.dumps({
        "image": AMI, "size": "t2.micro",
        "nodecellar_container_port_bindings": {8080: ports["web"]},
        "mongo_container_port_bindings": {27017: ports["mongo"], 28017: ports["status"]}}))
    inputs = ["-i", str(tmp_path / "inputs.yaml")]
    both_cli("validate", str(NODECELLAR), *inputs)
    both_cli("install", str(NODECELLAR), "-d", deployment, *inputs)
    assert set(both_cli.states(deployment).values()) == {"started"}

    vms = {i["InstanceId"]: i for i in _tagged("instances", deployment)}
    assert len(vms) == 2 and all(i["ImageId"] == AMI for i in vms.values())
    (address,) = _tagged("addresses", deployment)
    node_vm = next(i for i in vms.values() if i["InstanceId"] == address.get("InstanceId"))
    groups = {g["Description"]: g for g in _tagged("security_groups", deployment)}
    assert sorted(p["FromPort"] for p in groups["NodeJSSecGroup"]["IpPermissions"]) == [22, 8080]
    assert sorted(p["FromPort"] for p in groups["MongoDBSecGroup"]["IpPermissions"]) == [22, 27017, 28017]
    assert [g["GroupId"] for g in node_vm["SecurityGroups"]] == [groups["NodeJSSecGroup"]["GroupId"]]
    assert both_cli.outputs(deployment) == {"endpoint": {"ip_address": address["PublicIp"], "port": 8080}}

    client = docker_engine.client()
    mongod, app = client.containers.get("mongod"), client.containers.get("nodecellar")
    assert mongod.status == app.status == "running"
    mongo_vm = next(i for i in vms.values() if i is not node_vm)
    assert app.attrs["HostConfig"]["ExtraHosts"] == [f"mongod:{mongo_vm['PrivateIpAddress']}"]
    env = dict(e.split("=", 1) for e in app.attrs["Config"]["Env"])
    assert (env["MONGO_HOST"], env["MONGO_PORT"], env["NODECELLAR_PORT"]) == ("mongod", "27017", "8080")
    assert app.attrs["HostConfig"]["PortBindings"]["8080/tcp"][0]["HostPort"] == str(ports["web"])
    assert app.exec_run(["wget", "-qO-", "http://127.0.0.1:8080/"]).output == b"nodecellar\n"

    both_cli("uninstall", "-d", deployment)
    assert not client.containers.list(all=True, filters={"name": "nodecellar"})
    assert not client.containers.list(all=True, filters={"name": "mongod"})
    assert _leaked(deployment) == {}


SCALED_VMS = """\
tosca_definitions_version: cloudify_dsl_1_3
imports:
  - http://www.getcloudify.org/spec/cloudify/3.2m8/types.yaml
  - http://www.getcloudify.org/spec/aws-plugin/1.2m8/plugin.yaml
node_templates:
  ip:
    type: cloudify.aws.nodes.ElasticIP
  vm:
    type: cloudify.aws.nodes.Instance
    properties:
      image_id: ami-12c6146b
      instance_type: t2.micro
      install_agent: false
    relationships:
      - type: cloudify.aws.relationships.instance_connected_to_elastic_ip
        target: ip
groups:
  vm_and_ip:
    members: [vm, ip]
policies:
  scale_vm_and_ip:
    type: cloudify.policies.scaling
    properties: {default_instances: 2}
    targets: [vm_and_ip]
"""


def test_a_scaling_group_gives_each_vm_its_own_address_and_scales_as_a_unit(aws_cli: Cli, deployment: str,
                                                                             tmp_path: Path) -> None:
    path = tmp_path / "scaled.yaml"
    path.write_text(SCALED_VMS)
    aws_cli("install", str(path), "-d", deployment)

    def pairs() -> dict[str, str]:  # instance id -> its elastic IP's public address
        addresses = _tagged("addresses", deployment)
        vms = {i["InstanceId"] for i in _tagged("instances", deployment)}
        assert {a.get("InstanceId") for a in addresses} == vms, (addresses, vms)  # one address per VM, each its own
        return {a["InstanceId"]: a["PublicIp"] for a in addresses}

    assert len(pairs()) == 2
    aws_cli("scale", "-d", deployment, "vm_and_ip=3", "--yes")
    assert len(pairs()) == 3
    aws_cli("scale", "-d", deployment, "--remove", "vm_and_ip_0", "--yes")
    assert len(pairs()) == 2
    assert set(aws_cli.states(deployment)) == {"vm_1", "vm_2", "ip_1", "ip_2", "vm_and_ip_1", "vm_and_ip_2"}
    aws_cli("uninstall", "-d", deployment)
    assert _leaked(deployment) == {}


NETWORK = CORPUS / "blueprint-examples/aws-example-network/blueprint.yaml"


def test_example_network_builds_public_and_private_routes(aws_cli: Cli, deployment: str) -> None:
    """blueprint-examples' AWS network, unedited: VPC, two subnets, an internet gateway, a NAT
    gateway with its address, two route tables and their default routes."""
    aws_cli("validate", str(NETWORK))
    aws_cli("install", str(NETWORK), "-d", deployment)
    assert set(aws_cli.states(deployment).values()) == {"started"}
    outputs = aws_cli.outputs(deployment)
    (vpc,) = _tagged("vpcs", deployment)
    assert outputs["vpc_id"] == vpc["VpcId"] and vpc["CidrBlock"] == "10.11.0.0/16"
    (gateway,) = _tagged("internet_gateways", deployment)
    assert [a["VpcId"] for a in gateway["Attachments"]] == [vpc["VpcId"]]
    (nat,) = [g for g in _tagged("nat_gateways", deployment) if g["State"] == "available"]
    assert nat["SubnetId"] == outputs["public_subnet_id"]
    tables = _tagged("route_tables", deployment)
    routes = {t["Associations"][0]["SubnetId"]: {r["DestinationCidrBlock"]: r.get("GatewayId") or r.get("NatGatewayId")
                                                 for r in t["Routes"]} for t in tables}
    assert routes == {outputs["public_subnet_id"]: {"10.11.0.0/16": "local", "0.0.0.0/0": gateway["InternetGatewayId"]},
                      outputs["private_subnet_id"]: {"10.11.0.0/16": "local", "0.0.0.0/0": nat["NatGatewayId"]}}
    aws_cli("uninstall", "-d", deployment)
    assert _leaked(deployment) == {}


NAT_DEMO = CORPUS / "cloudify-aws-plugin/examples/natgateway-feature-demo/blueprint.yaml"


def test_nat_gateway_demo_makes_a_private_gateway(aws_cli: Cli, deployment: str) -> None:
    inputs = ["-i", "aws_access_key_id=testing", "-i", "aws_secret_access_key=testing",
              "-i", "aws_region_name=us-east-1"]
    aws_cli("install", str(NAT_DEMO), "-d", deployment, *inputs)
    assert set(aws_cli.states(deployment).values()) == {"started"}
    (nat,) = [g for g in _tagged("nat_gateways", deployment) if g["State"] == "available"]
    assert nat["ConnectivityType"] == "private" and nat["VpcId"]
    aws_cli("uninstall", "-d", deployment)
    assert _leaked(deployment) == {}


IMAGE_DEMO = CORPUS / "cloudify-aws-plugin/examples/ec2-image-feature-demo/blueprint.yaml"


def test_image_demo_looks_an_image_up(aws_cli: Cli, deployment: str) -> None:
    known = _ec2().describe_images(ImageIds=[AMI])["Images"][0]  # the demo's filters, aimed at moto's catalogue
    aws_cli("install", str(IMAGE_DEMO), "-d", deployment, "-i", f"ami_name_filter={known['Name']}",
            "-i", f"ami_owner_filter={known['OwnerId']}")
    status = json.loads(aws_cli("status", "-d", deployment, "--json").stdout)
    assert [i["state"] for i in status["instances"]] == ["started"]
    orch_state = aws_cli.cwd / "state.db"
    from orchestrator.deployments import Orchestrator

    rows = Orchestrator(state_path=orch_state).status(deployment)[2]
    assert rows["cloudify_manager_ami_0"].runtime["aws_resource_id"] == AMI
    aws_cli("uninstall", "-d", deployment)
    assert _ec2().describe_images(ImageIds=[AMI])["Images"]  # looked up: still there


HELLO_AWS = CORPUS / "cloudify-hello-world-example/aws.yaml"


def test_cloudify_hello_world_on_aws(aws_cli: Cli, deployment: str) -> None:
    """Cloudify's hello world for AWS, unedited: an AMI looked up, a VPC with a subnet, an internet
    gateway, a route table and its default route, a security group with a rule, a network
    interface in the subnet with the group, an elastic IP on the interface, and the VM on it."""
    known = _ec2().describe_images(ImageIds=[AMI])["Images"][0]  # the lookup, aimed at moto's catalogue
    inputs = ["-i", "aws_region_name=us-east-1", "-i", f"ami_name_filter={known['Name']}",
              "-i", f"ami_owner_filter={known['OwnerId']}"]
    aws_cli("validate", str(HELLO_AWS), *inputs)
    aws_cli("install", str(HELLO_AWS), "-d", deployment, *inputs)
    assert set(aws_cli.states(deployment).values()) == {"started"}
    (vm,) = _tagged("instances", deployment)
    (nic,) = vm["NetworkInterfaces"]
    (address,) = _tagged("addresses", deployment)
    assert vm["ImageId"] == AMI and address.get("NetworkInterfaceId") == nic["NetworkInterfaceId"]
    (group,) = _tagged("security_groups", deployment)
    assert [g["GroupId"] for g in nic["Groups"]] == [group["GroupId"]]
    assert [p["FromPort"] for p in group["IpPermissions"]] == [80]
    tables = _tagged("route_tables", deployment)
    assert [t["Associations"][0]["SubnetId"] for t in tables] == [nic["SubnetId"]]
    (vm,) = _tagged("instances", deployment)
    assert vm.get("PublicIpAddress") == address["PublicIp"]  # the VM is reached at the interface's address
    # The output is what the VM recorded when it started; the blueprint starts the VM and attaches
    # the address side by side (as in Cloudify), so on moto, where both are instant, either may
    # come first.
    endpoint = aws_cli.outputs(deployment)["application_endpoint"]
    assert endpoint.startswith("http://") and endpoint.endswith(":80"), endpoint
    aws_cli("uninstall", "-d", deployment)
    assert _leaked(deployment) == {}


EBS_DEMO = CORPUS / "cloudify-aws-plugin/examples/ebs-feature-demo/blueprint.yaml"


def test_ebs_demo_makes_a_tagged_volume(aws_cli: Cli, deployment: str) -> None:
    aws_cli("install", str(EBS_DEMO), "-d", deployment, "-i", "aws_region_name=us-east-1",
            "-i", "availability_zone=us-east-1a")
    (volume,) = _tagged("volumes", deployment)
    tags = {t["Key"]: t["Value"] for t in volume["Tags"]}
    assert volume["Size"] == 6 and volume["AvailabilityZone"] == "us-east-1a"
    assert tags["First"] == "First Volume" and tags["Second"] == "Second Volume"
    aws_cli("uninstall", "-d", deployment)
    assert _leaked(deployment) == {}
