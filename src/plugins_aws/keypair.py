"""The ``aws_keypair`` plugin: ``aws.ec2.KeyPair``.

AWS hands out a generated private key exactly once, so it goes straight to
``private_key_path`` (mode 0600, created exclusively) and is never logged nor put in
runtime properties. A key pair found by tag whose private key file was never written
(a crash in between) is useless, so it is replaced rather than adopted.

Day 2: AWS cannot change a key pair, so its name, type and public key replace it; its
tags change in place, and a new ``private_key_path`` moves the file. ``check_drift``
notices a key pair deleted (or deleted and made again: another fingerprint) and a
private key file that disappeared.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from orchestrator import NonRecoverableError
from orchestrator.sdk import Plugin
from plugins_aws.changes import changed, differs
from plugins_aws.errors import call, error_code
from plugins_aws.resource import AwsResource
from plugins_aws.schema import replaced, resource_properties

TYPE = "aws.ec2.KeyPair"
NOT_FOUND = ("InvalidKeyPair.NotFound",)

TYPES: dict[str, Any] = {
    "node_types": {
        TYPE: {
            "derived_from": "orchestrator.nodes.Root",
            "description": "An EC2 key pair: generated (private key saved to a file) or imported.",
            "properties": resource_properties({
                "key_name": replaced({"type": "string", "required": False,
                                      "description": "Defaults to '<deployment>-<instance id>'."}),
                "key_type": replaced({"type": "string", "default": "rsa",
                                      "constraints": [{"valid_values": ["rsa", "ed25519"]}]}),
                "public_key_material": replaced({"type": "string", "required": False,
                                                 "description": "An OpenSSH public key to import instead "
                                                                "of generating a key pair."}),
                "private_key_path": {"type": "string", "required": False,
                                     "description": "Where to write a generated private key "
                                                    "(mode 0600; removed by uninstall; a new path "
                                                    "moves the file)."},
            }),
        },
    },
}


def write_private_key(path: Path, material: str, *, replace: bool) -> None:
    """Write a private key readable by its owner only, never following an existing file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if replace:
        path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(material)
    os.chmod(path, 0o600)  # whatever the umask was


