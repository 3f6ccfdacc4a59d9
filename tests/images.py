"""A small Python image for Docker tests, built offline from this machine's Debian python3.11.

No registry is reachable here, so the image is assembled as a tar stream (the interpreter, the shared
libraries it and its extension modules load, the standard library, numpy from the project's
environment (a manylinux wheel: same CPython 3.11 ABI) for the example pipeline, and busybox for a
shell) and fed to ``docker import``. A few seconds; reused while its ``costwise.test-image`` label
says the current ``VERSION``.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import tarfile
from pathlib import Path

TEST_IMAGE = "costwise-test-python:3.11"
VERSION = "2"  # bump when the contents change: an older image of the same tag is rebuilt
DIST_PACKAGES = "usr/lib/python3/dist-packages"  # on Debian's python3.11 sys.path
PACKAGES = ("numpy",)
PYTHON = Path("/usr/bin/python3.11")
STDLIB = Path("/usr/lib/python3.11")
SKIPPED = {"test", "idlelib", "dist-packages", "site-packages", "tkinter", "turtledemo", "ensurepip", "lib2to3"}
BUSYBOX_CANDIDATES = (Path("/bin/busybox"), Path("/usr/bin/busybox"))


def ensure_test_image(client, tag: str = TEST_IMAGE) -> str:
    """The tag of a local python3 image, built on first use."""
    import docker

    try:
        if client.images.get(tag).labels.get("costwise.test-image") == VERSION:
            return tag
    except docker.errors.ImageNotFound:
        pass
    repository, _, version = tag.partition(":")
    client.api.import_image_from_data(
        _rootfs_tar(), repository=repository, tag=version or "latest",
        changes=["ENV PATH=/usr/local/bin:/usr/bin:/bin", "ENV LANG=C.UTF-8", f"LABEL costwise.test-image={VERSION}"],
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
        packages = _package_dirs()
        for lib in sorted(_shared_libraries(packages)):
            tar.add(os.path.realpath(lib), lib.lstrip("/"))
        _dir(tar, DIST_PACKAGES)
        for folder in packages:
            tar.add(folder, f"{DIST_PACKAGES}/{folder.name}", filter=_package_filter)
        tar.add(STDLIB, STDLIB.as_posix().lstrip("/"), filter=_stdlib_filter)
        tar.add(busybox, "bin/busybox")
        applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
        for applet in applets:
            if applet != "busybox":
                _link(tar, f"bin/{applet}", "busybox")
        _file(tar, "etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n")
        _file(tar, "etc/group", "root:x:0:\nnogroup:x:65534:\n")
    return buf.getvalue()


def _package_dirs() -> list[Path]:
    """The installed folders of PACKAGES (the package and its bundled ``<name>.libs``)."""
    import importlib.util

    folders = []
    for name in PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError(f"{name} is not installed in this environment: `pip install {name}`")
        pkg = Path(list(spec.submodule_search_locations)[0])
        folders += [pkg] + [p for p in [pkg.parent / f"{name}.libs"] if p.is_dir()]
    return folders


def _shared_libraries(packages: list[Path] = ()) -> set[str]:
    """Every library ldd names for the interpreter, the stdlib's and the packages' extension
    modules, and the loader (libraries bundled inside a package come with the package)."""
    targets = [str(PYTHON), *map(str, (STDLIB / "lib-dynload").glob("*.so"))]
    for folder in packages:
        targets += [str(p) for p in folder.rglob("*.so*") if p.is_file()]
    out = subprocess.run(["ldd", *targets], capture_output=True, text=True).stdout
    libs = set(re.findall(r"=>\s+(/\S+)", out)) | set(re.findall(r"^\s+(/\S+)\s+\(", out, re.M))
    inside = tuple(str(folder) for folder in packages)
    return {lib for lib in libs if os.path.exists(lib) and not lib.startswith(inside)}


def _package_filter(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    parts = Path(info.name).parts
    if "tests" in parts or "__pycache__" in parts:
        return None
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


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
