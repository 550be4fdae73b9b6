"""aws.ec2.ElasticIP (with its association relationships), aws.ec2.VPC and aws.ec2.Subnet."""

from __future__ import annotations

import pytest
from aws_helpers import AMI, aws_answers

from orchestrator import BlueprintError, NonRecoverableError, RecoverableError
from plugins_aws.tags import DEPLOYMENT_TAG

pytestmark = pytest.mark.integration

EIP = "aws.ec2.ElasticIP"
INSTANCE_TO_EIP = "aws.relationships.instance_connected_to_elastic_ip"
EIP_TO_INSTANCE = "aws.relationships.elastic_ip_connected_to_instance"


def _address(ec2, allocation_id):
    return ec2.describe_addresses(AllocationIds=[allocation_id])["Addresses"][0]


def _released(ec2, allocation_id):
    tagged = ec2.describe_addresses(Filters=[{"Name": "allocation-id", "Values": [allocation_id]}])
    return tagged["Addresses"] == []


@pytest.fixture
def running_vm(node):
    vm = node("aws.ec2.Instance", "vm", image_id=AMI, docker_host={"port": 2375})
    vm.call("create")
    vm.call("start")
    yield vm
    vm.call("delete")


def test_allocate_release(node, ec2):
    eip = node(EIP, "eip")
    eip.call("create")
    rt = eip.runtime_properties
    assert rt["aws_resource_id"] == rt["allocation_id"] and rt["public_ip"]
    assert {t["Key"] for t in _address(ec2, rt["allocation_id"])["Tags"]} >= {DEPLOYMENT_TAG}
    eip.call("delete")
    assert _released(ec2, rt["allocation_id"])
    eip.call("delete")


@pytest.mark.parametrize("direction", [INSTANCE_TO_EIP, EIP_TO_INSTANCE])
def test_associate_and_disassociate(aws_orch, node, ec2, running_vm, direction):
    eip = node(EIP, "eip")
    eip.call("create")
    alloc, ip = eip.runtime_properties["allocation_id"], eip.runtime_properties["public_ip"]
    if direction == INSTANCE_TO_EIP:
        rel = aws_orch.relationship(direction, running_vm, eip)
    else:
        rel = aws_orch.relationship(direction, eip, running_vm)
    rel.call("establish")
    rel.call("establish")  # repeated: still one association
    address = _address(ec2, alloc)
    assert address["InstanceId"] == running_vm.runtime_properties["aws_resource_id"]
    assert eip.runtime_properties["association_id"] == address["AssociationId"]
    assert running_vm.runtime_properties["public_ip_address"] == ip
    assert running_vm.runtime_properties["docker_host"]["url"] == f"tcp://{ip}:2375"
    rel.call("unlink")
    assert not _address(ec2, alloc).get("InstanceId")
    assert "association_id" not in eip.runtime_properties
    rel.call("unlink")  # already undone
    eip.call("delete")
    assert _released(ec2, alloc)


def test_delete_disassociates_when_unlink_never_ran(aws_orch, node, ec2, running_vm):
    eip = node(EIP, "eip")
    eip.call("create")
    aws_orch.relationship(INSTANCE_TO_EIP, running_vm, eip).call("establish")
    eip.call("delete")
    assert _released(ec2, eip.runtime_properties["allocation_id"])


def test_association_with_a_fresh_instance_is_retried(aws_orch, node, ec2, running_vm, monkeypatch):
    eip = node(EIP, "eip")
    eip.call("create")
    rel = aws_orch.relationship(INSTANCE_TO_EIP, running_vm, eip)
    with (aws_answers(monkeypatch, "AssociateAddress", "InvalidInstanceID.NotFound"),
          pytest.raises(RecoverableError, match=r"InvalidInstanceID\.NotFound")):
        rel.call("establish")
    rel.call("establish")
    rel.call("unlink")
    eip.call("delete")


