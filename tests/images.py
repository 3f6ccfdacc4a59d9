"""A small Python image for Docker tests, built offline from this machine's Debian python3.11.

No registry is reachable here, so the image is assembled as a tar stream (the interpreter, the shared
libraries it and its extension modules load, the standard library and busybox for a shell) and fed
to ``docker import``. About a second; reused when the tag is already present.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import tarfile
from pathlib import Path

TEST_IMAGE = "costwise-test-python:3.11"
PYTHON = Path("/usr/bin/python3.11")
STDLIB = Path("/usr/lib/python3.11")
SKIPPED = {"test", "idlelib", "dist-packages", "site-packages", "tkinter", "turtledemo", "ensurepip", "lib2to3"}
BUSYBOX_CANDIDATES = (Path("/bin/busybox"), Path("/usr/bin/busybox"))


def ensure_test_image(client, tag: str = TEST_IMAGE) -> str:
    """The tag of a local python3 image, built on first use."""
    import docker

    try:
        client.images.get(tag)
        return tag
    except docker.errors.ImageNotFound:
        pass
    repository, _, version = tag.partition(":")
    client.api.import_image_from_data(
        _rootfs_tar(), repository=repository, tag=version or "latest",
        changes=["ENV PATH=/usr/local/bin:/usr/bin:/bin", "ENV LANG=C.UTF-8"],
    )
    client.images.get(tag)
    return tag


def _rootfs_tar() -> bytes:
    if not PYTHON.exists():
        raise RuntimeError(f"{PYTHON} is missing: install Debian's python3.11 to build the test image")
    busybox = next((p for p in BUSYBOX_CANDIDATES if p.exists()), None)
    if busybox is None:
        raise RuntimeError("busybox is missing: `apt-get install busybox-static`")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in ("bin", "usr/bin", "usr/lib", "lib64", "etc", "work"):
            _dir(tar, name)
        _dir(tar, "tmp", 0o1777)
        tar.add(PYTHON, "usr/bin/python3.11")
        for alias in ("python3", "python"):
            _link(tar, f"usr/bin/{alias}", "python3.11")
        for lib in sorted(_shared_libraries()):
            tar.add(os.path.realpath(lib), lib.lstrip("/"))
        tar.add(STDLIB, STDLIB.as_posix().lstrip("/"), filter=_stdlib_filter)
        tar.add(busybox, "bin/busybox")
        applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
        for applet in applets:
            if applet != "busybox":
                _link(tar, f"bin/{applet}", "busybox")
        _file(tar, "etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n")
        _file(tar, "etc/group", "root:x:0:\nnogroup:x:65534:\n")
    return buf.getvalue()


def _shared_libraries() -> set[str]:
    """Every library ldd names for the interpreter and the stdlib's extension modules, and the loader."""
    targets = [str(PYTHON), *map(str, (STDLIB / "lib-dynload").glob("*.so"))]
    out = subprocess.run(["ldd", *targets], capture_output=True, text=True).stdout
    libs = set(re.findall(r"=>\s+(/\S+)", out)) | set(re.findall(r"^\s+(/\S+)\s+\(", out, re.M))
    return {lib for lib in libs if os.path.exists(lib)}


def _stdlib_filter(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    parts = Path(info.name).parts
    if len(parts) > 3 and parts[3] in SKIPPED:
        return None
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def _dir(tar: tarfile.TarFile, name: str, mode: int = 0o755) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, mode
    tar.addfile(info)


def _link(tar: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    tar.addfile(info)


def _file(tar: tarfile.TarFile, name: str, text: str) -> None:
    data = text.encode()
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, io.BytesIO(data))


if __name__ == "__main__":
    import docker

    print(ensure_test_image(docker.from_env()))
