"""Custom operations of ``aws.ec2.Instance`` (``orchestrator execute``): ``reboot`` and
``console_output``.

Both act on the instance recorded by ``create`` and change nothing the deployment records.
``reboot`` may wait until the instance is running with no status check failing
(``DescribeInstanceStatus``). That is all EC2 can tell: it reports a rebooting instance as
``running`` throughout, so the wait does not prove the operating system is up again (probe
the service for that). The wait asks to be retried like every wait of this plugin, and the
marker left before RebootInstances keeps a retry from rebooting twice.

``console_output`` returns the text: AWS sends it base64-encoded and botocore decodes it
(bytes that are not UTF-8 replaced); there is none until the instance has written some.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from orchestrator import NonRecoverableError
from plugins_aws.errors import call

if TYPE_CHECKING:
    from plugins_aws.instance import Instance

REBOOT_SENT = "reboot_sent_at"  # runtime, never recorded: RebootInstances was called at this time
FAILING = ("impaired",)  # a status check in this state means the instance is not back

OPERATIONS: dict[str, Any] = {
    "reboot": {
        "description": "Reboot the instance (RebootInstances).",
        "inputs": {
            "wait": {"type": "boolean", "default": False,
                     "description": "Then wait until it is running with no failing status check "
                                    "(at most the node's wait_timeout)."},
        },
    },
    "console_output": {
        "description": "The instance's console output (GetConsoleOutput), as text.",
        "inputs": {
            "latest": {"type": "boolean", "default": False,
                       "description": "The most recent output (Nitro instances only) instead of "
                                      "what was buffered at the last boot."},
        },
    },
}


def reboot(resource: Instance, wait: bool) -> dict[str, Any]:
    """RebootInstances once per execution of the operation; then, with ``wait``, the looks
    until it is running again. The result names the instance and what was seen last."""
    rid = resource.require_id()
    if REBOOT_SENT not in resource.runtime:
        _require_running(resource, rid)
        call(resource.client.reboot_instances, InstanceIds=[rid])
        resource.runtime[REBOOT_SENT] = time.time()  # a retry of the wait must not reboot again
        resource.logger.info("instance %s: reboot requested", rid)
    if not wait:
        return {"instance_id": rid, "reboot": "requested"}
    status: dict[str, Any] = resource.wait(lambda: _passing(resource, rid),
                                           f"instance {rid} to be running with no failing status check")
    seconds = round(time.time() - resource.runtime[REBOOT_SENT], 1)
    resource.logger.info("instance %s is running again (%.1fs after the reboot request)", rid, seconds)
    return {"instance_id": rid, "reboot": "done", "state": status["InstanceState"]["Name"],
            "instance_status": _check(status, "InstanceStatus"), "system_status": _check(status, "SystemStatus"),
            "seconds": seconds}


def _require_running(resource: Instance, rid: str) -> None:
    """Refuse at once what AWS would refuse or retry forever: a stopped or terminated instance."""
    found = resource.describe(rid)
    state = resource.state_of(found) if found is not None else "gone"
    if state != "running":
        heal = " (orchestrator heal replaces it)" if found is None or resource.is_gone(found) else ""
        raise NonRecoverableError(f"instance {rid} is {state}, not running: nothing to reboot{heal}")


def _passing(resource: Instance, rid: str) -> dict[str, Any] | None:
    """The instance's status once it is running with no failing check; None before."""
    found = call(resource.client.describe_instance_status, InstanceIds=[rid], IncludeAllInstances=True)
    statuses = (found or {}).get("InstanceStatuses") or []
    if not statuses:
        return None
    status = statuses[0]
    state = {"State": status.get("InstanceState") or {"Name": "pending"}}
    if resource.is_gone(state):
        raise NonRecoverableError(f"instance {rid} is {resource.state_of(state)}: it will not be back")
    running = resource.state_of(state) == "running"
    checks = (_check(status, "InstanceStatus"), _check(status, "SystemStatus"))
    return status if running and not any(c in FAILING for c in checks) else None


def _check(status: dict[str, Any], key: str) -> str:
    return str((status.get(key) or {}).get("Status") or "not-applicable")


def console_output(resource: Instance, latest: bool) -> str:
    """The console output as text (botocore decodes AWS's base64); empty when there is none yet."""
    rid = resource.require_id()
    params: dict[str, Any] = {"InstanceId": rid}
    if latest:  # only sent when asked for: older instance types refuse the parameter
        params["Latest"] = True
    answer = call(resource.client.get_console_output, **params) or {}
    text = str(answer.get("Output") or "")
    if not text:
        resource.logger.info("instance %s has no console output yet", rid)
    return text
