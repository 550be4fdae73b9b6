"""Cloudify's AWS plugin (1.x ``cloudify.aws.*`` and 3.x ``cloudify.nodes.aws.ec2.*``) run by this plugin.

A Cloudify blueprint importing ``plugin:cloudify-aws-plugin`` or the plugin's YAML URL
gets these types, with Cloudify's property names, and each runs as the orchestrator-aws
type doing the same thing. 3.x puts API arguments in ``resource_config`` (with extra ones
under ``kwargs``, flattened here); 1.x uses plain properties and ``aws_config``. Only the
EC2 resources this plugin manages are provided; the rest of Cloudify's AWS plugin (RDS,
ELB, Lambda, ...) is refused by name.
"""

from __future__ import annotations

from typing import Any

from orchestrator import hookimpl
from orchestrator.cloudify import CloudifyPack, MappingError, PackNode, TypeMapping

_EXTERNAL = """
      use_external_resource: {type: boolean, default: false}
      resource_id: {default: ''}
"""
_OPS = """
    interfaces:
      cloudify.interfaces.lifecycle:
        create: aws.compat.create
        configure: aws.compat.configure
        start: aws.compat.start
        stop: aws.compat.stop
        delete: aws.compat.delete
"""
_V3 = _EXTERNAL + """
      client_config: {default: {}}
      resource_config: {default: {}}
      store_in_runtime_properties: {default: false}
      log_create_response: {default: false}
      create_secret: {default: false}
      secret_name: {default: ''}
      cloudify_tagging: {default: false}
      Tags: {default: []}
"""
_V1 = _EXTERNAL + """
      aws_config: {default: {}}
      tags: {default: {}}
"""
# 3.x types with no property of their own beyond resource_config and the like
_PLAIN_V3 = "".join(f"""  cloudify.nodes.aws.ec2.{name}:
    derived_from: cloudify.nodes.Root
    properties:{_V3}
{_OPS}
""" for name in ("Keypair", "SecurityGroup", "SecurityGroupRuleIngress", "SecurityGroupRuleEgress", "ElasticIP", "Vpc",
                 "Subnet", "InternetGateway", "Interface", "Image", "NATGateway", "RouteTable", "Route"))

TYPES = f"""
plugins:
  aws: {{executor: central_deployment_agent, package_name: cloudify-aws-plugin}}
  awssdk: {{executor: central_deployment_agent, package_name: cloudify-aws-plugin}}
node_types:
  cloudify.aws.nodes.KeyPair:
    derived_from: cloudify.nodes.Root
    properties:{_V1}
      private_key_path: {{}}
{_OPS}
  cloudify.aws.nodes.SecurityGroup:
    derived_from: cloudify.nodes.SecurityGroup
    properties:{_V1}
      description: {{}}
      rules: {{default: []}}
      vpc_id: {{default: ''}}
{_OPS}
  cloudify.aws.nodes.ElasticIP:
    derived_from: cloudify.nodes.VirtualIP
    properties:{_V1}
      domain: {{default: ''}}
{_OPS}
  cloudify.aws.nodes.Instance:
    derived_from: cloudify.nodes.Compute
    properties:{_V1}
      image_id: {{}}
      instance_type: {{}}
      name: {{default: ''}}
      parameters: {{default: {{}}}}
{_OPS}
  cloudify.aws.nodes.VPC:
    derived_from: cloudify.nodes.Network
    properties:{_V1}
      cidr_block: {{}}
      instance_tenancy: {{default: default}}
{_OPS}
  cloudify.aws.nodes.Subnet:
    derived_from: cloudify.nodes.Subnet
    properties:{_V1}
      cidr_block: {{}}
      availability_zone: {{default: ''}}
{_OPS}
  cloudify.nodes.aws.ec2.Instances:
    derived_from: cloudify.nodes.Compute
    properties:{_V3}
      use_public_ip: {{default: false}}
      use_ipv6_ip: {{default: false}}
{_OPS}
  cloudify.nodes.aws.ec2.EBSVolume:
    derived_from: cloudify.nodes.Root
    properties:{_V3}
      device_name: {{default: ''}}
{_OPS}
{_PLAIN_V3}relationships:
  cloudify.relationships.aws.ebs.attachment.connected_to: {{derived_from: cloudify.relationships.connected_to}}
  cloudify.aws.relationships.instance_connected_to_elastic_ip: {{derived_from: cloudify.relationships.connected_to}}
  cloudify.aws.relationships.instance_connected_to_keypair: {{derived_from: cloudify.relationships.connected_to}}
  cloudify.aws.relationships.instance_connected_to_security_group: {{derived_from: cloudify.relationships.connected_to}}
  cloudify.aws.relationships.instance_contained_in_subnet: {{derived_from: cloudify.relationships.contained_in}}
  cloudify.aws.relationships.subnet_contained_in_vpc: {{derived_from: cloudify.relationships.contained_in}}
  cloudify.aws.relationships.security_group_contained_in_vpc: {{derived_from: cloudify.relationships.contained_in}}
"""


