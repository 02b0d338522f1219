"""Files of a study, local or behind a URI (``s3://``, ``gs://`` ...): the one wrapper over
``pyarrow.fs``.

``StudyFS`` reads a study directory for the loader (paths inside it are ``/``-joined
relative strings); the location functions below (``join_location``, ``exists``,
``read_*``, ``write_*``) read and write single files for the driver and the trainables.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs


class ReportInputError(ValueError):
    """The study directory is missing or is not a study or trial directory."""


def writable_folder(path: str | os.PathLike, what: str) -> Path:
    """Create folder ``path`` (and its parents) or raise ReportInputError in one line that
    starts with ``what`` (the argument as the user gave it, e.g. ``-o FILE/report.html``)."""
    folder = Path(path)
    blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise ReportInputError(
            f"{what}: {blocker} is a file, not a folder; give a path in a folder"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ReportInputError(
            f"{what}: cannot create the folder {path} ({e.strerror}); give a path in a "
            "folder you can write"
        ) from e
    return folder


@dataclass(frozen=True)
class StudyFS:
    """A filesystem and the root of one study in it."""

    fs: pafs.FileSystem
    root: str
    uri: str  # what the user gave, for messages

    @classmethod
    def open(cls, location: str | os.PathLike) -> StudyFS:
        text = os.fspath(location)
        if "://" in text:
            try:
                fs, root = pafs.FileSystem.from_uri(text)
            except Exception as e:  # pyarrow raises ArrowInvalid / OSError for bad URIs
                raise ReportInputError(f"cannot open study {text}: {e}") from e
        else:
            fs, root = pafs.LocalFileSystem(), os.path.abspath(text)
        out = cls(fs, root.rstrip("/") or "/", text)
        if out.kind("") != "dir":
            raise ReportInputError(f"no such study directory: {text}")
        return out

    def path(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def kind(self, rel: str) -> str | None:
        """``"dir"``, ``"file"`` or None when ``rel`` does not exist."""
        info = self.fs.get_file_info(self.path(rel))
        if info.type == pafs.FileType.Directory:
            return "dir"
        if info.type == pafs.FileType.File:
            return "file"
        return None

    def listdir(self, rel: str = "") -> dict[str, str]:
        """Entries of a folder: name -> ``"dir"`` or ``"file"`` (empty when missing)."""
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(self.path(rel)))
        except (FileNotFoundError, OSError):
            return {}
        kinds = {pafs.FileType.Directory: "dir", pafs.FileType.File: "file"}
        return {i.base_name: kinds[i.type] for i in infos if i.type in kinds}

    def read_bytes(self, rel: str) -> bytes:
        with self.fs.open_input_stream(self.path(rel)) as f:
            return f.readall()

    def read_text(self, rel: str) -> str:
        return self.read_bytes(rel).decode("utf-8", errors="replace")

    def local_path(self, rel: str) -> str | None:
        """The local path of ``rel`` when the study is on this machine, else None."""
        return self.path(rel) if isinstance(self.fs, pafs.LocalFileSystem) else None


def join(*parts: str) -> str:
    """Join relative path parts with ``/``, skipping empty ones."""
    return "/".join(p.strip("/") for p in parts if p)


# ---- single files at a location (a local path or a URI) ---------------------------------


def join_location(location: str, *parts: str) -> str:
    """``location`` (a local path or a URI) with ``parts`` appended."""
    return "/".join([location.rstrip("/"), *(p.strip("/") for p in parts if p)])


def filesystem(location: str) -> tuple[pafs.FileSystem, str]:
    """The file system of ``location`` and the path in it (local paths made absolute)."""
    if "://" in location:
        return pafs.FileSystem.from_uri(location)
    return pafs.LocalFileSystem(), os.path.abspath(location)


def exists(location: str) -> bool:
    fs, path = filesystem(location)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def write_bytes(location: str, data: bytes) -> None:
    fs, path = filesystem(location)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path) as f:
        f.write(data)


def write_text(location: str, text: str) -> None:
    write_bytes(location, text.encode())


def read_bytes(location: str) -> bytes:
    fs, path = filesystem(location)
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
