#!/usr/bin/env python3
"""Write a distroless-like root filesystem as a tar, from a debootstrap'd Debian tree.

    python3 minimal_rootfs.py ROOTFS OUT.tar

The tar holds what gcr.io/distroless/cc-debian12 holds, and nothing more: the files of
the Debian packages below (glibc, libgcc, CA certificates, time zones, /etc/os-release,
/etc/services), passwd/group with root, nobody and nonroot (65532), an nsswitch.conf that
reads /etc/hosts first, /tmp and the home directories. No shell, no coreutils, no dpkg:
an image built on it that needs a RUN step, or a shell at run time, fails.

Paths are stored with their directories resolved inside ROOTFS (Debian's /lib, /lib64 and
/bin are links into /usr), and the links /lib and /lib64 themselves are kept.
"""

import io
import os
import subprocess
import sys
import tarfile

PACKAGES = ["base-files", "netbase", "tzdata", "libc6", "libgcc-s1"]
CERTS = "etc/ssl/certs/ca-certificates.crt"
TOP_LINKS = ["lib", "lib64"]

PASSWD = """root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
"""
GROUP = """root:x:0:
nobody:x:65534:
nonroot:x:65532:
"""
NSSWITCH = """passwd: files
group: files
shadow: files
hosts: files dns
networks: files
protocols: files
services: files
"""


def resolve_dir(root, rel_dir):
    """rel_dir with every link resolved inside root (links are followed as chroot does)."""
    parts = [p for p in rel_dir.split("/") if p]
    out = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if out:
                out.pop()
            continue
        if part == ".":
            continue
        candidate = os.path.join(root, *out, part)
        if os.path.islink(candidate):
            hops += 1
            if hops > 40:
                raise SystemExit(f"too many links resolving {rel_dir}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                out = []
            parts = [p for p in target.split("/") if p] + parts
            continue
        out.append(part)
    return "/".join(out)


def package_paths(root, package):
    listing = subprocess.run(
        ["dpkg-query", f"--admindir={root}/var/lib/dpkg", "-L", package],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for line in listing.splitlines():
        path = line.strip()
        if not path.startswith("/") or "diverted by" in path:
            continue
        rel_dir, name = os.path.split(path.lstrip("/"))
        resolved = resolve_dir(root, rel_dir)
        yield f"{resolved}/{name}" if resolved else name


def text_member(name, text, mode=0o644):
    data = text.encode()
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    return info, io.BytesIO(data)


def dir_member(name, mode, uid=0):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    info.uid = info.gid = uid
    return info


def main():
    if len(sys.argv) != 3:
        raise SystemExit("usage: minimal_rootfs.py ROOTFS OUT.tar")
    root, out = os.path.abspath(sys.argv[1]), sys.argv[2]
    wanted = set(TOP_LINKS)
    for package in PACKAGES:
        wanted.update(package_paths(root, package))
    wanted.add(CERTS)
    # Parent directories first, so each lands with its own mode rather than a default.
    for path in list(wanted):
        parent = os.path.dirname(path)
        while parent:
            wanted.add(parent)
            parent = os.path.dirname(parent)
    skip = {".", "etc/passwd", "etc/group", "etc/nsswitch.conf", "tmp", "root", "home"}
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(wanted - skip):
            full = os.path.join(root, path)
            if not os.path.lexists(full):
                continue  # a conffile the package lists but debootstrap did not write
            tar.add(full, arcname=path, recursive=False)
        for name, text in [("etc/passwd", PASSWD), ("etc/group", GROUP), ("etc/nsswitch.conf", NSSWITCH)]:
            tar.addfile(*text_member(name, text))
        tar.addfile(dir_member("tmp", 0o1777))
        tar.addfile(dir_member("root", 0o700))
        tar.addfile(dir_member("home", 0o755))
        tar.addfile(dir_member("home/nonroot", 0o700, uid=65532))
    for must in ["bin/sh", "usr/bin/sh", "usr/bin/bash", "usr/bin/dash"]:
        if must in wanted:
            raise SystemExit(f"the minimal rootfs would hold {must}")


if __name__ == "__main__":
    main()
