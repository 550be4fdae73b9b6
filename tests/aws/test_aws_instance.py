"""aws.ec2.Instance hooks in isolation: launch, idempotency, waits, errors, adoption."""

from __future__ import annotations

import pytest
from aws_helpers import AMI, aws_answers

from orchestrator import BlueprintError, NonRecoverableError, OperationRetry, RecoverableError
from plugins_aws.tags import DEPLOYMENT_TAG, INSTANCE_TAG

pytestmark = pytest.mark.integration

INSTANCE = "aws.ec2.Instance"


def _live(ec2, instance_id):
    """Live instances carrying this node instance's ownership tag."""
    reservations = ec2.describe_instances(Filters=[
        {"Name": f"tag:{INSTANCE_TAG}", "Values": [instance_id]},
        {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]},
    ])["Reservations"]
    return [i for r in reservations for i in r["Instances"]]


def _state(ec2, iid):
    (r,) = ec2.describe_instances(InstanceIds=[iid])["Reservations"]
    return r["Instances"][0]["State"]["Name"]


def test_lifecycle_and_runtime_properties(node, ec2):
    vm = node(INSTANCE, "vm", image_id=AMI, instance_type="t3.nano", name="web",
              user_data="#!/bin/sh\necho hi\n", tags={"team": "x"})
    vm.call("create")
    rt = vm.runtime_properties
    iid = rt["aws_resource_id"]
    assert iid.startswith("i-") and rt["launch_generation"]
    (inst,) = _live(ec2, vm.id)
    tags = {t["Key"]: t["Value"] for t in inst["Tags"]}
    assert tags["Name"] == "web" and tags["team"] == "x" and tags[DEPLOYMENT_TAG] == "test"
    assert inst["InstanceType"] == "t3.nano" and inst["ImageId"] == AMI
    vm.call("start")
    for key in ("public_ip_address", "private_ip_address", "public_dns_name", "private_dns_name"):
        assert rt[key], key
    assert rt["ip"] == rt["private_ip_address"]
    assert "docker_host" not in rt
    vm.call("stop")
    assert _state(ec2, iid) == "stopped"
    vm.call("start")  # a stopped instance is started again
    assert _state(ec2, iid) == "running"
    vm.call("stop")
    vm.call("delete")
    assert _state(ec2, iid) == "terminated"
    assert _live(ec2, vm.id) == []
    vm.call("stop")  # gone: nothing to do
    vm.call("delete")