def _client(node: PackNode) -> dict[str, Any]:
    """``client_config`` (3.x) or ``aws_config`` (1.x) as this plugin's client_config."""
    props = node.properties
    if "client_config" in props:
        raw = props.get("client_config") or {}
        keys = ("region_name", "aws_access_key_id", "aws_secret_access_key", "aws_session_token", "endpoint_url")
        return {k: raw[k] for k in keys if k in raw and raw[k] not in (None, "")}
    raw = props.get("aws_config") or {}
    out = {k: raw[k] for k in ("aws_access_key_id", "aws_secret_access_key") if raw.get(k)}
    if raw.get("ec2_region_name"):
        out["region_name"] = raw["ec2_region_name"]
    return out


def _config(node: PackNode) -> dict[str, Any]:
    """3.x ``resource_config`` with its ``kwargs`` flattened in (what the API call gets)."""
    raw = node.properties.get("resource_config") or {}
    if not isinstance(raw, dict):
        raise MappingError("resource_config must be a mapping", ["resource_config"])
    flat = {k: v for k, v in raw.items() if k != "kwargs"}
    kwargs = raw.get("kwargs") or {}
    if isinstance(kwargs, dict):
        flat.update(kwargs)
    return flat


def _common(node: PackNode) -> dict[str, Any]:
    props = node.properties
    out: dict[str, Any] = {"client_config": _client(node)}
    if props.get("use_external_resource"):
        out["use_external_resource"] = True
        out["resource_id"] = props.get("resource_id")
    return out


def _v1(node: PackNode) -> bool:
    """A 1.x type (``cloudify.aws.nodes.*``), or one a blueprint derived from it."""
    return any(t.startswith("cloudify.aws.") for t in node.type_hierarchy)


def _drop_empty(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v not in (None, "")}


def _keypair(node: PackNode) -> dict[str, Any]:
    p, c = node.properties, _config(node)
    return _drop_empty({**_common(node), "key_name": c.get("KeyName") or p.get("resource_id") or None,
                        "public_key_material": c.get("PublicKeyMaterial"),
                        "private_key_path": p.get("private_key_path")})


def _security_group(node: PackNode) -> dict[str, Any]:
    p, c = node.properties, _config(node)
    if _v1(node):
        rules = [_v1_rule(r, i) for i, r in enumerate(p.get("rules") or [])]
        return _drop_empty({**_common(node), "group_name": p.get("resource_id") or None,
                            "description": p.get("description"), "vpc_id": p.get("vpc_id"), "rules": rules})
    return _drop_empty({**_common(node), "group_name": c.get("GroupName"), "description": c.get("Description"),
                        "vpc_id": c.get("VpcId")})


