"""Helpers for tests and conformance checks: what exists in AWS for a deployment.

``list_resources`` finds resources by the ``orchestrator.deployment`` tag every created
resource carries, so "nothing leaked" is one assertion::

    assert not any(list_resources("my-deployment").values())
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plugins_aws import (
    base,
    elastic_ip,
    image,
    instance,
    interface,
    keypair,
    network,
    routing,
    security_group,
    volume,
)
from plugins_aws.client import ec2_client
from plugins_aws.errors import paginate
from plugins_aws.tags import DEPLOYMENT_TAG

PLUGINS: tuple[object, ...] = tuple(m.plugin for m in (base, keypair, security_group, instance, elastic_ip, network,
                                                       routing, image, interface, volume))
"""Every plugin of the distribution (what its entry points name), for ``orch.use(*PLUGINS)`` in tests."""

LIVE_INSTANCE_STATES = ["pending", "running", "stopping", "stopped", "shutting-down"]
GONE_NAT = routing.NAT_GONE_STATES


def list_resources(deployment_id: str, client_config: Mapping[str, Any] | None = None) -> dict[str, list[str]]:
    """Ids of everything tagged with ``deployment_id``, by kind (terminated instances excluded).

    Keys: instances, key_pairs, security_groups, security_group_rules, addresses, vpcs,
    subnets, internet_gateways, route_tables (routes go with their table), nat_gateways,
    network_interfaces, volumes. Uses the same client configuration rules as the plugin (boto3's chain,
    ``AWS_ENDPOINT_URL``, or ``client_config``).
    """
    client = ec2_client(client_config)
    tagged = [{"Name": f"tag:{DEPLOYMENT_TAG}", "Values": [deployment_id]}]
    reservations = paginate(client, "describe_instances", "Reservations",
                            Filters=[*tagged, {"Name": "instance-state-name", "Values": LIVE_INSTANCE_STATES}])
    return {
        "instances": [i["InstanceId"] for r in reservations for i in r["Instances"]],
        "key_pairs": [k["KeyName"] for k in client.describe_key_pairs(Filters=tagged)["KeyPairs"]],
        "security_groups": [g["GroupId"] for g in paginate(client, "describe_security_groups",
                                                             "SecurityGroups", Filters=tagged)],
        "security_group_rules": [r["SecurityGroupRuleId"] for r in paginate(
            client, "describe_security_group_rules", "SecurityGroupRules", Filters=tagged)],
        "addresses": [a["AllocationId"] for a in client.describe_addresses(Filters=tagged)["Addresses"]],
        "vpcs": [v["VpcId"] for v in paginate(client, "describe_vpcs", "Vpcs", Filters=tagged)],
        "subnets": [s["SubnetId"] for s in paginate(client, "describe_subnets", "Subnets", Filters=tagged)],
        "internet_gateways": [g["InternetGatewayId"] for g in paginate(client, "describe_internet_gateways",
                                                                        "InternetGateways", Filters=tagged)],
        "route_tables": [t["RouteTableId"] for t in paginate(client, "describe_route_tables", "RouteTables",
                                                             Filters=tagged)],
        "nat_gateways": [g["NatGatewayId"] for g in paginate(client, "describe_nat_gateways", "NatGateways",
                                                             Filter=tagged) if g.get("State") not in GONE_NAT],
        "network_interfaces": [n["NetworkInterfaceId"] for n in paginate(client, "describe_network_interfaces",
                                                                         "NetworkInterfaces", Filters=tagged)],
        "volumes": [v["VolumeId"] for v in paginate(client, "describe_volumes", "Volumes", Filters=tagged)
                    if v.get("State") not in ("deleting", "deleted") and not root_volume(v)],
    }


def root_volume(volume: Mapping[str, Any]) -> bool:
    """A volume an instance was launched with (it goes with the instance), not one of its own."""
    return any(a.get("DeleteOnTermination") or a.get("Device") in ("/dev/sda1", "/dev/xvda")
               for a in volume.get("Attachments") or [])


def leaked(deployment_id: str, client_config: Mapping[str, Any] | None = None) -> dict[str, list[str]]:
    """``list_resources`` without the empty kinds: ``{}`` when nothing is left."""
    return {kind: ids for kind, ids in list_resources(deployment_id, client_config).items() if ids}
