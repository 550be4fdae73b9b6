"""Engine-free rules: which engine, how properties map, how errors are classified."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace as NS
from typing import Any

import docker
import pytest
import requests

from orchestrator import NonRecoverableError, RecoverableError
from plugins_docker import container_spec, engine, labels, readiness
from plugins_docker.engine import CONTAINED_IN, EngineSpec, resolve_engine, spec_from_value
from plugins_docker.errors import classify
from plugins_docker.reference import image_reference

# ---------------------------------------------------------------- engine resolution


def _host(instance_id: str, runtime: dict[str, Any] | None = None, props: dict[str, Any] | None = None,
          parent: Any = None) -> Any:
    """A fake contained_in target: ``.node.properties``, ``.instance.runtime_properties``."""
    rels = [] if parent is None else [_contained_in(parent)]
    return NS(node=NS(properties=props or {}, type_hierarchy=["orchestrator.nodes.Compute"]),
              instance=NS(id=instance_id, runtime_properties=runtime or {}, relationships=rels))


def _contained_in(target: Any) -> Any:
    return NS(type="aws.relationships.on", type_hierarchy=["orchestrator.relationships.depends_on",
                                                          CONTAINED_IN, "aws.relationships.on"],
              target=target)


def _instance(*relationships: Any) -> Any:
    return NS(id="c_0", runtime_properties={}, relationships=list(relationships))


NODE = {"docker_host": {"url": "tcp://node:2375"}}
HOST_RUNTIME = {"docker_host": {"url": "tcp://host-runtime:2376", "tls_verify": True}}
HOST_PROPERTY = {"docker_host": {"url": "tcp://host-property:2375"}}
ENV = {"DOCKER_HOST": "tcp://env:2375"}


def test_node_property_wins_over_everything() -> None:
    host = _host("vm_0", HOST_RUNTIME, HOST_PROPERTY)
    spec = resolve_engine(NODE, _instance(_contained_in(host)), ENV)
    assert spec.url == "tcp://node:2375"
    assert "node's docker_host property" in spec.source


def test_host_runtime_property_wins_over_its_property_and_env() -> None:
    host = _host("vm_0", HOST_RUNTIME, HOST_PROPERTY)
    spec = resolve_engine({}, _instance(_contained_in(host)), ENV)
    assert (spec.url, spec.tls_verify) == ("tcp://host-runtime:2376", True)
    assert "vm_0's docker_host runtime property" in spec.source


def test_host_property_when_no_runtime_property() -> None:
    spec = resolve_engine({}, _instance(_contained_in(_host("vm_0", {}, HOST_PROPERTY))), ENV)
    assert spec.url == "tcp://host-property:2375"


def test_walks_up_the_host_chain() -> None:
    """container -> docker daemon node (no engine info) -> VM (publishes its engine)."""
    vm = _host("vm_0", {"docker_host": "unix:///run/vm.sock"})
    middle = _host("daemon_0", parent=vm)
    spec = resolve_engine({}, _instance(_contained_in(middle)), ENV)
    assert spec.url == "unix:///run/vm.sock"
    assert "vm_0" in spec.source


def test_docker_host_env_then_local_default() -> None:
    bare_host = _host("vm_0")
    assert resolve_engine({}, _instance(_contained_in(bare_host)), ENV) == EngineSpec(
        url=None, source="DOCKER_HOST=tcp://env:2375")
    assert resolve_engine({}, _instance(), {}).source == "the local default"


def test_non_contained_in_relationships_are_not_hosts() -> None:
    other = NS(type="orchestrator.relationships.depends_on",
               type_hierarchy=["orchestrator.relationships.depends_on"],
               target=_host("db_0", HOST_RUNTIME))
    assert resolve_engine({}, _instance(other), {}).url is None


def test_a_cycle_of_hosts_ends() -> None:
    a = _host("a_0")
    b = _host("b_0", parent=a)
    a.instance.relationships.append(_contained_in(b))
    assert resolve_engine({}, _instance(_contained_in(a)), {}).url is None


def test_spec_from_value_shapes() -> None:
    assert spec_from_value(None, "x") is None
    assert spec_from_value({"url": ""}, "x") is None
    spec = spec_from_value({"url": "tcp://h:2376", "ca_cert": "/ca.pem", "timeout": 5}, "x")
    assert spec is not None and (spec.ca_cert, spec.timeout) == ("/ca.pem", 5)


# ---------------------------------------------------------------- property mapping


def test_create_kwargs_maps_every_property() -> None:
    props = {
        "command": "httpd -f", "entrypoint": ["/bin/sh", "-c"], "environment": {"A": 1, "B": True},
        "ports": {"80": 8080, "443/tcp": "127.0.0.1:8443", "53/udp": None},
        "volumes": ["/srv:/data:ro"], "restart_policy": "on-failure:3", "network_mode": "host",
        "labels": {"app": "web", labels.DEPLOYMENT_LABEL: "spoofed"},
        "healthcheck": {"test": "true", "interval": 0.5, "timeout": 2, "retries": 4, "start_period": 1},
        "user": "nobody", "working_dir": "/srv",
    }
    kwargs = container_spec.create_kwargs(props, "dep", "web_0", "busybox:1")
    assert kwargs["name"] == "dep-web_0"
    assert kwargs["labels"] == {"app": "web", labels.DEPLOYMENT_LABEL: "dep", labels.INSTANCE_LABEL: "web_0"}
    assert kwargs["environment"] == {"A": "1", "B": "true"}
    assert kwargs["ports"] == {"80/tcp": 8080, "443/tcp": ("127.0.0.1", 8443), "53/udp": None}
    assert kwargs["restart_policy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert kwargs["healthcheck"] == {"test": ["CMD-SHELL", "true"], "interval": 500_000_000,
                                     "timeout": 2_000_000_000, "retries": 4, "start_period": 1_000_000_000}
    assert (kwargs["command"], kwargs["entrypoint"]) == ("httpd -f", ["/bin/sh", "-c"])
    assert (kwargs["user"], kwargs["working_dir"], kwargs["volumes"]) == ("nobody", "/srv", ["/srv:/data:ro"])


def test_create_kwargs_minimal_and_named() -> None:
    kwargs = container_spec.create_kwargs({"name": "fixed"}, "d", "i_0", "img")
    assert kwargs["name"] == "fixed" and kwargs["network_mode"] == "host"
    assert "restart_policy" not in kwargs and "command" not in kwargs


@pytest.mark.parametrize("props", [
    {"command": {"not": "a command"}},
    {"restart_policy": "sometimes"},
    {"ports": {"http": 80}},
    {"ports": {"80": "not a port"}},
    {"healthcheck": {"test": 42}},
])
def test_bad_properties_are_non_recoverable(props: dict[str, Any]) -> None:
    with pytest.raises(NonRecoverableError):
        container_spec.create_kwargs(props, "d", "i_0", "img")


def test_image_from_property_or_relationship() -> None:
    image_target = NS(node=NS(properties={"repository": "reg:5000/app", "tag": "2"},
                              type_hierarchy=["orchestrator.nodes.Root", "docker.Image"]),
                      instance=NS(id="img_0", runtime_properties={}))
    rel = NS(type="orchestrator.relationships.depends_on",
             type_hierarchy=["orchestrator.relationships.depends_on"], target=image_target)
    assert container_spec.image_for({"image": "explicit:1"}, [rel]) == "explicit:1"
    assert container_spec.image_for({}, [rel]) == "reg:5000/app:2"
    image_target.instance.runtime_properties["image"] = "reg:5000/app@sha256:abc"
    assert container_spec.image_for({}, [rel]) == "reg:5000/app@sha256:abc"
    with pytest.raises(NonRecoverableError, match="no image"):
        container_spec.image_for({}, [])


@pytest.mark.parametrize(("props", "ref"), [
    ({"repository": "busybox"}, "busybox:latest"),
    ({"repository": "127.0.0.1:5000/t/b", "tag": "1.36"}, "127.0.0.1:5000/t/b:1.36"),
    ({"repository": "127.0.0.1:5000/t/b:embedded", "tag": "latest"}, "127.0.0.1:5000/t/b:embedded"),
    ({"repository": "b", "tag": "x", "digest": "sha256:ab"}, "b@sha256:ab"),
    ({"repository": "b@sha256:cd"}, "b@sha256:cd"),
])
def test_image_reference(props: dict[str, Any], ref: str) -> None:
    assert image_reference(props) == ref


# ---------------------------------------------------------------- names and labels


def test_names_are_valid_and_distinct() -> None:
    assert labels.container_name("my-app", "web_0") == "my-app-web_0"
    odd = labels.container_name("my app/1", "web_0")
    assert odd.startswith("my-app-1-web_0-") and " " not in odd
    assert labels.pulled_marker("Prod_1", "img_0") != labels.pulled_marker("prod-1", "img_0")
    assert labels.pulled_marker("dk-1", "img_0") == "orchestrator-pulled/dk-1:img_0"


# ---------------------------------------------------------------- error classification


def _api_error(status: int, explanation: str) -> docker.errors.APIError:
    response = requests.Response()
    response.status_code = status
    return docker.errors.APIError("boom", response=response, explanation=explanation)


@pytest.mark.parametrize(("exc", "kind"), [
    (_api_error(500, "unauthorized: authentication required"), NonRecoverableError),
    (_api_error(404, "manifest unknown"), NonRecoverableError),
    (_api_error(400, "invalid reference format"), NonRecoverableError),
    (_api_error(409, "Conflict. The container name is already in use"), NonRecoverableError),
    (_api_error(500, 'Get "http://127.0.0.1:1/v2/": dial tcp: connect: connection refused'), RecoverableError),
    (_api_error(500, "something odd"), RecoverableError),
    (_api_error(503, "service unavailable"), RecoverableError),
    (requests.exceptions.ConnectionError("refused"), RecoverableError),
    (requests.exceptions.ReadTimeout("slow"), RecoverableError),
    (docker.errors.DockerException("Error while fetching server API version"), RecoverableError),
    (docker.errors.TLSParameterError("bad cert"), NonRecoverableError),
    # a wrong CA or a missing client certificate: TLS's words, not retried like a network error
    (requests.exceptions.SSLError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"),
     NonRecoverableError),
    (docker.errors.DockerException("Error while fetching server API version: HTTPSConnectionPool(host='h', "
                                   "port=2376): Max retries exceeded (Caused by SSLError(SSLError(1, '[SSL: "
                                   "TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert certificate required')))"),
     NonRecoverableError),
])
def test_classify(exc: Exception, kind: type) -> None:
    result = classify(exc, "doing it")
    assert type(result) is kind
    assert str(result).startswith("doing it: ")


# ---------------------------------------------------------------- readiness (fake container)


class _FakeContainer:
    """Replays a sequence of ``State`` dicts, one per ``reload()``."""

    name = "fake"

    def __init__(self, *states: dict[str, Any], log: bytes = b"line one\nline two\n") -> None:
        self._states = list(states)
        self._log = log
        self.attrs: dict[str, Any] = {}

    def reload(self) -> None:
        state = self._states.pop(0) if len(self._states) > 1 else self._states[0]
        self.attrs = {"State": state}

    def logs(self, **kwargs: Any) -> bytes:
        return self._log


def _check(container: _FakeContainer, grace: float = 1.0, running_for: float | None = None) -> Any:
    return readiness.check(container, grace=grace, running_for=running_for, log_tail=5, where="engine")


RUNNING = {"Status": "running", "Running": True, "Pid": 42}


def test_ready_once_running_for_the_grace_period() -> None:
    not_yet = _check(_FakeContainer({"Status": "created"}))
    assert not not_yet and not_yet.after is None
    first_look = _check(_FakeContainer(RUNNING), running_for=None)
    assert not first_look and first_look.after == 1.0  # nothing changes for a second: look then
    assert not _check(_FakeContainer(RUNNING), running_for=0.4)
    assert _check(_FakeContainer(RUNNING), running_for=1.2)["Pid"] == 42
    assert _check(_FakeContainer(RUNNING), grace=0)["Pid"] == 42


def test_exit_fails_with_the_log() -> None:
    with pytest.raises(NonRecoverableError, match=r"(?s)exited with code 2.*\| line two"):
        _check(_FakeContainer({"Status": "exited", "ExitCode": 2}), grace=10.0)


def test_healthcheck_decides_when_there_is_one() -> None:
    starting = {**RUNNING, "Health": {"Status": "starting"}}
    healthy = {**RUNNING, "Health": {"Status": "healthy"}}
    assert not _check(_FakeContainer(starting), running_for=100)
    assert _check(_FakeContainer(healthy), running_for=0)["Health"]["Status"] == "healthy"
    unhealthy = {**RUNNING, "Health": {"Status": "unhealthy", "Log": [{"ExitCode": 1, "Output": "refused"}]}}
    with pytest.raises(NonRecoverableError, match="probe exit code 1: refused"):
        _check(_FakeContainer(unhealthy))


def test_restarting_fails_at_once() -> None:
    with pytest.raises(NonRecoverableError, match="keeps restarting"):
        _check(_FakeContainer({"Status": "restarting", "ExitCode": 1}))


def test_empty_log_is_said_so() -> None:
    with pytest.raises(NonRecoverableError, match="printed nothing"):
        _check(_FakeContainer({"Status": "exited", "ExitCode": 1}, log=b""))


# ---------------------------------------------------------------- TLS settings


def test_tls_from_pem_text_and_paths(tmp_path: Path) -> None:
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    key = tmp_path / "key.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n")
    spec = EngineSpec(url="tcp://h:2376", source="test", tls_verify=True, ca_cert=pem, client_cert=pem,
                      client_key=str(key))
    tls = engine._tls(spec)
    assert tls.verify and Path(tls.ca_cert).read_text() == pem
    assert tls.cert == (tls.ca_cert, str(key))
    assert engine._tls(EngineSpec(url="tcp://h:2375", source="test")) is False
    with pytest.raises(NonRecoverableError, match="go together"):
        engine._tls(EngineSpec(url="tcp://h:2376", source="test", client_cert=pem))


def test_engine_ca_wins_over_ca_bundle_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE must not replace the engine's own CA (requests#3829)."""
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")

    def verify_used(**tls: Any) -> Any:  # version given: nothing is asked of an engine
        client = engine._client_classes()[1](base_url="tcp://h:2376", version="1.41",
                                             tls=docker.tls.TLSConfig(**tls) if tls else False)
        try:
            return client.api.merge_environment_settings("https://h:2376/version", {}, None, None, None)["verify"]
        finally:
            client.close()

    assert verify_used(ca_cert=str(ca), verify=True) == str(ca)
    assert verify_used(ca_cert=str(ca), verify=False) is False
    assert verify_used() == "/etc/ssl/certs/ca-certificates.crt"  # no TLS settings: requests' rules