def _v1_rule(rule: Any, index: int) -> dict[str, Any]:
    if not isinstance(rule, dict):
        raise MappingError("a rule must be a mapping (ip_protocol, from_port, to_port, cidr_ip)", ["rules", index])
    out = {"ip_protocol": rule.get("ip_protocol", "tcp"), "from_port": rule.get("from_port"),
           "to_port": rule.get("to_port"), "cidr_ip": rule.get("cidr_ip"),
           "source_group_id": rule.get("src_group_id")}
    return _drop_empty(out)


_PEER_KEYS = {"IpRanges": ("CidrIp", "cidr_ip"), "Ipv6Ranges": ("CidrIpv6", "cidr_ipv6"),
              "UserIdGroupPairs": ("GroupId", "source_group_id"), "PrefixListIds": ("PrefixListId", "prefix_list_id")}


def _rule(node: PackNode) -> dict[str, Any]:
    """A 3.x rule node: each peer of each ``IpPermissions`` entry becomes one of our rules."""
    perms = _config(node).get("IpPermissions") or []
    if not isinstance(perms, list) or not perms:
        raise MappingError("resource_config.IpPermissions must be a non-empty list", ["resource_config"])
    out_rules: list[dict[str, Any]] = []
    for i, perm in enumerate(perms):
        if not isinstance(perm, dict):
            raise MappingError(f"IpPermissions[{i}] must be a mapping", ["resource_config"])
        unknown = set(perm) - {"IpProtocol", "FromPort", "ToPort", *_PEER_KEYS}
        if unknown:
            raise MappingError(f"not supported: IpPermissions[{i}]: {', '.join(sorted(map(str, unknown)))}",
                               ["resource_config"])
        base = _drop_empty({"ip_protocol": str(perm.get("IpProtocol", "tcp")), "from_port": perm.get("FromPort"),
                            "to_port": perm.get("ToPort")})
        peers = 0
        for key, (field, ours) in _PEER_KEYS.items():
            for entry in perm.get(key) or []:
                if not isinstance(entry, dict) or entry.get(field) in (None, ""):
                    raise MappingError(f"IpPermissions[{i}].{key}: each entry needs {field}", ["resource_config"])
                out_rules.append({**base, ours: entry[field],
                                  **({"description": entry["Description"]} if entry.get("Description") else {})})
                peers += 1
        if not peers:
            raise MappingError(f"IpPermissions[{i}] names no peer (IpRanges, UserIdGroupPairs, ...)",
                               ["resource_config"])
    direction = "egress" if any(t.endswith("Egress") for t in node.type_hierarchy) else "ingress"
    out = {**_common(node), "rules": out_rules, "direction": direction}
    out.pop("use_external_resource", None)
    out.pop("resource_id", None)
    return out


def _elastic_ip(node: PackNode) -> dict[str, Any]:
    p, c = node.properties, _config(node)
    return _drop_empty({**_common(node), "domain": c.get("Domain") or p.get("domain")})


def _instance(node: PackNode) -> dict[str, Any]:
    p, c = node.properties, _config(node)
    if _v1(node):
        out = {**_common(node), "image_id": p.get("image_id"), "instance_type": p.get("instance_type"),
               "name": p.get("name"), "parameters": {}}
        for key, value in dict(p.get("parameters") or {}).items():
            if key in _V1_OWN:
                out[_V1_OWN[key]] = value
            elif key in _V1_BOTO3:
                out["parameters"][_V1_BOTO3[key]] = value
            elif key == "placement":  # boto 2: the availability zone
                out["parameters"]["Placement"] = {"AvailabilityZone": value}
            elif key == "monitoring_enabled":
                out["parameters"]["Monitoring"] = {"Enabled": value}
            else:
                raise MappingError(f"not supported: parameters.{key} (1.x passed it to boto 2's run_instances; "
                                   f"orchestrator-aws knows {', '.join(sorted({*_V1_OWN, *_V1_BOTO3, 'placement', 'monitoring_enabled'}))})",
                                   ["parameters"])
        return _drop_empty(out)
    extra = {k: v for k, v in c.items() if k not in ("ImageId", "InstanceType", "MinCount", "MaxCount")}
    return _drop_empty({**_common(node), "image_id": c.get("ImageId"), "instance_type": c.get("InstanceType"),
                        "parameters": extra})


