"""An offline base for the daemon's Dockerfile: this machine's Debian python3.11 with the project's
dependencies, so `docker build --build-arg BASE=...` needs no registry and no PyPI.

The interpreter, its standard library and busybox are assembled as tests/images.py does; on top go the
project environment's site-packages (manylinux wheels: the same CPython 3.11 ABI) without what the
daemon never imports (pulumi and its providers, test tools) and without the project itself (the
Dockerfile installs that from the repository). Debian's EXTERNALLY-MANAGED marker is left out so pip
installs into /usr/local as it does in python:3.11-slim.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from tests import images

BASE_IMAGE = "costwise-platform-base:3.11"
VERSION = "4"  # bump when the contents change (4: Jinja2 for the web page)
SITE = Path(sys.prefix) / "lib" / "python3.11" / "site-packages"
LEFT_OUT = ("pulumi", "kubernetes_validate", "debugpy", "pytest", "_pytest", "costwise", "__editable__",
            "pygments", "grpc", "IPython", "selenium")


def ensure_base_image(client, tag: str = BASE_IMAGE) -> str:
    import docker

    try:
        if client.images.get(tag).labels.get("costwise.platform-base") == VERSION:
            return tag
    except docker.errors.ImageNotFound:
        pass
    repository, _, version = tag.partition(":")
    client.api.import_image_from_data(
        _rootfs_tar(), repository=repository, tag=version or "latest",
        changes=["ENV PATH=/usr/local/bin:/usr/bin:/bin", "ENV LANG=C.UTF-8",
                 f"LABEL costwise.platform-base={VERSION}"],
    )
    return tag


def _kept(path: Path) -> bool:
    return not path.name.startswith(LEFT_OUT)


def _rootfs_tar() -> bytes:
    busybox = next(p for p in images.BUSYBOX_CANDIDATES if p.exists())
    packages = [p for p in sorted(SITE.iterdir()) if _kept(p)]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in ("bin", "sbin", "usr/bin", "usr/lib", "usr/local/bin", "lib64", "etc", "root", images.DIST_PACKAGES):
            images._dir(tar, name)
        images._dir(tar, "tmp", 0o1777)
        tar.add(images.PYTHON, "usr/bin/python3.11")
        for alias in ("python3", "python"):
            images._link(tar, f"usr/bin/{alias}", "python3.11")
        for lib in sorted(images._shared_libraries([p for p in packages if p.is_dir()])):
            tar.add(os.path.realpath(lib), lib.lstrip("/"))
        for path in packages:
            tar.add(path, f"{images.DIST_PACKAGES}/{path.name}", filter=images._package_filter)
        tar.add(images.STDLIB, images.STDLIB.as_posix().lstrip("/"), filter=_stdlib_filter)
        tar.add(busybox, "bin/busybox")
        applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
        for applet in applets:
            if applet != "busybox":
                images._link(tar, f"bin/{applet}", "busybox")
        images._file(tar, "etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n")
        images._file(tar, "etc/group", "root:x:0:\nnogroup:x:65534:\n")
    return buf.getvalue()


def _stdlib_filter(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    if info.name.endswith("EXTERNALLY-MANAGED"):
        return None
    return images._stdlib_filter(info)


if __name__ == "__main__":
    import docker

    print(ensure_base_image(docker.from_env()))
