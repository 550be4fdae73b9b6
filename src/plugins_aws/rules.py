"""Security group rules: the blueprint's rule fields as EC2 ``IpPermissions``.

Authorizing is idempotent (a duplicate rule is the goal already reached) and so is
revoking (a missing rule or group is the goal already reached), so retries and resumes
never fail on their own earlier progress. A duplicate may also be someone else's rule,
though: ``matches`` compares a rule AWS describes with an ``IpPermission``, so callers can
tell their own (tagged) rules from rules that existed before them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from orchestrator import NonRecoverableError
from plugins_aws.errors import call, paginate

RULE_DATA_TYPE = "aws.datatypes.SecurityGroupRule"

RULE_FIELDS: dict[str, Any] = {
    "ip_protocol": {"type": "string", "default": "tcp",
                    "description": "tcp, udp, icmp, icmpv6, a protocol number, or -1 (all)."},
    "port": {"type": "integer", "required": False, "description": "One port (from_port = to_port)."},
    "from_port": {"type": "integer", "required": False},
    "to_port": {"type": "integer", "required": False, "description": "Defaults to from_port."},
    "cidr_ip": {"type": "string", "required": False, "description": "An IPv4 range, e.g. 0.0.0.0/0."},
    "cidr_ipv6": {"type": "string", "required": False},
    "source_group_id": {"type": "string", "required": False,
                        "description": "Another security group (for egress: the destination)."},
    "prefix_list_id": {"type": "string", "required": False},
    "description": {"type": "string", "required": False},
}

DATA_TYPES: dict[str, Any] = {
    RULE_DATA_TYPE: {
        "description": "One ingress or egress rule: protocol, port range and one peer.",
        "properties": RULE_FIELDS,
    },
}

_PORTED = {"tcp", "udp", "6", "17"}
_ICMP = {"icmp", "icmpv6", "1", "58"}
_PEERS = {
    "cidr_ip": ("IpRanges", "CidrIp"),
    "cidr_ipv6": ("Ipv6Ranges", "CidrIpv6"),
    "source_group_id": ("UserIdGroupPairs", "GroupId"),
    "prefix_list_id": ("PrefixListIds", "PrefixListId"),
}


class BadRule(ValueError):
    """A rule that AWS would refuse, whatever the state of the account."""


def ip_permission(rule: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The ``IpPermissions`` entry for one rule; a clear error for an incomplete one."""
    try:
        return to_permission(rule)
    except BadRule as exc:
        raise NonRecoverableError(f"{where}: {exc}") from None


def problem(rule: Mapping[str, Any]) -> str | None:
    """Why AWS would refuse ``rule`` (checked at validate time); None if it may work."""
    try:
        to_permission(rule)
    except BadRule as exc:
        return str(exc)
    return None


def to_permission(rule: Mapping[str, Any]) -> dict[str, Any]:
    """The ``IpPermissions`` entry for one rule, or ``BadRule`` saying what is wrong."""
    proto = str(rule.get("ip_protocol") or "tcp").lower()
    proto = "-1" if proto == "all" else proto
    low, high, port = rule.get("from_port"), rule.get("to_port"), rule.get("port")
    if port is not None:
        if low is not None or high is not None:
            raise BadRule("give either port or from_port/to_port, not both")
        low = high = port
    result: dict[str, Any] = {"IpProtocol": proto}
    if low is not None:
        result["FromPort"], result["ToPort"] = low, high if high is not None else low
    elif proto in _PORTED:
        raise BadRule(f"a {proto} rule needs port or from_port")
    elif proto in _ICMP:
        result["FromPort"] = result["ToPort"] = -1
    if isinstance(result.get("FromPort"), int) and isinstance(result.get("ToPort"), int) \
            and proto in _PORTED and result["FromPort"] > result["ToPort"]:
        raise BadRule(f"from_port {result['FromPort']} is above to_port {result['ToPort']}")
    peers = [name for name in _PEERS if rule.get(name)]
    if len(peers) != 1:
        raise BadRule(f"give exactly one of {', '.join(_PEERS)} (got {', '.join(peers) or 'none'})")
    (peer,) = peers
    key, field = _PEERS[peer]
    entry = {field: rule[peer]}
    if rule.get("description"):
        entry["Description"] = rule["description"]
    result[key] = [entry]
    return result


def _method(client: Any, verb: str, direction: str) -> Any:
    if direction not in ("ingress", "egress"):
        raise NonRecoverableError(f"rule direction must be ingress or egress, not {direction!r}")
    return getattr(client, f"{verb}_security_group_{direction}")


def authorize(client: Any, group_id: str, direction: str, permission: dict[str, Any], *,
              tag_specifications: list[dict[str, Any]] | None = None,
              retry_codes: Collection[str] = ()) -> list[str]:
    """Add one rule; the new rule ids (empty if it already existed)."""
    extra = {"TagSpecifications": tag_specifications} if tag_specifications else {}
    answer = call(_method(client, "authorize", direction), ignore=("InvalidPermission.Duplicate",),
                  retry_codes=retry_codes, GroupId=group_id, IpPermissions=[permission], **extra)
    return [r["SecurityGroupRuleId"] for r in (answer or {}).get("SecurityGroupRules") or []
            if r.get("SecurityGroupRuleId")]


