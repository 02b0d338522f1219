"""Files of a study directory, local or behind a URI Ray supports (``s3://``, ``gs://`` ...)."""

from __future__ import annotations

import pyarrow.fs as pafs


def join(location: str, *parts: str) -> str:
    return "/".join([location.rstrip("/"), *(p.strip("/") for p in parts if p)])


def _fs(location: str) -> tuple[pafs.FileSystem, str]:
    if "://" in location:
        return pafs.FileSystem.from_uri(location)
    return pafs.LocalFileSystem(), location


def exists(location: str) -> bool:
    fs, path = _fs(location)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def write_bytes(location: str, data: bytes) -> None:
    fs, path = _fs(location)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path) as f:
        f.write(data)


def write_text(location: str, text: str) -> None:
    write_bytes(location, text.encode())


def read_bytes(location: str) -> bytes:
    fs, path = _fs(location)
    with fs.open_input_stream(path) as f:
        return f.readall()


def read_text(location: str) -> str:
    return read_bytes(location).decode("utf-8", errors="replace")


def is_local(location: str) -> bool:
    return "://" not in location


# File systems every node of a cluster mounts alike (a local folder on one of them is not).
NETWORK_FILESYSTEMS = frozenset(
    {"nfs", "nfs4", "lustre", "gpfs", "beegfs", "cifs", "smb3", "smbfs", "ceph", "glusterfs",
     "fuse.glusterfs", "fuse.sshfs", "fuse.cephfs", "panfs", "wekafs", "fuse.juicefs"}
)  # fmt: skip


def on_network_filesystem(path: str, mounts: str = "/proc/mounts") -> bool:
    """Whether the local ``path`` lies on a network file system (Linux's mount table):
    the folder a shared NFS/Lustre/GPFS... storage of a cluster lives in."""
    import os

    try:
        with open(mounts) as f:
            table = [line.split()[1:3] for line in f if len(line.split()) >= 3]
    except OSError:
        return False
    target = os.path.realpath(path)
    best, kind = "", ""
    for point, fstype in table:
        point = point.replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) > len(best):
            best, kind = point, fstype
    return kind in NETWORK_FILESYSTEMS