def test_use_external_address(aws_orch, node, ec2, running_vm):
    alloc = ec2.allocate_address(Domain="vpc")["AllocationId"]
    eip = node(EIP, "eip", use_external_resource=True, resource_id=alloc)
    eip.call("create")
    rel = aws_orch.relationship(INSTANCE_TO_EIP, running_vm, eip)
    rel.call("establish")
    rel.call("unlink")
    eip.call("delete")
    assert not _released(ec2, alloc)  # adopted: never released
    by_ip = node(EIP, "eip", use_external_resource=True, resource_id=_address(ec2, alloc)["PublicIp"])
    by_ip.call("create")
    assert by_ip.runtime_properties["allocation_id"] == alloc
    ec2.release_address(AllocationId=alloc)
    with pytest.raises(NonRecoverableError, match="does not exist"):
        node(EIP, "eip", use_external_resource=True, resource_id=alloc).call("create")


def test_vpc_and_subnet(node, ec2):
    vpc = node("aws.ec2.VPC", "vpc", cidr_block="10.30.0.0/16", enable_dns_hostnames=True)
    vpc.call("create")
    vpc.call("configure")
    vpc_id = vpc.runtime_properties["aws_resource_id"]
    attr = ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute="enableDnsHostnames")
    assert attr["EnableDnsHostnames"]["Value"] is True
    subnet = node("aws.ec2.Subnet", "sub", cidr_block="10.30.1.0/24", map_public_ip_on_launch=True,
                  relationships=[("aws.relationships.contained_in_vpc", vpc)])
    subnet.call("create")
    subnet.call("configure")
    (desc,) = ec2.describe_subnets(SubnetIds=[subnet.runtime_properties["aws_resource_id"]])["Subnets"]
    assert desc["VpcId"] == vpc_id and desc["MapPublicIpOnLaunch"] is True
    with pytest.raises(NonRecoverableError, match=r"gave up waiting for VPC .* \(DependencyViolation\)"):
        node("aws.ec2.VPC", "vpc", wait_timeout=0, use_external_resource=False, cidr_block="10.30.0.0/16",
             runtime={"aws_resource_id": vpc_id, "external_resource": False}).call("delete")
    subnet.call("delete")
    vpc.call("delete")
    assert ec2.describe_vpcs(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Vpcs"] == []
    vpc.call("delete")
    subnet.call("delete")


def test_network_errors(node, ec2):
    with pytest.raises(BlueprintError, match=r"node template 'vpc\w+': cidr_block is required"):
        node("aws.ec2.VPC", "vpc")  # found at validate time
    with pytest.raises(NonRecoverableError, match="AWS InvalidParameterValue in CreateVpc"):
        node("aws.ec2.VPC", "vpc", cidr_block="10.0.0.0/33").call("create")
    with pytest.raises(NonRecoverableError, match="set vpc_id or contain it"):
        node("aws.ec2.Subnet", "sub", cidr_block="10.0.0.0/24").call("create")
    with pytest.raises(NonRecoverableError, match=r"InvalidVpcID\.NotFound in CreateSubnet"):
        node("aws.ec2.Subnet", "sub", cidr_block="10.0.0.0/24", vpc_id="vpc-0000000000000000a").call("create")


def test_external_vpc(node, ec2):
    default = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    vpc = node("aws.ec2.VPC", "vpc", use_external_resource=True, resource_id=default)
    vpc.call("create")
    vpc.call("configure")
    vpc.call("delete")
    assert ec2.describe_vpcs(VpcIds=[default])["Vpcs"]


def test_association_errors_are_clear(aws_orch, node, ec2):
    eip = node(EIP, "eip")
    eip.call("create")
    never_created = node("aws.ec2.Instance", "vm", image_id=AMI)
    with pytest.raises(NonRecoverableError, match=r"cannot associate: allocation id eipalloc-\S+, instance id None"):
        aws_orch.relationship(INSTANCE_TO_EIP, never_created, eip).call("establish")
    ec2.release_address(AllocationId=eip.runtime_properties["allocation_id"])
    vm = node("aws.ec2.Instance", "vm", image_id=AMI, runtime={"aws_resource_id": "i-0123456789abcdef0"})
    with pytest.raises(NonRecoverableError, match=r"elastic IP eipalloc-\S+ no longer exists"):
        aws_orch.relationship(INSTANCE_TO_EIP, vm, eip).call("establish")
    eip.call("delete")  # released behind our back: still fine
