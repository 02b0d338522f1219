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