# 1.x ``parameters`` were boto 2 ``run_instances`` arguments: ours, or boto3's names for them.
_V1_OWN = {"user_data": "user_data", "key_name": "key_name", "subnet_id": "subnet_id",
           "security_group_ids": "security_group_ids", "instance_type": "instance_type", "image_id": "image_id"}
_V1_BOTO3 = {"kernel_id": "KernelId", "ramdisk_id": "RamdiskId", "private_ip_address": "PrivateIpAddress",
             "ebs_optimized": "EbsOptimized", "instance_initiated_shutdown_behavior": "InstanceInitiatedShutdownBehavior",
             "disable_api_termination": "DisableApiTermination", "dry_run": "DryRun"}


def _vpc(node: PackNode) -> dict[str, Any]:
    p, c = node.properties, _config(node)
    return _drop_empty({**_common(node), "cidr_block": c.get("CidrBlock") or p.get("cidr_block")})


def _subnet(node: PackNode) -> dict[str, Any]:
    p, c = node.properties, _config(node)
    return _drop_empty({**_common(node), "cidr_block": c.get("CidrBlock") or p.get("cidr_block"),
                        "vpc_id": c.get("VpcId"),
                        "availability_zone": c.get("AvailabilityZone") or p.get("availability_zone")})


def _internet_gateway(node: PackNode) -> dict[str, Any]:
    return _drop_empty({**_common(node), "vpc_id": _config(node).get("VpcId")})


def _volume(node: PackNode) -> dict[str, Any]:
    c = _config(node)
    tags: dict[str, Any] = {}
    for spec in c.get("TagSpecifications") or []:  # user tags ride here in 3.x (ours are added anyway)
        if isinstance(spec, dict):
            tags.update({t["Key"]: t.get("Value", "") for t in spec.get("Tags") or []
                         if isinstance(t, dict) and t.get("Key")})
    unknown = set(c) - {"AvailabilityZone", "Size", "VolumeType", "TagSpecifications"}
    if unknown:
        raise MappingError(f"not supported: resource_config.{sorted(unknown)[0]} (orchestrator-aws makes a volume "
                           "of a size, type and zone)", ["resource_config"])
    return _drop_empty({**_common(node), "availability_zone": c.get("AvailabilityZone"), "size": c.get("Size"),
                        "volume_type": c.get("VolumeType"), "tags": tags or None,
                        "device": node.properties.get("device_name")})


def _interface(node: PackNode) -> dict[str, Any]:
    c = _config(node)
    groups = c.get("Groups")
    if groups is not None and not isinstance(groups, list):
        raise MappingError("resource_config Groups must be a list", ["resource_config"])
    return _drop_empty({**_common(node), "subnet_id": c.get("SubnetId"), "security_group_ids": groups or None,
                        "description": c.get("Description"), "private_ip_address": c.get("PrivateIpAddress")})


def _image(node: PackNode) -> dict[str, Any]:
    c, p = _config(node), node.properties
    filters: dict[str, Any] = {}
    for i, entry in enumerate(c.get("Filters") or []):
        if not isinstance(entry, dict) or not entry.get("Name"):
            raise MappingError(f"resource_config Filters[{i}] needs Name and Values", ["resource_config"])
        filters[str(entry["Name"])] = entry.get("Values") or []
    ids = c.get("ImageIds") or ([p["resource_id"]] if p.get("use_external_resource") and p.get("resource_id")
                                else [])
    out = {"client_config": _client(node), "filters": filters or None, "owners": c.get("Owners") or None,
           "image_id": ids[0] if ids else None}
    return _drop_empty(out)


def _nat_gateway(node: PackNode) -> dict[str, Any]:
    c = _config(node)
    return _drop_empty({**_common(node), "subnet_id": c.get("SubnetId"), "allocation_id": c.get("AllocationId"),
                        "connectivity_type": c.get("ConnectivityType")})


