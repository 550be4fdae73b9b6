"""An offline busybox image: static busybox in a tar, imported, pushed, pulled back.

There is no internet here, so no base image can be pulled: the image is made
from Debian's busybox-static binary and one symlink per applet.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from typing import TYPE_CHECKING, Any

from testenv._proc import BUSYBOX, TestEnvError, ensure_binaries
from testenv.registry import Registry

if TYPE_CHECKING:
    from testenv.docker_engine import DockerEngine


def build_busybox_image(
    engine: DockerEngine,
    registry: Registry,
    repository: str = "testenv/busybox",
    tag: str = "latest",
) -> str:
    """Import a busybox image offline, push it to *registry*, drop the local copy.

    Returns ``ADDRESS/repository:tag``. Skips the build when the registry already
    holds that tag, so repeated calls are cheap. The local copy is removed so a
    later pull is a real pull from the registry (checked once here).
    """
    ensure_binaries(["busybox"])
    name = f"{registry.address}/{repository}"
    ref = f"{name}:{tag}"
    if registry.has_manifest(repository, tag):
        return ref
    api = engine.client().api
    api.import_image_from_data(
        _busybox_rootfs_tar(),
        repository=name,
        tag=tag,
        changes=['CMD ["/bin/sh"]', "ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
    )
    _check_stream(
        api.push(name, tag, stream=True, decode=True, auth_config=registry.auth_config), ref
    )
    api.remove_image(ref)
    _check_stream(
        api.pull(name, tag, stream=True, decode=True, auth_config=registry.auth_config), ref
    )
    api.remove_image(ref)
    return ref


def _check_stream(chunks: Any, ref: str) -> None:
    for chunk in chunks:
        if "error" in chunk:
            raise TestEnvError(f"{ref}: {chunk.get('error')}")


def _busybox_rootfs_tar() -> bytes:
    """A minimal root filesystem: static busybox plus one symlink per applet."""
    applets = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d, mode in [("bin", 0o755), ("etc", 0o755), ("usr", 0o755), ("root", 0o700),
                        ("tmp", 0o1777), ("proc", 0o555), ("sys", 0o555), ("dev", 0o755),
                        ("var", 0o755), ("var/www", 0o755)]:  # fmt: skip
            _add(tar, d, tarfile.DIRTYPE, mode)
        for link, target in [("sbin", "bin"), ("usr/bin", "../bin"), ("usr/sbin", "../bin")]:
            _add(tar, link, tarfile.SYMTYPE, 0o777, linkname=target)
        _add(tar, "bin/busybox", tarfile.REGTYPE, 0o755, data=BUSYBOX.read_bytes())
        for applet in sorted(set(applets.stdout.split()) - {"busybox"}):
            _add(tar, f"bin/{applet}", tarfile.SYMTYPE, 0o777, linkname="busybox")
        _add(tar, "etc/passwd", tarfile.REGTYPE, 0o644, data=b"root:x:0:0:root:/root:/bin/sh\n")
        _add(tar, "etc/group", tarfile.REGTYPE, 0o644, data=b"root:x:0:\n")
    return buf.getvalue()


def _add(
    tar: tarfile.TarFile, name: str, kind: bytes, mode: int, data: bytes = b"", linkname: str = ""
) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname, info.mtime = kind, mode, linkname, 0
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
