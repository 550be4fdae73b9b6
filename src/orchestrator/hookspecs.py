"""Every hook a plugin can implement: the plugin author's reference.

Implement a hook with a function of the same name decorated with
``@orchestrator.hookimpl``; take only the arguments you need. Lifecycle and relationship
hooks are *routed*: for a node of type T, only the plugin that registered T (or T's
nearest registered ancestor) has its implementations called. Hook wrappers
(``@hookimpl(wrapper=True)``) of plugins that register no types see every call, which
is how a plugin adds tracing, tagging, dry-run or policy to types it does not own.

Return values of lifecycle and relationship hooks are ignored: state goes into
``ctx.instance.runtime_properties`` (persisted after the operation and at
``ctx.instance.update()``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from orchestrator import hookspec

if TYPE_CHECKING:
    from orchestrator.ctx import NodeTemplateInfo, OperationContext

# ---------------------------------------------------------------- registration


@hookspec
def register_types() -> Mapping[str, Any] | str:
    """Declare the node, relationship and data types this plugin owns.

    Called once for each plugin when the plugin manager is built. Return a mapping (or
    YAML text) in blueprint form: ``{"node_types": {...}, "relationships": {...},
    "data_types": {...}}``. Types may derive from the core's base types
    (``orchestrator.nodes.Root``, ``orchestrator.nodes.Compute``,
    ``orchestrator.relationships.depends_on|connected_to|contained_in``) or from
    another plugin's types. Registering a type name another plugin registered is an
    error naming both plugins. A plugin that registers no types owns no nodes; its
    hook wrappers see every call.
    """


@hookspec
def cloudify_packs() -> Iterable[Any]:
    """The Cloudify plugins this plugin stands in for (``orchestrator.cloudify.CloudifyPack``).

    Asked only when a Cloudify blueprint (``tosca_definitions_version: cloudify_dsl_*``)
    is loaded: its imports of a Cloudify plugin's YAML resolve to these packs, offline,
    and the Cloudify types they declare run as the plugin's own types. A pack's mapped
    types must be registered (by this plugin or another) through ``register_types``.
    """


# ---------------------------------------------------------------- validation


@hookspec
def validate_node(node: NodeTemplateInfo) -> Iterable[str | tuple[str | Sequence[str | int], str]] | None:
    """Check one node template when the blueprint is loaded; return its problems.

    Called by ``validate``, ``plan`` and ``install`` (after the core checked the property
    values against the type's schema), once per node template, routed like lifecycle
    hooks: only the plugin owning the template's type is asked. Catch here what the schema
    cannot say but would fail at install anyway (two peers in one rule, a port range
    that is upside down), so the user sees it before anything runs.

    Return an iterable of problems (or ``None`` for none): a message about the whole
    node, or ``(path, message)`` where ``path`` names the property value at fault, as a
    property name or a sequence of keys and indexes (``("rules", 1)``). Each becomes a
    ``FILE:LINE:COL: node template 'NAME': PATH: message`` line, and the command exits 2.
    Values known only at run time are still their functions (``orchestrator.sdk.unresolved``):
    do not report those. Must be quick and free of side effects (no API calls).
    """


# ---------------------------------------------------------------- node lifecycle
# install runs create -> configure -> start per node instance (relationship hooks
# interleaved, see below); uninstall runs stop -> delete. Each must be idempotent: an
# operation interrupted by a crash runs again with the runtime properties it saved.


@hookspec
def create(ctx: OperationContext) -> None:
    """Create the resource of one node instance (a VM, a key pair, a container).

    Called once per instance during ``install``, after every relationship target of
    the instance is started. Save identifiers in ``ctx.instance.runtime_properties``
    (and call ``ctx.instance.update()`` right after the side effect, before waiting
    for anything) so that a retried or resumed create finds the resource instead of
    making a second one.
    """


@hookspec
def configure(ctx: OperationContext) -> None:
    """Configure the created resource; called after every ``preconfigure``."""


@hookspec
def start(ctx: OperationContext) -> None:
    """Start the resource and wait until it is ready (running, healthy).

    Wait by asking to be retried (``orchestrator.sdk.wait_until``), never by sleeping:
    a sleeping hook holds a worker. Find a process or VM an earlier attempt started
    before starting another. Targets of this instance's relationships are started
    before it; ``establish`` runs after this hook.
    """


@hookspec
def stop(ctx: OperationContext) -> None:
    """Stop the resource during ``uninstall``; called only if ``start`` was attempted.

    It must really stop it (the conformance suite checks with the subject's probe) and
    be harmless when the resource is already stopped or gone.
    """


@hookspec
def delete(ctx: OperationContext) -> None:
    """Delete the resource during ``uninstall``; called if ``create`` was attempted.

    Must succeed when the resource is already gone (deleted behind our back, or by a
    previous interrupted uninstall).
    """


# ---------------------------------------------------------------- relationship lifecycle
# One call per relationship instance (source -> target); ``ctx.source`` and
# ``ctx.target`` each have ``.node`` and ``.instance``. The hook is routed to the
# plugin that owns the *relationship* type.


@hookspec
def preconfigure(ctx: OperationContext) -> None:
    """Prepare the source for its target before the source's ``configure``."""


@hookspec
def postconfigure(ctx: OperationContext) -> None:
    """Act on source and target after the source's ``configure``."""


@hookspec
def establish(ctx: OperationContext) -> None:
    """Connect source and target once both are started (e.g. associate an IP)."""


@hookspec
def unlink(ctx: OperationContext) -> None:
    """Undo ``establish`` during ``uninstall``, after the source is stopped."""


# ---------------------------------------------------------------- day 2


@hookspec
def update(ctx: OperationContext) -> None:
    """Change a started instance's real resource to its new properties, in place.

    Called by ``orchestrator update`` for an instance whose properties changed.
    ``ctx.changes`` maps each changed property path (``"port"``, ``"rules[0].cidr"``,
    ``"tags.owner"``) to ``(old, new)`` (``ABSENT`` from ``orchestrator`` on the side where
    the key did not exist); ``ctx.node.properties`` holds the new properties. A type whose
    plugin does not implement ``update`` is replaced instead (delete, then create), and so
    is a change to a property its type declares with ``replace_on_change: true``. Like
    every hook it may run again after a crash: apply the changes idempotently.
    """


@hookspec(firstresult=True)
def check_drift(ctx: OperationContext) -> Mapping[str, Any] | str | None:
    """Compare the real resource with what the instance recorded; change nothing.

    Called by ``orchestrator drift`` for each started instance. Return ``None`` when the
    resource is as recorded; a mapping of what differs (e.g. ``{"instance_type":
    {"recorded": "t3.micro", "actual": "t3.large"}}``); or ``"gone"`` (or
    ``{"gone": "why"}``) when it no longer exists. Raising counts as the check failing,
    not as drift.
    """


@hookspec(firstresult=True)
def run_operation(ctx: OperationContext) -> Any:
    """Run a custom operation the type declared (``operations:`` in ``register_types``).

    Called by ``orchestrator execute -d NAME OPERATION`` on each selected started instance,
    in parallel. ``ctx.operation.name`` is the operation, ``ctx.operation.inputs`` its
    inputs, checked against the declared schema (defaults filled in) before anything ran.
    Return a JSON-able result: it is recorded as an event and printed. A plugin built with
    ``orchestrator.sdk.Plugin`` implements it as a method named like the operation.
    """


NODE_OPERATIONS = ("create", "configure", "start", "stop", "delete")
RELATIONSHIP_OPERATIONS = ("preconfigure", "postconfigure", "establish", "unlink")
DAY2_OPERATIONS = ("update", "check_drift", "run_operation")
LIFECYCLE_HOOKS = NODE_OPERATIONS + RELATIONSHIP_OPERATIONS + DAY2_OPERATIONS
ROUTED_HOOKS = (*LIFECYCLE_HOOKS, "validate_node")
"""Every hook called only for the plugin that owns a type (plus type-less wrappers)."""
