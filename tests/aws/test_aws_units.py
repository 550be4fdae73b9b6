"""Units of the AWS plugin that need no AWS: types, routing, error mapping, rules, waits."""

from __future__ import annotations

import importlib.metadata as md

import botocore.exceptions
import pytest

from orchestrator import NonRecoverableError, RecoverableError
from orchestrator.dsl.problems import BlueprintError
from orchestrator.plugins import get_plugin_manager
from plugins_aws import client, errors, rules
from plugins_aws.docker_host import docker_host
from plugins_aws.tags import tag_filters, tag_specifications, tags_of
from plugins_aws.testing import PLUGINS

NODE_TYPES = {
    "aws_keypair": ["aws.ec2.KeyPair"],
    "aws_security_group": ["aws.ec2.SecurityGroup", "aws.ec2.SecurityGroupRule"],
    "aws_ec2_instance": ["aws.ec2.Instance"],
    "aws_elastic_ip": ["aws.ec2.ElasticIP"],
    "aws_network": ["aws.ec2.VPC", "aws.ec2.Subnet"],
    "aws_routing": ["aws.ec2.InternetGateway", "aws.ec2.NatGateway", "aws.ec2.RouteTable", "aws.ec2.Route"],
    "aws_image": ["aws.ec2.Image"],
    "aws_network_interface": ["aws.ec2.NetworkInterface"],
    "aws_volume": ["aws.ec2.Volume"],
}


def _client_error(code: str, status: int = 400, op: str = "RunInstances") -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError(
        {"Error": {"Code": code, "Message": f"the {code} message"}, "ResponseMetadata": {"HTTPStatusCode": status}}, op)


# -- registration and routing -----------------------------------------------------------


def test_entry_points_one_per_family():
    eps = {ep.name: ep.value for ep in md.entry_points(group="orchestrator.plugins")
           if ep.dist and ep.dist.name == "orchestrator-aws"}
    assert eps == {"aws": "plugins_aws.base:plugin", "aws_keypair": "plugins_aws.keypair:plugin",
                   "aws_security_group": "plugins_aws.security_group:plugin",
                   "aws_ec2_instance": "plugins_aws.instance:plugin", "aws_elastic_ip": "plugins_aws.elastic_ip:plugin",
                   "aws_network": "plugins_aws.network:plugin", "aws_routing": "plugins_aws.routing:plugin",
                   "aws_image": "plugins_aws.image:plugin", "aws_network_interface": "plugins_aws.interface:plugin",
                   "aws_volume": "plugins_aws.volume:plugin",
                   "aws_cloudify": "plugins_aws.cloudify_compat"}  # Cloudify AWS plugin pack


def test_types_are_owned_by_their_family_plugin():
    pm = get_plugin_manager(entry_points=True, env={"ORCHESTRATOR_PLUGINS": "aws," + ",".join(NODE_TYPES)})
    assert [e for e in pm.load_errors if e.fatal] == []
    for plugin, types in NODE_TYPES.items():
        for name in types:
            assert pm.type_owner[name] == plugin
    assert pm.type_owner["aws.datatypes.ClientConfig"] == "aws"
    assert pm.type_owner["aws.relationships.instance_connected_to_elastic_ip"] == "aws_elastic_ip"


MINIMAL = {"aws.ec2.Instance": {"image_id": "ami-1"}, "aws.ec2.VPC": {"cidr_block": "10.0.0.0/16"},
           "aws.ec2.Subnet": {"cidr_block": "10.0.1.0/24"}, "aws.ec2.SecurityGroupRule": {"group_id": "sg-1", "port": 22, "cidr_ip": "0.0.0.0/0"},
           "aws.ec2.Route": {"destination_cidr_block": "0.0.0.0/0"}, "aws.ec2.Image": {"owners": ["amazon"]}}


def test_every_type_loads_with_its_defaults(orch):
    orch.use(*PLUGINS)
    for types in NODE_TYPES.values():
        for name in types:
            node = orch.node(name, {"client_config": {"region_name": "eu-west-1"}, **MINIMAL.get(name, {})})
            assert node.properties["poll_interval"] == 5.0
            if name in ("aws.ec2.Route", "aws.ec2.Image"):  # no tags, no id to adopt: a route; a lookup
                continue
            assert node.properties["tags"] == {}
            if not name.endswith("Rule"):
                assert node.properties["use_external_resource"] is False


def test_instance_is_a_compute_host(orch):
    orch.use(*PLUGINS)
    node = orch.node("aws.ec2.Instance", {"image_id": "ami-1", "docker_host": {"url": "tcp://h:2376"}})
    assert "orchestrator.nodes.Compute" in node.node.hierarchy