def _route_table(node: PackNode) -> dict[str, Any]:
    c = _config(node)
    subnet = c.get("SubnetId")
    return _drop_empty({**_common(node), "vpc_id": c.get("VpcId"), "subnet_ids": [subnet] if subnet else None})


_ROUTE_TARGETS = ("InstanceId", "NetworkInterfaceId", "VpcPeeringConnectionId", "TransitGatewayId",
                  "EgressOnlyInternetGatewayId", "CarrierGatewayId", "LocalGatewayId", "VpcEndpointId",
                  "DestinationIpv6CidrBlock", "DestinationPrefixListId")


def _route(node: PackNode) -> dict[str, Any]:
    c = _config(node)
    other = [k for k in _ROUTE_TARGETS if c.get(k)]
    if other:
        raise MappingError(f"not supported: resource_config.{other[0]} (orchestrator-aws routes an IPv4 block "
                           "through an internet or NAT gateway)", ["resource_config"])
    if not c.get("DestinationCidrBlock"):
        raise MappingError("resource_config.DestinationCidrBlock is required", ["resource_config"])
    out = {**_common(node), "destination_cidr_block": c.get("DestinationCidrBlock"),
           "route_table_id": c.get("RouteTableId"), "gateway_id": c.get("GatewayId"),
           "nat_gateway_id": c.get("NatGatewayId")}
    out.pop("use_external_resource", None)  # a route has no id to adopt
    out.pop("resource_id", None)
    return _drop_empty(out)


_TO_INSTANCE = {"cloudify.aws.nodes.Instance": "aws.relationships.elastic_ip_connected_to_instance",
                "cloudify.nodes.aws.ec2.Instances": "aws.relationships.elastic_ip_connected_to_instance",
                "cloudify.nodes.aws.ec2.Interface": "aws.relationships.elastic_ip_connected_to_network_interface"}
_FROM_INSTANCE = {
    "cloudify.aws.nodes.ElasticIP": "aws.relationships.instance_connected_to_elastic_ip",
    "cloudify.nodes.aws.ec2.ElasticIP": "aws.relationships.instance_connected_to_elastic_ip",
    "cloudify.aws.nodes.KeyPair": "aws.relationships.instance_uses_keypair",
    "cloudify.nodes.aws.ec2.Keypair": "aws.relationships.instance_uses_keypair",
    "cloudify.aws.nodes.SecurityGroup": "aws.relationships.instance_in_security_group",
    "cloudify.nodes.aws.ec2.SecurityGroup": "aws.relationships.instance_in_security_group",
}

