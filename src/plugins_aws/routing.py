"""The ``aws_routing`` plugin: internet and NAT gateways, route tables and routes.

What a public subnet needs besides its VPC: an ``aws.ec2.InternetGateway`` attached to the
VPC, an ``aws.ec2.RouteTable`` associated with the subnet, and an ``aws.ec2.Route``
(``0.0.0.0/0``) through the gateway; a private subnet's route goes through an
``aws.ec2.NatGateway`` standing in a public subnet with an elastic IP. Each finds what it
works on through its relationships, by node type, or a property naming the id: a gateway
its VPC (``vpc_id``); a NAT gateway its subnet and address (``subnet_id``,
``allocation_id``); a table its VPC and the subnets it serves (``subnet_ids``); a route
its table (``contained_in`` it, or ``route_table_id``) and its target (``gateway_id`` or
``nat_gateway_id``).

A gateway is attached and a table associated on ``configure`` (after the VPC and the
subnets exist); delete detaches and disassociates first. A route has no id and carries
no tags: it is recorded as ``TABLE:DESTINATION``, and a route that was there before this
node (same table, same destination, same gateway) is used and left in place by uninstall,
while one through another gateway is refused. A crash between ``create_route`` and its
record is told apart from that by the intent saved just before.

Day 2: gateways and tables change their tags in place; everything else (and any change
of a route) replaces them. ``check_drift`` reports a detached gateway, a lost
association or a route gone or sent elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from orchestrator import NodeTemplateInfo, NonRecoverableError
from orchestrator.sdk import Plugin, Problem, Resource
from plugins_aws.changes import differs
from plugins_aws.errors import call
from plugins_aws.network import SUBNET_TYPE, VPC_TYPE
from plugins_aws.related import RESOURCE_ID, host_id, one_target_id, target_ids
from plugins_aws.resource import AwsResource, Ec2Client
from plugins_aws.schema import CLIENT_PROPERTIES, replaced, resource_properties

GATEWAY_TYPE = "aws.ec2.InternetGateway"
NAT_TYPE = "aws.ec2.NatGateway"
NAT_GONE_STATES = ("deleting", "deleted", "failed")
TABLE_TYPE = "aws.ec2.RouteTable"
ROUTE_TYPE = "aws.ec2.Route"

TYPES: dict[str, Any] = {
    "node_types": {
        GATEWAY_TYPE: {
            "derived_from": "orchestrator.nodes.Root",
            "description": "An internet gateway, attached to the VPC it is related to (or vpc_id).",
            "properties": resource_properties({
                "vpc_id": replaced({"type": "string", "required": False,
                                    "description": "The VPC to attach to, unless related to an aws.ec2.VPC."}),
            }),
        },
        NAT_TYPE: {
            "derived_from": "orchestrator.nodes.Root",
            "description": "A NAT gateway in the subnet it is related to, with the related elastic IP's address.",
            "properties": resource_properties({
                "subnet_id": replaced({"type": "string", "required": False,
                                       "description": "Its (public) subnet, unless related to an aws.ec2.Subnet."}),
                "allocation_id": replaced({"type": "string", "required": False,
                                           "description": "Its address, unless related to an aws.ec2.ElasticIP."}),
                "connectivity_type": replaced({"type": "string", "default": "public",
                                               "constraints": [{"valid_values": ["public", "private"]}]}),
            }),
        },
        TABLE_TYPE: {
            "derived_from": "orchestrator.nodes.Root",
            "description": "A route table of a VPC, associated with the subnets it is related to.",
            "properties": resource_properties({
                "vpc_id": replaced({"type": "string", "required": False,
                                    "description": "Its VPC, unless related to an aws.ec2.VPC."}),
                "subnet_ids": replaced({"type": "list", "entry_schema": "string", "default": [],
                                        "description": "Subnets to associate, besides related aws.ec2.Subnets."}),
            }),
        },
        ROUTE_TYPE: {
            "derived_from": "orchestrator.nodes.Root",
            "description": "A route of a route table through an internet or NAT gateway.",
            "properties": {
                **CLIENT_PROPERTIES,
                "destination_cidr_block": replaced({"type": "string", "required": True,
                                                    "description": "e.g. 0.0.0.0/0"}),
                "route_table_id": replaced({"type": "string", "required": False,
                                            "description": "Its table, unless contained in an aws.ec2.RouteTable."}),
                "gateway_id": replaced({"type": "string", "required": False,
                                        "description": "Its internet gateway (or related aws.ec2.InternetGateway)."}),
                "nat_gateway_id": replaced({"type": "string", "required": False,
                                            "description": "Or its NAT gateway (or related aws.ec2.NatGateway)."}),
            },
        },
    },
}


def _attached_vpcs(gateway: dict[str, Any]) -> list[str]:
    return [a["VpcId"] for a in gateway.get("Attachments") or [] if a.get("State") in ("attached", "available",
                                                                                       "attaching", None)]


class InternetGateway(AwsResource):
    kind = "internet gateway"
    tag_resource_types = ("internet-gateway",)
    api = ("describe_internet_gateways", "InternetGatewayIds", "InternetGateways",
           ("InvalidInternetGatewayID.NotFound",))

    def id_of(self, resource: dict[str, Any]) -> str:
        return resource["InternetGatewayId"]

    def runtime_of(self, resource: dict[str, Any]) -> dict[str, Any]:
        vpcs = _attached_vpcs(resource)
        return {"internet_gateway_id": resource["InternetGatewayId"], "vpc_id": vpcs[0] if vpcs else None}

    def create_new(self) -> dict[str, Any]:
        return call(self.client.create_internet_gateway, TagSpecifications=self.tag_specifications())[
            "InternetGateway"]

    def vpc(self) -> str | None:
        return self.properties.get("vpc_id") or one_target_id(self.ctx, VPC_TYPE, "VPC")

    def configure(self) -> None:
        rid, vpc = self.require_id(), self.vpc()
        if vpc is None:
            self.logger.info("internet gateway %s: no VPC to attach to (relate it to an %s or set vpc_id)",
                             rid, VPC_TYPE)
            return
        attached = _attached_vpcs(self.describe(rid) or {})
        if vpc in attached:
            self.save(vpc_id=vpc)
            return
        if attached:
            raise NonRecoverableError(f"internet gateway {rid} is attached to {attached[0]}, not {vpc}")
        call(self.client.attach_internet_gateway, InternetGatewayId=rid, VpcId=vpc)
        self.save(vpc_id=vpc, attached=True)  # ours to undo, even on an adopted gateway
        self.logger.info("internet gateway %s attached to %s", rid, vpc)

    def delete(self) -> None:
        if self.external and self.runtime.get("attached") and self.resource_id:
            call(self.client.detach_internet_gateway, ignore=("Gateway.NotAttached",
                                                              "InvalidInternetGatewayID.NotFound"),
                 InternetGatewayId=self.resource_id, VpcId=self.runtime.get("vpc_id"))
            self.logger.info("adopted internet gateway %s detached from %s", self.resource_id,
                             self.runtime.get("vpc_id"))
        super().delete()

    def delete_existing(self, resource_id: str) -> None:
        for vpc in _attached_vpcs(self.describe(resource_id) or {}):
            self.delete_when_free(self.client.detach_internet_gateway, f"internet gateway {resource_id}",
                                  ("Gateway.NotAttached", "InvalidInternetGatewayID.NotFound"),
                                  InternetGatewayId=resource_id, VpcId=vpc)
        self.delete_when_free(self.client.delete_internet_gateway, f"internet gateway {resource_id}",
                              ("InvalidInternetGatewayID.NotFound",), InternetGatewayId=resource_id)

    def drift_of(self, resource: dict[str, Any]) -> dict[str, Any]:
        wanted, attached = self.runtime.get("vpc_id"), _attached_vpcs(resource)
        if wanted and wanted not in attached:
            return {"vpc_id": differs(wanted, attached[0] if attached else None)}
        return {}


class NatGateway(AwsResource):
    kind = "NAT gateway"
    tag_resource_types = ("natgateway",)
    api = ("describe_nat_gateways", "NatGatewayIds", "NatGateways", ("NatGatewayNotFound",))
    filter_parameter = "Filter"

    def id_of(self, resource: dict[str, Any]) -> str:
        return resource["NatGatewayId"]

    def is_gone(self, resource: dict[str, Any]) -> bool:
        return resource.get("State") in NAT_GONE_STATES

    def state_of(self, resource: dict[str, Any]) -> str:
        return str(resource.get("State"))

    def runtime_of(self, resource: dict[str, Any]) -> dict[str, Any]:
        addresses = resource.get("NatGatewayAddresses") or [{}]
        return {"nat_gateway_id": resource["NatGatewayId"], "subnet_id": resource.get("SubnetId"),
                "vpc_id": resource.get("VpcId"), "public_ip": addresses[0].get("PublicIp"),
                "private_ip": addresses[0].get("PrivateIp")}

    def create_new(self) -> dict[str, Any]:
        from plugins_aws.elastic_ip import TYPE as EIP_TYPE

        subnet = self.properties.get("subnet_id") or one_target_id(self.ctx, SUBNET_TYPE, "subnet")
        if not subnet:
            raise NonRecoverableError(f"NAT gateway: set subnet_id or relate it to an {SUBNET_TYPE}")
        connectivity = self.properties.get("connectivity_type", "public")
        allocation = None
        if connectivity == "public":  # a private one takes no address (AWS refuses one)
            allocation = self.properties.get("allocation_id") or one_target_id(self.ctx, EIP_TYPE, "elastic IP")
        if connectivity == "public" and not allocation:
            raise NonRecoverableError(f"a public NAT gateway needs an address: set allocation_id or relate it to "
                                      f"an {EIP_TYPE}")
        return call(self.client.create_nat_gateway, SubnetId=subnet, ConnectivityType=connectivity,
                    TagSpecifications=self.tag_specifications(),
                    **({"AllocationId": allocation} if allocation else {}))["NatGateway"]

    def configure(self) -> None:
        rid = self.require_id()

        def settled() -> dict[str, Any] | None:
            found = self.describe(rid)
            return found if (found or {}).get("State") in ("available", "failed") else None

        found = self.wait(settled, f"NAT gateway {rid} to be available")
        if found.get("State") == "failed":
            raise NonRecoverableError(f"NAT gateway {rid} failed: {found.get('FailureMessage') or 'no reason given'}")
        self.save(**self.runtime_of(found))

    def delete_existing(self, resource_id: str) -> None:
        call(self.client.delete_nat_gateway, ignore=("NatGatewayNotFound",), NatGatewayId=resource_id)
        # Its address and subnet are free only once it is gone: wait, so what it stood on can go next.
        self.wait(lambda: (self.describe(resource_id) or {}).get("State", "deleted") == "deleted",
                  f"NAT gateway {resource_id} to be deleted")


class RouteTable(AwsResource):
    kind = "route table"
    tag_resource_types = ("route-table",)
    api = ("describe_route_tables", "RouteTableIds", "RouteTables", ("InvalidRouteTableID.NotFound",))

    def id_of(self, resource: dict[str, Any]) -> str:
        return resource["RouteTableId"]

    def runtime_of(self, resource: dict[str, Any]) -> dict[str, Any]:
        return {"route_table_id": resource["RouteTableId"], "vpc_id": resource.get("VpcId")}

    def create_new(self) -> dict[str, Any]:
        vpc = self.properties.get("vpc_id") or one_target_id(self.ctx, VPC_TYPE, "VPC")
        if not vpc:
            raise NonRecoverableError(f"route table: set vpc_id or relate it to an {VPC_TYPE}")
        return call(self.client.create_route_table, VpcId=vpc, TagSpecifications=self.tag_specifications())[
            "RouteTable"]

    def subnets(self) -> list[str]:
        return list(dict.fromkeys([*(self.properties.get("subnet_ids") or []), *target_ids(self.ctx, SUBNET_TYPE)]))

    def configure(self) -> None:
        rid = self.require_id()
        associated = {a.get("SubnetId") for a in (self.describe(rid) or {}).get("Associations") or []}
        made = dict(self.runtime.get("associations") or {})  # subnet -> association id: ours to undo
        for subnet in self.subnets():
            if subnet in associated:
                continue
            answer = call(self.client.associate_route_table, RouteTableId=rid, SubnetId=subnet)
            made[subnet] = answer["AssociationId"]
            self.save(associations=made)
            self.logger.info("route table %s associated with %s", rid, subnet)
        self.save(subnet_ids=self.subnets())

    def delete(self) -> None:
        if self.external:
            for subnet, association in (self.runtime.get("associations") or {}).items():
                call(self.client.disassociate_route_table, ignore=("InvalidAssociationID.NotFound",),
                     AssociationId=association)
                self.logger.info("adopted route table %s no longer associated with %s", self.resource_id, subnet)
        super().delete()

    def delete_existing(self, resource_id: str) -> None:
        table = self.describe(resource_id)
        if table is None:
            return
        for association in table.get("Associations") or []:
            if association.get("SubnetId") and not association.get("Main"):
                call(self.client.disassociate_route_table, ignore=("InvalidAssociationID.NotFound",),
                     AssociationId=association["RouteTableAssociationId"])
        self.delete_when_free(self.client.delete_route_table, f"route table {resource_id}",
                              ("InvalidRouteTableID.NotFound",), RouteTableId=resource_id)

    def drift_of(self, resource: dict[str, Any]) -> dict[str, Any]:
        associated = {a.get("SubnetId") for a in resource.get("Associations") or []}
        lost = [s for s in self.runtime.get("subnet_ids") or [] if s not in associated]
        return {"subnet_ids": differs(self.runtime.get("subnet_ids"), sorted(s for s in associated if s))} if lost \
            else {}


class Route(Ec2Client, Resource):
    """One route: recorded as ``TABLE:DESTINATION`` (routes have neither ids nor tags)."""

    INTENT = "creating_route"  # saved just before create_route: a route found later is ours

    @classmethod
    def validate(cls, node: NodeTemplateInfo) -> Iterable[Problem]:
        cidr = node.properties.get("destination_cidr_block")
        if isinstance(cidr, str) and "/" not in cidr:
            return [("destination_cidr_block", f"'{cidr}' is not a CIDR block (e.g. 0.0.0.0/0)")]
        return []


    def _table(self) -> str:
        table = self.properties.get("route_table_id") or host_id(self.ctx, TABLE_TYPE) or one_target_id(
            self.ctx, TABLE_TYPE, "route table")
        if not table:
            raise NonRecoverableError(f"route: set route_table_id or contain it in an {TABLE_TYPE}")
        return str(table)

    def _target(self) -> tuple[str, str]:
        """(the API's name for the target, its id): an internet gateway or a NAT gateway."""
        internet = self.properties.get("gateway_id") or one_target_id(self.ctx, GATEWAY_TYPE, "internet gateway")
        nat = self.properties.get("nat_gateway_id") or one_target_id(self.ctx, NAT_TYPE, "NAT gateway")
        if internet and nat:
            raise NonRecoverableError("route: through an internet gateway or a NAT gateway, not both")
        if not (internet or nat):
            raise NonRecoverableError(f"route: set gateway_id or nat_gateway_id, or relate it to an {GATEWAY_TYPE} "
                                      f"or an {NAT_TYPE}")
        return ("GatewayId", str(internet)) if internet else ("NatGatewayId", str(nat))

    def _current(self, table: str, destination: str) -> dict[str, Any] | None:
        found = call(self.client.describe_route_tables, ignore=("InvalidRouteTableID.NotFound",),
                     RouteTableIds=[table])
        for t in (found or {}).get("RouteTables") or []:
            for route in t.get("Routes") or []:
                if route.get("DestinationCidrBlock") == destination:
                    return route
        return None

    def create(self) -> None:
        table, (key, target) = self._table(), self._target()
        destination = str(self.properties["destination_cidr_block"])
        rid = f"{table}:{destination}"
        record = {RESOURCE_ID: rid, "route_table_id": table, "destination_cidr_block": destination,
                  "target": target}
        existing = self._current(table, destination)
        if existing is not None:
            if _target_of(existing) != target:
                raise NonRecoverableError(f"route table {table} already routes {destination} through "
                                          f"{_target_of(existing) or 'another target'}, not {target}")
            ours = self.runtime.get(self.INTENT) == rid or self.runtime.get(RESOURCE_ID) == rid
            self.save(**record, preexisting=not ours)
            self.logger.info("route %s through %s %s", rid, target, "resumed" if ours else "was there already: "
                             "used, and left in place by uninstall")
            return
        self.save(**{self.INTENT: rid})
        call(self.client.create_route, RouteTableId=table, DestinationCidrBlock=destination, **{key: target})
        self.save(**record, preexisting=False)
        self.logger.info("created route %s through %s", rid, target)

    def delete(self) -> None:
        rid = self.runtime.get(RESOURCE_ID) or self.runtime.get(self.INTENT)
        if not rid or self.runtime.get("preexisting"):
            if rid:
                self.logger.info("route %s was there before: left in place", rid)
            return
        table, _, destination = str(rid).partition(":")
        call(self.client.delete_route, ignore=("InvalidRoute.NotFound", "InvalidRouteTableID.NotFound"),
             RouteTableId=table, DestinationCidrBlock=destination)
        for key in (RESOURCE_ID, self.INTENT):
            self.runtime.pop(key, None)
        self.logger.info("deleted route %s", rid)

    def check_drift(self) -> dict[str, Any] | None:
        rid = self.runtime.get(RESOURCE_ID)
        if not rid:
            return None
        table, _, destination = str(rid).partition(":")
        route = self._current(table, destination)
        if route is None:
            return {"gone": f"route {rid} no longer exists"}
        if _target_of(route) != self.runtime.get("target"):
            return {"target": differs(self.runtime.get("target"), _target_of(route))}
        return None


def _target_of(route: dict[str, Any]) -> str | None:
    """Where a route sends its traffic (a gateway id, a NAT gateway id, ...)."""
    for key in ("GatewayId", "NatGatewayId", "InstanceId", "NetworkInterfaceId", "VpcPeeringConnectionId",
                "TransitGatewayId"):
        if route.get(key):
            return str(route[key])
    return None


plugin = Plugin(TYPES, {GATEWAY_TYPE: InternetGateway, NAT_TYPE: NatGateway, TABLE_TYPE: RouteTable,
                        ROUTE_TYPE: Route})