@pytest.mark.parametrize(("node_type", "props", "message"), [
    ("aws.ec2.KeyPair", {"key_type": "dsa"}, "valid values"),
    ("aws.ec2.SecurityGroup", {"rules": [{"port": "22"}]}, "expected integer"),
    ("aws.ec2.SecurityGroup", {"rules": [{"prot": 22}]}, "unknown field 'prot'"),
    ("aws.ec2.Instance", {"docker_host": {"uri": "x"}}, "unknown field 'uri'"),
    ("aws.ec2.Instance", {"client_config": {"region": "x"}}, "unknown field 'region'"),
])
def test_bad_properties_are_blueprint_errors(orch, node_type, props, message):
    orch.use(*PLUGINS)
    with pytest.raises(BlueprintError, match=message):
        orch.node(node_type, props)


# -- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["RequestLimitExceeded", "Throttling", "InsufficientInstanceCapacity",
                                  "DependencyViolation", "InternalError"])
def test_transient_codes_are_recoverable(code):
    exc = errors.translate(_client_error(code), retry_after=3)
    assert isinstance(exc, RecoverableError) and exc.retry_after == 3
    assert str(exc) == f"AWS {code} in RunInstances: the {code} message"


@pytest.mark.parametrize("code", ["InvalidParameterValue", "InvalidAMIID.Malformed", "InvalidKeyPair.NotFound",
                                  "UnauthorizedOperation", "AuthFailure"])
def test_bad_parameters_are_not_recoverable(code):
    exc = errors.translate(_client_error(code))
    assert type(exc) is NonRecoverableError
    assert str(exc) == f"AWS {code} in RunInstances: the {code} message"


def test_server_errors_and_connection_errors_are_recoverable():
    assert isinstance(errors.translate(_client_error("SomethingNew", status=503)), RecoverableError)
    unreachable = botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
    assert isinstance(errors.translate(unreachable), RecoverableError)
    assert isinstance(errors.translate(botocore.exceptions.ReadTimeoutError(endpoint_url="x")), RecoverableError)
    assert type(errors.translate(botocore.exceptions.NoCredentialsError())) is NonRecoverableError


def test_call_ignores_and_retries_codes():
    def fails(**_):
        raise _client_error("InvalidGroup.NotFound", op="DescribeSecurityGroups")

    assert errors.call(fails, ignore=("InvalidGroup.NotFound",)) is None
    with pytest.raises(RecoverableError):
        errors.call(fails, retry_codes=("InvalidGroup.NotFound",))
    with pytest.raises(NonRecoverableError, match=r"InvalidGroup\.NotFound in DescribeSecurityGroups") as info:
        errors.call(fails)
    assert errors.error_code(info.value.__cause__) == "InvalidGroup.NotFound"


def test_no_region_is_a_clear_error(monkeypatch, tmp_path):
    for var in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask 169.254.169.254
    with pytest.raises(NonRecoverableError, match="no AWS region"):
        client.ec2_client({})
    assert client.ec2_client({"region_name": "eu-west-1"}) is client.ec2_client({"region_name": "eu-west-1"})
    client.clear_cache()


def test_client_honours_endpoint_url(monkeypatch):
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    assert client.ec2_client({"region_name": "us-east-1"}).meta.endpoint_url == "http://127.0.0.1:9"
    explicit = client.ec2_client({"region_name": "us-east-1", "endpoint_url": "http://127.0.0.1:8"})
    assert explicit.meta.endpoint_url == "http://127.0.0.1:8"
    assert explicit.meta.config.retries["mode"] == "standard"


# -- rules, tags, docker_host, waits ----------------------------------------------------------