def revoke(client: Any, group_id: str, direction: str, permission: dict[str, Any]) -> None:
    """Remove one rule; nothing to do if it (or its group) is already gone."""
    call(_method(client, "revoke", direction),
         ignore=("InvalidPermission.NotFound", "InvalidGroup.NotFound"),
         GroupId=group_id, IpPermissions=[permission])


_PROTOCOL_NAMES = {"6": "tcp", "17": "udp", "1": "icmp", "58": "icmpv6", "all": "-1"}
_RULE_PEERS = {"IpRanges": "CidrIpv4", "Ipv6Ranges": "CidrIpv6", "PrefixListIds": "PrefixListId"}
_PEER_FIELDS = dict(_PEERS.values())  # IpPermission key -> field of its entries
RULE_GONE = ("InvalidPermission.NotFound", "InvalidGroup.NotFound", "InvalidSecurityGroupRuleId.NotFound")


def _protocol(value: Any) -> str:
    proto = str(value).lower()
    return _PROTOCOL_NAMES.get(proto, proto)


def matches(rule: Mapping[str, Any], direction: str, permission: Mapping[str, Any]) -> bool:
    """True if ``rule`` (one of DescribeSecurityGroupRules' answer) is ``permission``."""
    if bool(rule.get("IsEgress")) != (direction == "egress"):
        return False
    proto = _protocol(permission.get("IpProtocol", "-1"))
    if _protocol(rule.get("IpProtocol", "-1")) != proto:
        return False
    if proto in ("tcp", "udp", "icmp", "icmpv6"):  # other protocols have no ports
        wanted = (permission.get("FromPort", -1), permission.get("ToPort", -1))
        if (rule.get("FromPort", -1), rule.get("ToPort", -1)) != wanted:
            return False
    for key, entries in permission.items():
        if key == "UserIdGroupPairs":
            return (rule.get("ReferencedGroupInfo") or {}).get("GroupId") == entries[0]["GroupId"]
        if key in _RULE_PEERS:
            return rule.get(_RULE_PEERS[key]) == entries[0][_PEER_FIELDS[key]]
    return False


def group_rules(client: Any, group_id: str) -> list[dict[str, Any]]:
    """Every rule of ``group_id`` as DescribeSecurityGroupRules describes it (with its Tags)."""
    return paginate(client, "describe_security_group_rules", "SecurityGroupRules",
                    Filters=[{"Name": "group-id", "Values": [group_id]}])


def revoke_by_id(client: Any, group_id: str, is_egress: bool, rule_id: str) -> None:
    """Remove one rule by its security-group-rule id; nothing to do if it is already gone."""
    call(_method(client, "revoke", "egress" if is_egress else "ingress"), ignore=RULE_GONE,
         GroupId=group_id, SecurityGroupRuleIds=[rule_id])


# ---------------------------------------------------------------- for people (drift reports, logs)


def _ports(proto: str, low: Any, high: Any) -> str:
    if proto not in ("tcp", "udp") or low in (None, -1):
        return ""
    return f" {low}" if low == high else f" {low}-{high}"


def permission_text(direction: str, permission: Mapping[str, Any]) -> str:
    """``tcp 80 from 0.0.0.0/0`` (ingress) or ``all to 10.0.0.0/8`` (egress)."""
    proto = _protocol(permission.get("IpProtocol", "-1"))
    peer = next((entries[0][_PEER_FIELDS[key]] for key, entries in permission.items()
                 if key in _PEER_FIELDS and entries), "?")
    text = f"{'all' if proto == '-1' else proto}{_ports(proto, permission.get('FromPort'), permission.get('ToPort'))}"
    return f"{text} {'to' if direction == 'egress' else 'from'} {peer}"


def rule_text(rule: Mapping[str, Any]) -> str:
    """A described rule (DescribeSecurityGroupRules) in ``permission_text``'s words."""
    proto = _protocol(rule.get("IpProtocol", "-1"))
    peer = ((rule.get("ReferencedGroupInfo") or {}).get("GroupId") or rule.get("CidrIpv4")
            or rule.get("CidrIpv6") or rule.get("PrefixListId") or "?")
    text = f"{'all' if proto == '-1' else proto}{_ports(proto, rule.get('FromPort'), rule.get('ToPort'))}"
    return f"{text} {'to' if rule.get('IsEgress') else 'from'} {peer}"


def update_description(client: Any, group_id: str, direction: str, permission: dict[str, Any]) -> None:
    """Give an existing rule the description ``permission`` carries (AWS changes it in place)."""
    _method(client, "revoke", direction)  # checks the direction
    call(getattr(client, f"update_security_group_rule_descriptions_{direction}"), GroupId=group_id,
         IpPermissions=[permission])
