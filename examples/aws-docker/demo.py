#!/usr/bin/env python3
"""The aws-docker example end to end on this machine: ``make demo``.

AWS is a moto server on 127.0.0.1 and the EC2 instance's Docker engine is a local one
(reused when ``DOCKER_HOST`` or ``/var/run/docker.sock`` answers, else our own dockerd,
installed with apt-get when missing and run as root), with a local registry holding an
offline busybox image. The real ``orchestrator`` CLI then runs validate, plan, install,
outputs and status; the page the container serves is fetched. Day 2: the instance is
terminated behind the orchestrator's back, ``drift`` reports it gone, ``heal`` replaces it
(the elastic IP and the containers follow), ``scale`` adds a worker container, ``execute``
runs the Docker plugin's ``exec`` and ``logs``; uninstall removes it all. Whatever the demo started is stopped at the end, also after a failure or Ctrl-C,
and the demo checks that nothing is left.

Only the ``orchestrator`` child processes see ``AWS_ENDPOINT_URL``, the dummy
credentials and ``DOCKER_HOST``; this process's environment is left alone.

Exit status: 0 when every step and every check passed, 1 otherwise, 130 when
interrupted. Options: ``--dir`` (state, logs, engine data; default ``.demo/``),
``--deployment``, ``--report FILE`` (a JSON summary, for tests).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import types
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # testenv: the repo's engine helpers, not a distribution

from testenv import TestEnvError, free_port  # noqa: E402
from testenv._proc import TOOL_PACKAGES, pid_matches, pids_mentioning  # noqa: E402
from testenv.docker_engine import (  # noqa: E402
    DockerEngine,
    Registry,
    build_busybox_image,
    ensure_docker,
    ensure_registry,
    ping_docker,
)
from testenv.moto_server import MotoServer, start_moto  # noqa: E402

BLUEPRINT = HERE / "blueprint.yaml"
DEPLOYMENT = "aws-docker-demo"
GREETING = "Hello from the orchestrator demo!"
REGION = "us-east-1"
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
# what could send the children to real AWS, or to an engine other than the demo's
_AWS_VARS_DROPPED = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                     "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                     "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
_DOCKER_VARS = ("DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONTEXT", "DOCKER_CONFIG")
STEP_TIMEOUT = {"install": 300.0, "uninstall": 300.0}
DEFAULT_TIMEOUT = 60.0


class StepFailed(Exception):
    """A step of the demo did not do what it should; the message says what."""


class Interrupted(Exception):
    """SIGINT, SIGTERM or SIGHUP arrived; the demo cleans up and exits 130."""


# -- output -------------------------------------------------------------------------------

class Out:
    """Section headers and status lines; bold and colours only on a terminal."""

    def __init__(self) -> None:
        self.color = sys.stdout.isatty() and os.environ.get("TERM") != "dumb" and "NO_COLOR" not in os.environ
        self.started = time.monotonic()
        self.section_started = self.started
        self.timings: list[tuple[str, float]] = []
        self.gone = False  # the terminal went away (closed window, broken pipe): print nothing more

    def _style(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.color else text

    def print(self, text: str = "") -> None:
        if self.gone:
            return
        try:
            print(text, flush=True)
        except OSError:  # EIO/EPIPE: the clean-up must still run in full
            self.gone = True

    def section(self, title: str) -> None:
        self._close_section()
        self.current = title
        self.section_started = time.monotonic()
        line = f"== {title} "
        self.print()
        self.print(self._style(line + "=" * max(4, 78 - len(line)), "1;36"))

    def _close_section(self) -> None:
        if getattr(self, "current", None):
            self.timings.append((self.current, time.monotonic() - self.section_started))
            self.current = None

    def command(self, argv: Sequence[str]) -> None:
        self.print(self._style("$ " + " ".join(shlex.quote(a) for a in argv), "1"))

    def info(self, text: str) -> None:
        self.print(f"   {text}")

    def ok(self, text: str) -> None:
        self.print(self._style("ok ", "32") + text)

    def warn(self, text: str) -> None:
        self.print(self._style("warning: ", "33") + text)

    def fail(self, text: str) -> None:
        self.print(self._style("FAILED: ", "1;31") + text)

    def finish(self) -> float:
        self._close_section()
        return time.monotonic() - self.started


def shown(path: Path | str) -> str:
    """A path as the user would type it: relative to the current directory when inside it."""
    path = Path(path)
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd())) or "."
    return str(path)


# -- signals ------------------------------------------------------------------------------

def _terminal_delivers_sigint() -> bool:
    """True when we run in the terminal's foreground group: Ctrl-C reached our children too."""
    for fd in (0, 1, 2):
        with contextlib.suppress(OSError):
            return os.tcgetpgrp(fd) == os.getpgrp()
    return False