def check_writable(path: Path) -> None:
    """Fail before anything is created when the private key's file cannot be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise NonRecoverableError(f"private_key_path {path}: cannot create its directory: {exc}") from None
    if not path.parent.is_dir() or not os.access(path.parent, os.W_OK | os.X_OK):
        raise NonRecoverableError(f"private_key_path {path}: its directory is not writable")


class KeyPair(AwsResource):
    kind = "key pair"
    tag_resource_types = ("key-pair",)

    @property
    def key_name(self) -> str:
        return self.properties.get("key_name") or self.default_name()

    @property
    def private_key_path(self) -> Path | None:
        path = self.properties.get("private_key_path")
        return Path(path).expanduser() if path else None

    def describe(self, resource_id: str) -> dict[str, Any] | None:
        by = {"KeyPairIds": [resource_id]} if resource_id.startswith("key-") else {"KeyNames": [resource_id]}
        found = call(self.client.describe_key_pairs, ignore=NOT_FOUND, **by)
        pairs = (found or {}).get("KeyPairs") or []
        return pairs[0] if pairs else None

    def find_tagged(self, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return call(self.client.describe_key_pairs, Filters=filters)["KeyPairs"]

    def id_of(self, resource: dict[str, Any]) -> str:
        return resource["KeyName"]

    def runtime_of(self, resource: dict[str, Any]) -> dict[str, Any]:
        return {"key_name": resource["KeyName"], "key_pair_id": resource.get("KeyPairId"),
                "key_fingerprint": resource.get("KeyFingerprint")}

    def adopt(self, resource: dict[str, Any]) -> dict[str, Any] | None:
        path = self.private_key_path
        if self.properties.get("public_key_material") or path is None or path.exists():
            return resource
        return None  # generated, but its private key was lost with the crashed attempt

    def create_new(self) -> dict[str, Any]:
        public_key = self.properties.get("public_key_material")
        if public_key:
            try:
                return call(self.client.import_key_pair, KeyName=self.key_name,
                            PublicKeyMaterial=public_key.encode("ascii"),
                            TagSpecifications=self.tag_specifications())
            except NonRecoverableError as exc:
                existing = self._own_duplicate(exc)
                if existing is None:
                    raise
                return existing
        path = self.private_key_path
        ours = path is not None and self.runtime.get("private_key_path") == str(path)
        if path is not None:
            if path.exists() and not ours:
                raise NonRecoverableError(f"private_key_path {path} already exists; refusing to "
                                          f"overwrite it (remove it or choose another path)")
            check_writable(path)  # before AWS makes a key whose private half could not be kept
            self.save(private_key_path=str(path))  # ours from here on: uninstall removes it
        else:
            self.logger.warning("no private_key_path: the private key of %s is discarded",
                                    self.key_name)
        created = self._create_key_pair()
        material = created.pop("KeyMaterial")
        if path is not None:
            try:
                write_private_key(path, material, replace=ours)
            except OSError as exc:  # the key pair exists (tagged): uninstall deletes it
                raise NonRecoverableError(f"cannot write the private key of {self.key_name} to "
                                          f"private_key_path {path}: {exc}") from exc
            self.logger.info("wrote the private key of %s to %s (mode 0600)", self.key_name, path)
        return created

    def _create_key_pair(self) -> dict[str, Any]:
        params = {"KeyName": self.key_name, "KeyType": self.properties.get("key_type", "rsa"),
                  "TagSpecifications": self.tag_specifications()}
        try:
            return call(self.client.create_key_pair, **params)
        except NonRecoverableError as exc:
            if self._own_duplicate(exc) is None:
                raise
        # ours, from an attempt whose tags were not yet searchable; its private key is lost
        self.logger.warning("replacing key pair %s left by an interrupted create", self.key_name)
        self.delete_existing(self.key_name)
        return call(self.client.create_key_pair, **params)

    def _own_duplicate(self, exc: NonRecoverableError) -> dict[str, Any] | None:
        """The key pair behind a Duplicate error, if this node instance created it."""
        if error_code(exc.__cause__) != "InvalidKeyPair.Duplicate":
            return None
        existing = self.describe(self.key_name)
        return existing if existing is not None and self.owned(existing) else None

    def delete_existing(self, resource_id: str) -> None:
        call(self.client.delete_key_pair, KeyName=resource_id, ignore=NOT_FOUND)

    def delete(self) -> None:
        super().delete()
        written = self.runtime.pop("private_key_path", None)
        if written and not self.external:
            Path(written).unlink(missing_ok=True)

    # -- day 2 ------------------------------------------------------------------------

    def tag_targets(self) -> list[str]:
        pair_id = self.runtime.get("key_pair_id")
        if not pair_id:  # recorded by every create since 0.1; looked up for anything older
            pair_id = (self.describe(self.require_id()) or {}).get("KeyPairId")
        if not pair_id:
            raise NonRecoverableError(f"key pair {self.resource_id} no longer exists: its tags cannot change")
        return [pair_id]

    def update(self) -> None:
        super().update()
        if changed(self.ctx.changes, "private_key_path") and not self.external:
            self.move_private_key()

    def move_private_key(self) -> None:
        """Move the private key file to the new ``private_key_path`` (never overwriting a file)."""
        recorded, path = self.runtime.get("private_key_path"), self.private_key_path
        if self.properties.get("public_key_material"):
            return  # imported: there is no private key here
        if path is None:
            if recorded:
                self.logger.warning("private_key_path is no longer set: the private key stays at %s (it is not "
                                    "deleted before the key pair is)", recorded)
            return
        if recorded == str(path):
            return  # moved already (a repeated update)
        if not recorded:
            raise NonRecoverableError(f"the private key of {self.key_name} was discarded when it was created (no "
                                      f"private_key_path): it cannot be written to {path} now; give the key pair "
                                      f"another key_name to replace it")
        material = _read(Path(recorded), self.key_name)
        if path.exists() and _read(path, self.key_name) != material:
            raise NonRecoverableError(f"private_key_path {path} already exists; refusing to overwrite it")
        if not path.exists():
            check_writable(path)
            write_private_key(path, material, replace=False)
        self.save(private_key_path=str(path))  # before the old file goes: a rerun finds the move done
        Path(recorded).unlink(missing_ok=True)
        self.logger.info("moved the private key of %s from %s to %s", self.key_name, recorded, path)

    def drift_of(self, resource: dict[str, Any]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        recorded = self.runtime.get("key_fingerprint")
        if recorded and resource.get("KeyFingerprint") != recorded:  # deleted and made again by hand
            found["key_fingerprint"] = differs(recorded, resource.get("KeyFingerprint"))
        written = self.runtime.get("private_key_path")
        if written and not Path(written).is_file():
            found["private_key_path"] = differs(written, None)
        return found


def _read(path: Path, key_name: str) -> str:
    try:
        return path.read_text("ascii")
    except OSError as exc:
        raise NonRecoverableError(f"cannot read the private key of {key_name} at {path}: {exc}") from exc


plugin = Plugin(TYPES, {TYPE: KeyPair})