@pytest.mark.parametrize(("rule", "permission"), [
    ({"port": 22, "cidr_ip": "1.2.3.0/24", "description": "ssh"},
     {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "1.2.3.0/24", "Description": "ssh"}]}),
    ({"ip_protocol": "udp", "from_port": 1000, "to_port": 2000, "cidr_ipv6": "::/0"},
     {"IpProtocol": "udp", "FromPort": 1000, "ToPort": 2000, "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}),
    ({"ip_protocol": "icmp", "cidr_ip": "0.0.0.0/0"},
     {"IpProtocol": "icmp", "FromPort": -1, "ToPort": -1, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}),
    ({"ip_protocol": "all", "source_group_id": "sg-1"},
     {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": "sg-1"}]}),
    ({"port": 443, "prefix_list_id": "pl-1"},
     {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "PrefixListIds": [{"PrefixListId": "pl-1"}]}),
])
def test_ip_permission(rule, permission):
    assert rules.ip_permission(rule, "rules[0]") == permission


def test_tags_helpers():
    assert tag_filters({"a": "1"}) == [{"Name": "tag:a", "Values": ["1"]}]
    assert tag_specifications(["vpc"], {"a": 1}) == [{"ResourceType": "vpc", "Tags": [{"Key": "a", "Value": "1"}]}]
    assert tags_of({"Tags": [{"Key": "a", "Value": "1"}]}) == {"a": "1"}


@pytest.mark.parametrize(("spec", "public", "private", "url"), [
    ({"url": "unix:///var/run/docker.sock"}, "1.1.1.1", "10.0.0.1", "unix:///var/run/docker.sock"),
    ({"tls_verify": True}, "1.1.1.1", "10.0.0.1", "tcp://1.1.1.1:2376"),
    ({"port": 2375}, None, "10.0.0.1", "tcp://10.0.0.1:2375"),
    ({"use_private_ip": True, "port": 4243}, "1.1.1.1", "10.0.0.1", "tcp://10.0.0.1:4243"),
    ({"tls_verify": True}, None, None, None),
])
def test_docker_host(spec, public, private, url):
    assert docker_host(spec, public, private)["url"] == url
    assert docker_host(None, public, private) is None


def test_waits_ask_to_be_retried_within_poll_interval_and_wait_timeout():
    from plugins_aws.resource import wait_options

    assert wait_options({"poll_interval": 2.0, "wait_timeout": 30.0}) == {"max_interval": 2.0, "timeout": 30.0}
    assert wait_options({}) == {"max_interval": 5.0, "timeout": 300.0}


# -- client configuration (issue 18) ------------------------------------------------------


@pytest.fixture
def no_credentials(monkeypatch, tmp_path):
    """An environment where boto3's chain finds no credentials (and asks no metadata service)."""
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    client.clear_cache()
    yield
    client.clear_cache()


def test_partial_credentials_are_completed_from_the_chain(monkeypatch, no_credentials):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-env")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-from-env")
    assert client.credentials({"aws_session_token": "token"}) == {
        "aws_access_key_id": "from-env", "aws_secret_access_key": "secret-from-env", "aws_session_token": "token"}
    assert client.credentials({"aws_access_key_id": "mine"})["aws_secret_access_key"] == "secret-from-env"
    assert client.credentials({"aws_access_key_id": "a", "aws_secret_access_key": "b"}) == {
        "aws_access_key_id": "a", "aws_secret_access_key": "b"}
    assert client.credentials({}) == {}
    assert client.ec2_client({"aws_secret_access_key": "mine"}) is not None  # once a TypeError, retried 30 s


def test_credentials_that_cannot_be_completed_fail_at_once_saying_why(no_credentials):
    with pytest.raises(NonRecoverableError, match=r"client_config gives only aws_secret_access_key, and boto3's "
                                                  r"chain .* has no aws_access_key_id"):
        client.ec2_client({"aws_secret_access_key": "mine"})


def test_a_bad_client_config_fails_install_at_once_and_uninstall_still_succeeds(orch, no_credentials):
    orch.use(*PLUGINS)
    run = orch.install("""
        node_templates:
          key:
            type: aws.ec2.KeyPair
            properties: {client_config: {aws_session_token: only-a-token}}
    """)
    assert not run.ok
    (failure,) = run.failures
    assert "has no aws_access_key_id nor aws_secret_access_key" in failure.message
    assert [c.outcome for c in run.calls] == ["NonRecoverableError"]  # one attempt, not retries
    gone = orch.uninstall()
    assert gone.ok, gone.failures
    assert any("nothing to delete" in line for line in gone.logs("key_0"))


# -- validation (issue 18) ----------------------------------------------------------------


def test_validate_reports_every_bad_rule_with_its_position(tmp_path):
    import subprocess
    import sys

    (tmp_path / "bp.yaml").write_text(
        "node_templates:\n"
        "  sg:\n"
        "    type: aws.ec2.SecurityGroup\n"
        "    properties:\n"
        "      rules:\n"
        "        - {port: 22, cidr_ip: 10.0.0.0/8}\n"
        "        - {port: 80, cidr_ip: 0.0.0.0/0, source_group_id: sg-1}\n"
        "      egress_rules:\n"
        "        - {cidr_ip: 0.0.0.0/0}\n"
        "        - {from_port: 90, to_port: 80, cidr_ip: 0.0.0.0/0}\n")
    proc = subprocess.run([sys.executable, "-m", "orchestrator", "validate", "bp.yaml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        "bp.yaml:7:11: node template 'sg': property 'rules[1]': give exactly one of cidr_ip, cidr_ipv6, "
        "source_group_id, prefix_list_id (got cidr_ip, source_group_id)",
        "bp.yaml:9:11: node template 'sg': property 'egress_rules[0]': a tcp rule needs port or from_port",
        "bp.yaml:10:11: node template 'sg': property 'egress_rules[1]': from_port 90 is above to_port 80",
        "3 problems found",
    ]
    assert "Traceback" not in proc.stderr


def test_rules_known_only_at_run_time_are_not_judged(orch):
    orch.use(*PLUGINS)
    bp = orch.blueprint("""
        node_templates:
          lb: {type: aws.ec2.SecurityGroup}
          app:
            type: aws.ec2.SecurityGroup
            properties:
              rules: [{port: 80, source_group_id: {get_attribute: [lb, group_id]}}]
            relationships: [{type: orchestrator.relationships.depends_on, target: lb}]
    """)
    orch.orchestrator().load(bp)  # no problem: the peer is given, its value comes at run time
