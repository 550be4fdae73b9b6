"""aws.ec2.KeyPair hooks in isolation, against the moto server."""

from __future__ import annotations

import stat

import pytest

from orchestrator import NonRecoverableError
from plugins_aws.tags import DEPLOYMENT_TAG, INSTANCE_TAG

pytestmark = pytest.mark.integration

KEY = "aws.ec2.KeyPair"


def _pairs(ec2, name):
    return ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [name]}])["KeyPairs"]


def test_create_writes_private_key_0600_and_never_logs_it(node, ec2, tmp_path):
    path = tmp_path / "keys" / "id.pem"
    kp = node(KEY, private_key_path=str(path))
    kp.call("create")
    name = kp.runtime_properties["aws_resource_id"]
    assert name == f"test-{kp.id}"
    (pair,) = _pairs(ec2, name)
    tags = {t["Key"]: t["Value"] for t in pair["Tags"]}
    assert tags[DEPLOYMENT_TAG] == "test" and tags[INSTANCE_TAG] == kp.id
    material = path.read_text()
    assert "PRIVATE KEY" in material
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secret_line = material.strip().splitlines()[1]
    assert not any(secret_line in m for m in kp.logs)
    assert secret_line not in repr(kp.runtime_properties)

    kp.call("delete")
    assert _pairs(ec2, name) == []
    assert not path.exists()
    kp.call("delete")  # already gone: still fine


def test_import_public_key(node, ec2):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    public = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    kp = node(KEY, key_name="imported-key-x1", public_key_material=public)
    kp.call("create")
    assert kp.runtime_properties["key_name"] == "imported-key-x1"
    assert _pairs(ec2, "imported-key-x1")
    kp.call("delete")
    assert _pairs(ec2, "imported-key-x1") == []


def test_bad_public_key_is_a_clear_error(node, ec2):
    kp = node(KEY, key_name="bad-key-x1", public_key_material="ssh-rsa not-a-key")
    with pytest.raises(NonRecoverableError, match=r"AWS InvalidKey(Pair)?\.Format in ImportKeyPair"):
        kp.call("create")
    assert _pairs(ec2, "bad-key-x1") == []


def test_refuses_to_overwrite_an_existing_file(node, ec2, tmp_path):
    path = tmp_path / "mine.pem"
    path.write_text("precious")
    kp = node(KEY, private_key_path=str(path))
    with pytest.raises(NonRecoverableError, match="already exists"):
        kp.call("create")
    assert path.read_text() == "precious"
    assert _pairs(ec2, f"test-{kp.id}") == []


def test_duplicate_name_of_someone_elses_key(node, ec2):
    ec2.create_key_pair(KeyName="taken-key-x1")
    kp = node(KEY, key_name="taken-key-x1")
    with pytest.raises(NonRecoverableError, match=r"InvalidKeyPair\.Duplicate"):
        kp.call("create")
    kp.call("delete")  # the foreign key is not ours: untouched
    assert _pairs(ec2, "taken-key-x1")
    ec2.delete_key_pair(KeyName="taken-key-x1")


def test_resume_after_crash_before_the_private_key_was_written(node, ec2, tmp_path):
    path = tmp_path / "k.pem"
    kp = node(KEY, private_key_path=str(path))
    kp.call("create")
    first = kp.runtime_properties["key_pair_id"]
    path.unlink()  # as if the process died between CreateKeyPair and the write
    kp.runtime_properties = {"private_key_path": str(path)}
    kp.call("create")
    (pair,) = _pairs(ec2, f"test-{kp.id}")
    assert pair["KeyPairId"] != first  # replaced: the old private key was lost
    assert path.exists()
    kp.call("delete")


def test_resume_after_crash_after_the_write_adopts_the_key(node, ec2, tmp_path):
    path = tmp_path / "k.pem"
    kp = node(KEY, private_key_path=str(path))
    kp.call("create")
    first = kp.runtime_properties["key_pair_id"]
    kp.runtime_properties = {"private_key_path": str(path)}  # the id was never saved
    kp.call("create")
    assert kp.runtime_properties["key_pair_id"] == first
    assert any("found key pair" in m for m in kp.logs)
    kp.call("delete")
    assert _pairs(ec2, f"test-{kp.id}") == []


def test_delete_finds_a_key_whose_id_was_never_saved(node, ec2):
    kp = node(KEY)
    kp.call("create")
    name = kp.runtime_properties["aws_resource_id"]
    kp.runtime_properties = {}
    kp.call("delete")
    assert _pairs(ec2, name) == []


def test_use_external_resource(node, ec2):
    ec2.create_key_pair(KeyName="external-key-x1")
    kp = node(KEY, use_external_resource=True, resource_id="external-key-x1")
    kp.call("create")
    assert kp.runtime_properties["aws_resource_id"] == "external-key-x1"
    assert kp.runtime_properties["external_resource"] is True
    kp.call("delete")
    assert _pairs(ec2, "external-key-x1")  # never deleted
    ec2.delete_key_pair(KeyName="external-key-x1")


def test_use_external_resource_that_does_not_exist(node):
    kp = node(KEY, use_external_resource=True, resource_id="no-such-key-x1")
    with pytest.raises(NonRecoverableError, match="key pair 'no-such-key-x1' does not exist"):
        kp.call("create")
    kp2 = node(KEY, use_external_resource=True)
    with pytest.raises(NonRecoverableError, match="no resource_id"):
        kp2.call("create")


def test_resume_when_tags_are_not_searchable_yet(node, ec2, monkeypatch):
    """Real AWS is eventually consistent: the tag lookup may miss a key created a moment
    ago. CreateKeyPair then answers Duplicate; the key is ours (tagged), so it is
    replaced rather than reported as someone else's."""
    from plugins_aws.keypair import KeyPair

    kp = node(KEY)
    kp.call("create")
    first = kp.runtime_properties["key_pair_id"]
    kp.runtime_properties = {}
    monkeypatch.setattr(KeyPair, "find_tagged", lambda self, filters: [])
    kp.call("create")
    (pair,) = _pairs(ec2, f"test-{kp.id}")
    assert pair["KeyPairId"] == kp.runtime_properties["key_pair_id"] != first
    kp.call("delete")