PACK = CloudifyPack(
    name="cloudify-aws-plugin",
    imports=(r"https?://[^ ]*cloudify-aws-plugin/[^ ]*/(v2_)?plugin(_1_[45])?\.yaml",
             r"https?://(www\.)?getcloudify\.org/spec/aws-plugin/[^/]+/plugin\.yaml"),
    types=TYPES,
    mappings={
        "cloudify.aws.nodes.KeyPair": TypeMapping("aws.ec2.KeyPair", _keypair),
        "cloudify.nodes.aws.ec2.Keypair": TypeMapping("aws.ec2.KeyPair", _keypair),
        "cloudify.aws.nodes.SecurityGroup": TypeMapping("aws.ec2.SecurityGroup", _security_group),
        "cloudify.nodes.aws.ec2.SecurityGroup": TypeMapping("aws.ec2.SecurityGroup", _security_group),
        "cloudify.nodes.aws.ec2.SecurityGroupRuleIngress": TypeMapping("aws.ec2.SecurityGroupRules", _rule),
        "cloudify.nodes.aws.ec2.SecurityGroupRuleEgress": TypeMapping("aws.ec2.SecurityGroupRules", _rule),
        "cloudify.aws.nodes.ElasticIP": TypeMapping("aws.ec2.ElasticIP", _elastic_ip,
                                                    attributes={"aws_resource_id": "public_ip"},
                                                    relationships=_TO_INSTANCE),
        "cloudify.nodes.aws.ec2.ElasticIP": TypeMapping("aws.ec2.ElasticIP", _elastic_ip,
                                                        relationships=_TO_INSTANCE),
        "cloudify.aws.nodes.Instance": TypeMapping("aws.ec2.Instance", _instance, relationships=_FROM_INSTANCE),
        "cloudify.nodes.aws.ec2.Instances": TypeMapping("aws.ec2.Instance", _instance, relationships=_FROM_INSTANCE),
        "cloudify.aws.nodes.VPC": TypeMapping("aws.ec2.VPC", _vpc),
        "cloudify.nodes.aws.ec2.Vpc": TypeMapping("aws.ec2.VPC", _vpc),
        "cloudify.aws.nodes.Subnet": TypeMapping("aws.ec2.Subnet", _subnet),
        "cloudify.nodes.aws.ec2.Subnet": TypeMapping("aws.ec2.Subnet", _subnet),
        "cloudify.nodes.aws.ec2.InternetGateway": TypeMapping("aws.ec2.InternetGateway", _internet_gateway),
        "cloudify.nodes.aws.ec2.NATGateway": TypeMapping("aws.ec2.NatGateway", _nat_gateway),
        "cloudify.nodes.aws.ec2.Image": TypeMapping("aws.ec2.Image", _image),
        "cloudify.nodes.aws.ec2.Interface": TypeMapping("aws.ec2.NetworkInterface", _interface),
        "cloudify.nodes.aws.ec2.EBSVolume": TypeMapping("aws.ec2.Volume", _volume),
        "cloudify.nodes.aws.ec2.RouteTable": TypeMapping("aws.ec2.RouteTable", _route_table),
        "cloudify.nodes.aws.ec2.Route": TypeMapping("aws.ec2.Route", _route),
        "cloudify.aws.relationships.instance_connected_to_elastic_ip":
            TypeMapping("aws.relationships.instance_connected_to_elastic_ip"),
        "cloudify.aws.relationships.instance_connected_to_keypair": TypeMapping("aws.relationships.instance_uses_keypair"),
        "cloudify.aws.relationships.instance_connected_to_security_group":
            TypeMapping("aws.relationships.instance_in_security_group"),
        "cloudify.aws.relationships.instance_contained_in_subnet":
            TypeMapping("aws.relationships.instance_contained_in_subnet"),
        "cloudify.aws.relationships.subnet_contained_in_vpc": TypeMapping("aws.relationships.contained_in_vpc"),
        "cloudify.relationships.aws.ebs.attachment.connected_to":
            TypeMapping("aws.relationships.volume_attached_to_instance"),
    },
    unsupported={"cloudify.relationships.aws.*": "orchestrator-aws runs the relationships of EC2 key pairs, "
                                                 "security groups, elastic IPs, instances, VPCs, subnets and EBS volumes only",
                 "cloudify.nodes.aws.*": "orchestrator-aws runs EC2 key pairs, security groups and rules, elastic "
                                         "IPs, instances, images (looked up), network interfaces, EBS volumes, "
                                         "VPCs, subnets, internet and NAT gateways, route tables and routes "
                                         "only",
                 "cloudify.aws.nodes.*": "orchestrator-aws runs EC2 key pairs, security groups, elastic IPs, "
                                         "instances, VPCs and subnets only",
                 # the same plugin's other families: S3 through Swift, and the account resource
                 "cloudify.nodes.swift.*": "orchestrator-aws runs EC2 resources only (no S3 through Swift)",
                 "cloudify.nodes.resources.AmazonWebServices": "orchestrator-aws runs EC2 resources only (no "
                                                               "account-wide resource)"},
    description="Cloudify AWS plugin 1.x and 3.x (EC2)",
)


@hookimpl
def cloudify_packs() -> list[CloudifyPack]:
    return [PACK]
