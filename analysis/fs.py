"""Read-only access to a study directory, local or behind a URI (``s3://``, ``gs://`` ...).

A thin wrapper over ``pyarrow.fs`` so the loader reads local folders and cloud buckets
with the same calls; paths inside are always ``/``-joined strings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pyarrow.fs as pafs


class ReportInputError(ValueError):
    """The study directory is missing or is not a study or trial directory."""


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