def test_client_token_is_deterministic_per_install(node, ec2, monkeypatch):
    vm = node(INSTANCE, "vm", image_id=AMI)
    tokens = []
    import botocore.client
    real = botocore.client.BaseClient._make_api_call

    def spy(self, name, params):
        if name == "RunInstances":
            tokens.append(params["ClientToken"])
        return real(self, name, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", spy)
    vm.call("create")
    first = vm.runtime_properties["aws_resource_id"]
    # a crash after RunInstances, before the id was saved: only the generation survived
    vm.runtime_properties = {"launch_generation": vm.runtime_properties["launch_generation"]}
    vm.call("create")
    assert vm.runtime_properties["aws_resource_id"] == first
    assert len(_live(ec2, vm.id)) == 1
    assert len(tokens) == 1 and len(tokens[0]) <= 64  # found by tag: no second RunInstances
    vm.call("delete")
    assert "launch_generation" not in vm.runtime_properties  # the next install launches anew


def test_resume_finds_instance_by_tag_even_without_generation(node, ec2):
    vm = node(INSTANCE, "vm", image_id=AMI)
    vm.call("create")
    first = vm.runtime_properties["aws_resource_id"]
    vm.runtime_properties = {}
    vm.call("create")
    assert vm.runtime_properties["aws_resource_id"] == first
    assert any("found instance" in m for m in vm.logs)
    vm.runtime_properties = {}
    vm.call("delete")  # an id that was never saved is found by tag, too
    assert _live(ec2, vm.id) == []


def test_recorded_instance_terminated_behind_our_back_is_replaced(node, ec2):
    vm = node(INSTANCE, "vm", image_id=AMI)
    vm.call("create")
    first = vm.runtime_properties["aws_resource_id"]
    ec2.terminate_instances(InstanceIds=[first])
    vm.call("create")
    assert vm.runtime_properties["aws_resource_id"] != first
    assert len(_live(ec2, vm.id)) == 1
    vm.call("delete")


@pytest.mark.parametrize(("image", "code"), [
    ("bad-ami", r"InvalidAMIID\.Malformed"),
    ("ami-00000000000000000", r"InvalidAMIID\.NotFound"),
])
def test_bad_image_is_a_clear_error(node, ec2, image, code):
    vm = node(INSTANCE, "vm", image_id=image)
    with pytest.raises(NonRecoverableError, match=f"AWS {code} in DescribeImages: .*{image}"):
        vm.call("create")
    assert _live(ec2, vm.id) == []
    vm.call("delete")


def test_missing_key_pair_is_a_clear_error(node, ec2):
    vm = node(INSTANCE, "vm", image_id=AMI, key_name="no-such-key-x1")
    with pytest.raises(NonRecoverableError, match=r"AWS InvalidKeyPair\.NotFound in DescribeKeyPairs"):
        vm.call("create")
    assert _live(ec2, vm.id) == []


def test_missing_image_id_is_found_at_validate_time(node):
    with pytest.raises(BlueprintError, match=r"node template 'vm\w+': image_id is required"):
        node(INSTANCE, "vm")
    node(INSTANCE, "vm", use_external_resource=True, resource_id="i-0123456789abcdef0")  # adopting: fine


def test_bad_parameter_from_aws(node, ec2):
    vm = node(INSTANCE, "vm", image_id=AMI, security_group_ids=["sg-0000000000000000a"])
    with pytest.raises(NonRecoverableError, match=r"AWS InvalidGroup\.NotFound in RunInstances"):
        vm.call("create")
    assert _live(ec2, vm.id) == []


def test_insufficient_capacity_is_recoverable(node, ec2, monkeypatch):
    vm = node(INSTANCE, "vm", image_id=AMI)
    with (aws_answers(monkeypatch, "RunInstances", "InsufficientInstanceCapacity"),
          pytest.raises(RecoverableError, match="InsufficientInstanceCapacity")):
        vm.call("create")
    vm.call("create", retry_number=1)
    assert len(_live(ec2, vm.id)) == 1
    vm.call("delete")


def test_start_waits_by_asking_to_be_retried_never_in_process(node, ec2, monkeypatch):
    vm = node(INSTANCE, "vm", image_id=AMI, wait_timeout=60, poll_interval=7)
    vm.call("create")
    # DescribeInstances not knowing the instance yet (eventual consistency) is "not yet"
    with aws_answers(monkeypatch, "DescribeInstances", "InvalidInstanceID.NotFound", times=2):
        with pytest.raises(OperationRetry, match=r"waiting for instance i-\w+ to be running") as first:
            vm.call("start")
        assert first.value.retry_after == pytest.approx(0.1)  # a short first poll, then longer ones
        with pytest.raises(OperationRetry) as second:
            vm.call("start", retry_number=1)
        assert 0.1 < second.value.retry_after <= 7
        assert vm.runtime_properties["_waiting"]["for"].startswith("start: instance")
        vm.call("start", retry_number=2)
    assert vm.runtime_properties["private_ip_address"]
    assert "_waiting" not in vm.runtime_properties  # the wait is over
    vm.call("delete")


def test_a_wait_gives_up_after_wait_timeout(node, monkeypatch):
    vm = node(INSTANCE, "vm", image_id=AMI, wait_timeout=0)
    vm.call("create")
    with (aws_answers(monkeypatch, "DescribeInstances", "InvalidInstanceID.NotFound", times=1),
          pytest.raises(NonRecoverableError, match=r"gave up waiting for instance i-\w+ to be running after")):
        vm.call("start")
    vm.call("delete")


def test_keypair_groups_and_subnet_from_relationships(node, ec2):
    kp = node("aws.ec2.KeyPair", "kp")
    kp.call("create")
    sg1, sg2 = node("aws.ec2.SecurityGroup", "sg"), node("aws.ec2.SecurityGroup", "sg")
    sg1.call("create")
    sg2.call("create")
    vpc = node("aws.ec2.VPC", "vpc", cidr_block="10.20.0.0/16")
    vpc.call("create")
    subnet = node("aws.ec2.Subnet", "sub", cidr_block="10.20.1.0/24",
                  relationships=[("aws.relationships.contained_in_vpc", vpc)])
    subnet.call("create")
    # the groups must live in the subnet's VPC
    sg3 = node("aws.ec2.SecurityGroup", "sg", relationships=[("aws.relationships.contained_in_vpc", vpc)])
    sg3.call("create")
    vm = node(INSTANCE, "vm", image_id=AMI, relationships=[
        ("aws.relationships.instance_uses_keypair", kp),
        ("aws.relationships.instance_in_security_group", sg3),
        ("aws.relationships.instance_contained_in_subnet", subnet),
    ])
    vm.call("create")
    (inst,) = _live(ec2, vm.id)
    assert inst["KeyName"] == kp.runtime_properties["key_name"]
    assert [g["GroupId"] for g in inst["SecurityGroups"]] == [sg3.runtime_properties["aws_resource_id"]]
    assert inst["SubnetId"] == subnet.runtime_properties["aws_resource_id"]
    assert inst["VpcId"] == vpc.runtime_properties["aws_resource_id"]
    vm.call("delete")
    for n in (sg3, subnet, vpc, sg2, sg1, kp):
        n.call("delete")


def test_two_subnets_is_an_error(node):
    vpc = node("aws.ec2.VPC", "vpc", cidr_block="10.21.0.0/16")
    vpc.call("create")
    a = node("aws.ec2.Subnet", "sub", cidr_block="10.21.1.0/24", vpc_id=vpc.runtime_properties["aws_resource_id"])
    b = node("aws.ec2.Subnet", "sub", cidr_block="10.21.2.0/24", vpc_id=vpc.runtime_properties["aws_resource_id"])
    a.call("create")
    b.call("create")
    vm = node(INSTANCE, "vm", image_id=AMI, relationships=[
        ("orchestrator.relationships.connected_to", a), ("orchestrator.relationships.connected_to", b)])
    with pytest.raises(NonRecoverableError, match="related to 2 subnets"):
        vm.call("create")
    for n in (a, b, vpc):
        n.call("delete")


def test_docker_host_copied_and_derived(node, ec2):
    given = {"url": "unix:///var/run/docker.sock", "tls_verify": False}
    vm = node(INSTANCE, "vm", image_id=AMI, docker_host=given)
    vm.call("create")
    vm.call("start")
    assert vm.runtime_properties["docker_host"] == given
    vm.call("delete")

    derived = node(INSTANCE, "vm", image_id=AMI,
                   docker_host={"tls_verify": True, "ca_cert": "/certs/ca.pem",
                                "client_cert": "/certs/cert.pem", "client_key": "/certs/key.pem"})
    derived.call("create")
    derived.call("start")
    rt = derived.runtime_properties
    assert rt["docker_host"] == {"url": f"tcp://{rt['public_ip_address']}:2376", "tls_verify": True,
                                 "ca_cert": "/certs/ca.pem", "client_cert": "/certs/cert.pem",
                                 "client_key": "/certs/key.pem"}
    derived.call("delete")


def test_use_external_resource(node, ec2):
    iid = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    vm = node(INSTANCE, "vm", use_external_resource=True, resource_id=iid)
    vm.call("create")
    vm.call("start")
    assert vm.runtime_properties["private_ip_address"]
    vm.call("stop")
    vm.call("delete")
    assert _state(ec2, iid) == "running"  # adopted: never stopped nor terminated
    ec2.terminate_instances(InstanceIds=[iid])
    gone = node(INSTANCE, "vm", use_external_resource=True, resource_id=iid)
    with pytest.raises(NonRecoverableError, match="does not exist"):
        gone.call("create")
    malformed = node(INSTANCE, "vm", use_external_resource=True, resource_id="not-an-id")
    with pytest.raises(NonRecoverableError, match="not-an-id"):  # AWS: Malformed; moto: not found
        malformed.call("create")