class Signals:
    """Signals only set a flag: steps end cleanly and the clean-up always runs in full.

    A running ``orchestrator`` child cancels its workflow on SIGINT (operations in flight
    finish, the state stays consistent). Ctrl-C on a terminal reaches it directly; for a
    signal sent to the demo alone (SIGTERM, ``kill -INT``), the demo passes SIGINT on.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self.child: subprocess.Popen[Any] | None = None
        self.child_signalled = False
        self.forward = True  # off during the clean-up: nothing may cut its uninstall short

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: types.FrameType | None) -> None:
        name = signal.Signals(signum).name
        first = self.received is None
        if first:
            self.received = signum
        message = (f"\n{name}: stopping after the current step, then cleaning up...\n" if first
                   else f"\n{name}: already stopping; the clean-up finishes in a few seconds, please wait\n")
        with contextlib.suppress(OSError):
            os.write(2, message.encode())  # not print(): a handler may interrupt a print
        child = self.child
        running = child is not None and child.poll() is None and not self.child_signalled
        if self.forward and running and (signum != signal.SIGINT or not _terminal_delivers_sigint()):
            self.child_signalled = True
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGINT)  # type: ignore[union-attr]

    def check(self) -> None:
        if self.received is not None:
            raise Interrupted(signal.Signals(self.received).name)


# -- the demo -----------------------------------------------------------------------------

class Demo:
    def __init__(self, directory: Path, deployment: str, out: Out, signals: Signals) -> None:
        self.dir = directory
        self.run_dir = directory / "run"  # this run's state, inputs and key: wiped at start
        self.state = self.run_dir / "state.db"
        self.inputs_file = self.run_dir / "inputs.yaml"
        self.key_path = self.run_dir / "demo-key.pem"
        self.deployment = deployment
        self.out = out
        self.signals = signals
        self.moto: MotoServer | None = None
        self.engine: DockerEngine | None = None
        self.engine_owned = False
        self.engine_source = ""
        self.registry: Registry | None = None
        self.image = ""
        self.http_port = 0
        self.child_env: dict[str, str] = {}
        self.install_attempted = False
        self.uninstalled = False
        self.outputs: dict[str, Any] = {}
        self.http_body = ""
        self.healed: dict[str, Any] = {}
        self.started_pids: dict[str, int] = {}
        self.problems: list[str] = []

    # -- helpers ----------------------------------------------------------------------

    def cli(self) -> list[str]:
        """The real command line tool of this Python environment."""
        script = Path(sys.executable).parent / "orchestrator"
        return [str(script)] if script.exists() else [sys.executable, "-m", "orchestrator"]

    def run(self, *args: str, capture: bool = False, new_session: bool = False,
            timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``orchestrator ARGS`` as a user would; output goes straight to the terminal.

        Attached to the terminal (not captured), ``install``/``uninstall`` show their live
        view when the demo runs on one, and plain event lines otherwise.
        """
        argv = [*self.cli(), *args]
        self.out.command(["orchestrator", *args])
        timeout = timeout or STEP_TIMEOUT.get(args[0], DEFAULT_TIMEOUT)
        to = subprocess.PIPE if capture else (subprocess.DEVNULL if self.out.gone else None)
        proc = subprocess.Popen(argv, env=self.child_env, text=True, start_new_session=new_session,
                                stdout=to, stderr=subprocess.DEVNULL if self.out.gone else None)
        self.signals.child, self.signals.child_signalled = proc, False
        try:
            try:
                stdout, _ = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.out.warn(f"`orchestrator {args[0]}` still runs after {timeout:.0f}s: interrupting it")
                proc.send_signal(signal.SIGINT)
                try:
                    stdout, _ = proc.communicate(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    stdout, _ = proc.communicate()
        finally:
            self.signals.child = None
        return subprocess.CompletedProcess(argv, proc.returncode, stdout or "", None)

    def step(self, *args: str, capture: bool = False) -> subprocess.CompletedProcess[str]:
        result = self.run(*args, capture=capture)
        self.signals.check()
        if result.returncode != 0:
            if capture and result.stdout:
                self.out.print(result.stdout.rstrip())
            raise StepFailed(f"`orchestrator {args[0]}` exited with status {result.returncode}")
        return result

    def common(self) -> list[str]:
        return ["-d", self.deployment, "--state", shown(self.state)]

    # -- set-up -----------------------------------------------------------------------

    def set_up(self) -> None:
        self.out.section("1. Set-up: AWS on a moto server, a local Docker engine, a local registry")
        shutil.rmtree(self.run_dir, ignore_errors=True)
        self.run_dir.mkdir(parents=True)

        self.moto = start_moto(in_process=False, log_path=self.dir / "moto.log", die_with_parent=True)
        self.started_pids["moto"] = self.moto.pid or 0
        self.out.ok(f"moto server (plays AWS) on {self.moto.endpoint_url}, pid {self.moto.pid}"
                    f" (started by the demo; log {shown(self.dir / 'moto.log')})")
        self.signals.check()

        self._docker_engine()
        self.signals.check()

        self.registry = ensure_registry(self.dir / "registry", die_with_parent=True)
        self.started_pids["registry"] = self.registry.pid or 0
        self.out.ok(f"registry on {self.registry.address}, pid {self.registry.pid} (started by the demo)")
        self.image = build_busybox_image(self.engine, self.registry)  # type: ignore[arg-type]
        self.out.ok(f"offline busybox image pushed to the registry: {self.image}")
        self.signals.check()

        self._sweep_earlier_run()
        self.http_port = free_port()
        self.child_env = self._child_env()
        inputs = {
            "docker_url": self.engine.base_url,  # type: ignore[union-attr]
            "image": self.image,
            "http_port": self.http_port,
            "private_key_path": str(self.key_path),
            "aws_poll_interval": 0.5,
            "greeting": GREETING,
            **self._docker_tls_inputs(),
        }
        self.inputs_file.write_text("# Written by demo.py for this run: where the local engines are.\n"
                                    + yaml.safe_dump(inputs, sort_keys=False))
        self.out.info(f"inputs for this run ({shown(self.inputs_file)}):")
        for line in yaml.safe_dump(inputs, sort_keys=False).splitlines():
            self.out.info(f"  {line}")
        shown_env = {k: self.child_env[k] for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID",
                                                    "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
                                                    "DOCKER_HOST") if k in self.child_env}
        self.out.info("environment of the orchestrator commands below (only theirs):")
        for key, value in shown_env.items():
            self.out.info(f"  {key}={value}")

    def _docker_engine(self) -> None:
        env_host = os.environ.get("DOCKER_HOST")
        missing = [b for b in TOOL_PACKAGES if shutil.which(b) is None]
        if missing:  # testenv installs them all in one apt-get run when it needs one
            self.out.info(f"not installed: {', '.join(missing)}; testenv installs "
                          f"{', '.join(sorted(set(TOOL_PACKAGES.values())))} with apt-get when needed "
                          f"(first run only, root only; this takes a while)")
        self.engine = ensure_docker(self.dir / "docker", die_with_parent=True)
        # ours when started now, or left running in our directory by an earlier, killed demo
        self.engine_owned = self.engine.started or self.engine.run_dir is not None
        if self.engine_owned:
            self.engine.started = True  # so stop() ends it whichever way it was found
            self.started_pids["dockerd"] = self.engine.pid or 0
            self.engine_source = "started by the demo"
            self.out.ok(f"Docker engine (plays the instance's engine) on {self.engine.base_url}, "
                        f"dockerd pid {self.engine.pid} ({self.engine_source}; log "
                        f"{shown(self.engine.log_path) if self.engine.log_path else '-'})")
        else:
            self.engine_source = "DOCKER_HOST" if self.engine.from_env else "the default socket"
            if env_host and not self.engine.from_env:
                self.out.warn(f"DOCKER_HOST={env_host} does not answer; using the default socket")
            self.out.ok(f"Docker engine (plays the instance's engine) on {self.engine.base_url} "
                        f"(already running, from {self.engine_source}: reused, left running)")

    def _docker_tls_inputs(self) -> dict[str, Any]:
        """A reused ``DOCKER_HOST`` with TLS: the blueprint gets the same settings."""
        if not (self.engine and self.engine.from_env and os.environ.get("DOCKER_TLS_VERIFY")):
            return {}
        certs = Path(os.environ.get("DOCKER_CERT_PATH") or Path.home() / ".docker")
        return {"docker_tls_verify": True, "docker_ca_cert": str(certs / "ca.pem"),
                "docker_client_cert": str(certs / "cert.pem"), "docker_client_key": str(certs / "key.pem")}

    def _child_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if k not in _AWS_VARS_DROPPED and not k.startswith("AWS_ENDPOINT_URL_")}
        env.update(DUMMY_CREDENTIALS)
        env["AWS_ENDPOINT_URL"] = self.moto.endpoint_url  # type: ignore[union-attr]
        env["AWS_DEFAULT_REGION"] = REGION
        env["AWS_CONFIG_FILE"] = env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull  # no ~/.aws
        if not (self.engine and self.engine.from_env):  # a reused DOCKER_HOST keeps its TLS settings
            for key in _DOCKER_VARS:
                env.pop(key, None)
            env["DOCKER_HOST"] = self.engine.base_url  # type: ignore[union-attr]
        no_proxy = [p for p in env.get("NO_PROXY", env.get("no_proxy", "")).split(",") if p]
        env["NO_PROXY"] = env["no_proxy"] = ",".join(dict.fromkeys([*no_proxy, "127.0.0.1", "localhost"]))
        return env

    def _docker_client(self) -> Any:
        return self.engine.client()  # type: ignore[union-attr]

    def _labelled(self) -> list[dict[str, Any]]:
        from plugins_docker import labels

        filters = labels.label_filters(self.deployment)
        return list(self._docker_client().api.containers(all=True, filters=filters))

    def _sweep_earlier_run(self) -> None:
        """What an earlier, killed demo left on the engine (same deployment id): containers, tags."""
        left = self._docker_leftovers()
        if any(left.values()):
            self.out.warn(f"deployment {self.deployment} has leftovers of an earlier run on the "
                          f"engine: {left}; removing them")
            self._remove_docker_leftovers()

    # -- the walk-through -------------------------------------------------------------

    def walk_through(self) -> None:
        bp, inputs = shown(BLUEPRINT), shown(self.inputs_file)

        self.out.section("2. validate: the blueprint and the inputs")
        self.step("validate", bp, "-i", inputs)

        self.out.section("3. plan: what install will do, in order")
        self.step("plan", bp, "-i", inputs)

        self.out.section("4. install: key pair, security group, elastic IP, instance, image, container")
        self.install_attempted = True
        self.step("install", bp, "-i", inputs, *self.common())

        self.out.section("5. outputs")
        self.step("outputs", *self.common())
        result = self.step("outputs", *self.common(), "--json", capture=True)
        self.outputs = json.loads(result.stdout)
        self._check_outputs()

        self.out.section("6. status")
        self.step("status", *self.common())

        self.out.section("7. the page the container serves")
        self._http_get(self.outputs["url"])

        self.day_two()

        self.out.section("12. uninstall: everything, dependents first")
        self.step("uninstall", *self.common())
        self.uninstalled = True
        self.step("status", *self.common())

    def day_two(self) -> None:
        """Drift, heal, scale and a custom operation on the running deployment."""
        self.out.section("8. day 2: the instance is terminated behind our back; drift sees it")
        instance_id = str(self.outputs["instance_id"])
        self._terminate(instance_id)
        result = self.run("drift", *self.common(), "--exit-code")
        self.signals.check()
        if result.returncode != 3:
            raise StepFailed(f"`orchestrator drift --exit-code` exited with {result.returncode}, expected 3 "
                             f"(instance {instance_id} is gone)")

        self.out.section("9. heal: a new instance, the same elastic IP, its containers created on it again")
        self.step("heal", *self.common(), "--yes")
        self.step("drift", *self.common(), "--exit-code")
        healed = json.loads(self.step("outputs", *self.common(), "--json", capture=True).stdout)
        if healed["instance_id"] == instance_id or healed["elastic_ip"] != self.outputs["elastic_ip"]:
            raise StepFailed(f"after heal: instance {healed['instance_id']}, elastic IP {healed['elastic_ip']}; "
                             f"expected a new instance with elastic IP {self.outputs['elastic_ip']}")
        self.out.ok(f"instance {healed['instance_id']} replaces {instance_id}; elastic IP {healed['elastic_ip']} "
                    f"moved with it; container {str(healed['container_id'])[:12]} created on it")
        self.healed = healed

        self.out.section("10. scale: one more worker container on the instance")
        self.step("scale", *self.common(), "worker=+1")
        self.step("status", *self.common())

        self.out.section("11. execute: operations the plugins ship (orchestrator operations lists them)")
        self.step("execute", *self.common(), "exec", "--node", "web", "-p", "command=uname -sm")
        self.step("execute", *self.common(), "logs", "--node", "worker", "-p", "tail=1")

    def _terminate(self, instance_id: str) -> None:
        """What someone with the AWS console does: terminate the instance. AWS then lets the
        elastic IP go; moto keeps it associated, so the demo does that part by hand."""
        from plugins_aws.client import ec2_client

        self.out.command(["aws", "ec2", "terminate-instances", "--instance-ids", instance_id])
        ec2 = ec2_client(self._moto_config())
        ec2.terminate_instances(InstanceIds=[instance_id])
        for address in ec2.describe_addresses(Filters=[{"Name": "instance-id", "Values": [instance_id]}])["Addresses"]:
            ec2.disassociate_address(AssociationId=address["AssociationId"])
        self.out.ok(f"instance {instance_id} terminated with boto3 on moto, its elastic IP let go (as AWS does)")

    def _moto_config(self) -> dict[str, str]:
        return {"endpoint_url": self.moto.endpoint_url, "region_name": REGION,  # type: ignore[union-attr]
                "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}

    def _check_outputs(self) -> None:
        o = self.outputs
        missing = [k for k in ("elastic_ip", "instance_id", "container_id", "url") if not o.get(k)]
        if missing:
            raise StepFailed(f"outputs without a value: {', '.join(missing)}")
        if not str(o["instance_id"]).startswith("i-"):
            raise StepFailed(f"instance_id {o['instance_id']!r} is not an EC2 instance id")
        if o["url"] != f"http://127.0.0.1:{self.http_port}/":
            raise StepFailed(f"url {o['url']!r}, expected http://127.0.0.1:{self.http_port}/")
        states = [c.get("State") for c in self._labelled() if c["Id"] == o["container_id"]]
        if states != ["running"]:
            raise StepFailed(f"container {o['container_id'][:12]} is not running on {self.engine.base_url}")  # type: ignore[union-attr]
        self.out.ok(f"container {o['container_id'][:12]} runs on {self.engine.base_url} "  # type: ignore[union-attr]
                    f"with label orchestrator.deployment={self.deployment}")

    def _http_get(self, url: str) -> None:
        self.out.command(["curl", url])
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only
        deadline = time.monotonic() + 15
        while True:
            try:
                with opener.open(url, timeout=3) as resp:
                    status, body = resp.status, resp.read().decode(errors="replace")
                break
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise StepFailed(f"GET {url}: {exc}") from None
                time.sleep(0.2)
                self.signals.check()
        self.out.print(body.rstrip())
        self.http_body = body
        expected = [GREETING, str(self.outputs["instance_id"]), str(self.outputs["elastic_ip"])]
        if status != 200 or not all(e in body for e in expected):
            raise StepFailed(f"GET {url}: status {status}; expected a page naming {', '.join(expected)}")
        self.out.ok(f"HTTP {status} from {url}: the container serves a page with the instance id and "
                    f"elastic IP it got from the AWS nodes")

    # -- clean-up ---------------------------------------------------------------------

    def clean_up(self) -> bool:
        """Undo whatever is still there, stop what the demo started, check nothing is left."""
        self.out.section("13. Clean-up: stop what the demo started, check that nothing is left")
        self.signals.forward = False
        problems: list[str] = []
        if self.install_attempted and not self.uninstalled and self.moto is not None:
            self.out.info("the walk-through did not finish: uninstalling what it installed")
            with _reported(problems, "clean-up uninstall"):
                result = self.run("uninstall", *self.common(), "--retries", "2", "--retry-interval",
                                  "0.5", new_session=True)  # a second Ctrl-C must not cut it short
                if result.returncode != 0:
                    problems.append(f"clean-up uninstall exited with status {result.returncode}")
        problems += self._check_nothing_allocated()
        problems += self._stop_engines()
        problems += self._check_nothing_running()
        if self.key_path.exists():
            problems.append(f"the key pair's private key {shown(self.key_path)} is still there")
        self.problems = problems
        for problem in problems:
            self.out.fail(problem)
        if not problems:
            self.out.ok("nothing is left: no AWS resource of the deployment, no container with its "
                        "label, no image it pulled, no moto server, registry or dockerd of the demo")
        return not problems

    def _check_nothing_allocated(self) -> list[str]:
        problems = []
        if self.moto is not None and self.moto.pid is not None:
            with _reported(problems, "checking AWS for leftovers"):
                from plugins_aws.testing import leaked

                left = leaked(self.deployment, self._moto_config())
                if left:
                    problems.append(f"AWS resources tagged with the deployment are left: {left}")
                else:
                    self.out.ok(f"AWS (moto): nothing tagged orchestrator.deployment={self.deployment}")
        if self.engine is not None and _answers(self.engine):
            with _reported(problems, "checking the Docker engine for leftovers"):
                left = self._docker_leftovers()
                if any(left.values()):
                    problems.append(f"left on the Docker engine: {left}; removing them")
                    self._remove_docker_leftovers()
                else:
                    self.out.ok(f"Docker ({self.engine.base_url}): no container labelled "
                                f"orchestrator.deployment={self.deployment}, no image pulled by it")
        return problems

    def _docker_leftovers(self) -> dict[str, list[str]]:
        from plugins_docker import labels

        client = self._docker_client()
        containers = [(c.get("Names") or [c["Id"]])[0].lstrip("/") for c in self._labelled()]
        marker = labels.pulled_repository(self.deployment)
        images = [t for i in client.api.images(name=marker) for t in i.get("RepoTags") or []]
        return {"containers": containers, "images": images}

    def _remove_docker_leftovers(self) -> None:
        import docker

        from plugins_docker import labels

        client = self._docker_client()
        for summary in self._labelled():
            with contextlib.suppress(docker.errors.NotFound):
                client.api.remove_container(summary["Id"], force=True)
        marker = labels.pulled_repository(self.deployment)
        for image in client.api.images(name=marker):
            for tag in image.get("RepoTags") or []:
                with contextlib.suppress(docker.errors.ImageNotFound):
                    client.images.remove(tag)

    def _stop_engines(self) -> list[str]:
        problems = []
        stops: list[tuple[str, Callable[[], None] | None]] = [
            ("registry", self.registry.stop if self.registry else None),
            ("moto server", self.moto.stop if self.moto else None),
            ("Docker engine", self.engine.stop if self.engine else None),  # only ends one we started
        ]
        for name, stop in stops:
            if stop is not None:
                with _reported(problems, f"stopping the {name}"):
                    stop()
        stopped = [f"{name} (pid {pid})" for name, pid in self.started_pids.items() if pid]
        if stopped:
            self.out.ok(f"stopped {', '.join(stopped)}")
        return problems

    def _check_nothing_running(self) -> list[str]:
        problems = []
        names = {"moto": "moto.server", "registry": "docker-registry", "dockerd": "dockerd"}
        for what, pid in self.started_pids.items():
            if pid and pid_matches(pid, names[what]):
                problems.append(f"{what} (pid {pid}) still runs")
        if self.moto is not None and _http_answers(f"{self.moto.endpoint_url}/moto-api/data.json"):
            problems.append(f"something still answers on the moto endpoint {self.moto.endpoint_url}")
        if self.engine is not None and self.engine_owned:
            for root in (self.engine.run_dir, self.engine.workdir):
                if root is not None:
                    helpers = pids_mentioning(f"{root}/", ("dockerd", "containerd", "runc"))
                    if helpers:
                        problems.append(f"processes of the demo's dockerd still run: pids {helpers}")
                        break
            if ping_docker(self.engine.base_url):
                problems.append(f"the demo's Docker engine still answers on {self.engine.base_url}")
        elif self.engine is not None and not _answers(self.engine):
            problems.append(f"the reused Docker engine {self.engine.base_url} no longer answers")
        return problems

    def report(self, status: int, path: Path) -> None:
        data = {
            "status": status,
            "deployment": self.deployment,
            "outputs": self.outputs,
            "http_body": self.http_body,
            "healed_outputs": self.healed,
            "docker_host": self.engine.base_url if self.engine else None,
            "docker_from_env": bool(self.engine and self.engine.from_env),
            "engine_started_by_demo": self.engine_owned,
            "aws_endpoint_url": self.moto.endpoint_url if self.moto else None,
            "started_pids": self.started_pids,
            "docker_run_dir": str(self.engine.run_dir) if self.engine and self.engine.run_dir else None,
            "problems": self.problems,
        }
        path.write_text(json.dumps(data, indent=2) + "\n")


@contextlib.contextmanager
def _reported(problems: list[str], what: str) -> Any:
    """Clean-up goes on after a failing part; the failure is reported."""
    try:
        yield
    except Exception as exc:
        problems.append(f"{what}: {type(exc).__name__}: {exc}")


def _answers(engine: DockerEngine) -> bool:
    return ping_docker(None if engine.from_env else engine.base_url)


def _http_answers(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        opener.open(url, timeout=2).close()
    except OSError:
        return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=ROOT / ".demo",
                        help="state, logs and engine data (default: .demo/ in the repository)")
    parser.add_argument("--deployment", default=DEPLOYMENT, help=f"deployment id (default {DEPLOYMENT})")
    parser.add_argument("--report", type=Path, help="write a JSON summary of the run here")
    args = parser.parse_args(argv)

    out, signals = Out(), Signals()
    signals.install()
    demo = Demo(args.dir.resolve(), args.deployment, out, signals)
    status = 1
    out.print(f"orchestrator demo: {shown(BLUEPRINT)} against a local moto server and Docker engine")
    try:
        demo.set_up()
        demo.walk_through()
        status = 0
    except Interrupted as exc:
        out.fail(f"interrupted ({exc})")
        status = 130
    except StepFailed as exc:
        out.fail(str(exc))
    except TestEnvError as exc:
        out.fail(f"could not provide an engine: {exc}")
    except Exception as exc:
        import traceback

        traceback.print_exc()
        out.fail(f"{type(exc).__name__}: {exc}")
    finally:
        clean = demo.clean_up()
        if status == 0 and not clean:
            status = 1
        total = out.finish()
        if args.report:
            demo.report(status, args.report)
    out.section("Summary")
    for title, seconds in out.timings:
        out.info(f"{seconds:6.1f}s  {title}")
    out.info(f"{total:6.1f}s  in all")
    if status == 0:
        out.ok("the demo succeeded")
    else:
        out.fail(f"the demo did not succeed (exit status {status})")
    return status


if __name__ == "__main__":
    sys.exit(main())
