"""Bounded reading of the files a user names (config, rule tests, data): regular files only, never more than a limit.

A path may name a device (`/dev/zero`, `/dev/urandom`: endless), a FIFO (blocks until a writer comes) or a
file that grows while it is read. `read_bytes` refuses what is not a regular file before reading, and stops at
`limit` bytes while reading, so that memory stays bounded whatever the path is. Both refusals are OSErrors
whose `strerror` is the reason, so that callers catching OSError print them as they print any read error.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

_CHUNK = 1 << 20


class NotRegularFile(OSError):
    """The path names a device, FIFO, socket or directory: not something to read as a file."""


class FileTooLarge(OSError):
    """The file holds more than the limit."""


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def check_regular(path: str | Path) -> os.stat_result:
    """The path's stat (through symlinks) when it is a regular file; else NotRegularFile. Opens nothing."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        target = os.path.realpath(path)
        shown = f" ({target})" if target != os.path.abspath(path) else ""  # through a symlink: say where to
        raise NotRegularFile(None, f"is {_kind(st.st_mode)}{shown}, not a regular file", str(path))
    return st


def limit_text(limit: int) -> str:
    """`4 MiB`, `512 KiB` or `100 bytes`."""
    for size, unit in ((1 << 20, "MiB"), (1 << 10, "KiB")):
        if limit >= size and limit % size == 0:
            return f"{limit // size} {unit}"
    return f"{limit} bytes"


def read_bytes(path: str | Path, limit: int) -> bytes:
    """The whole content of a regular file of at most `limit` bytes.

    Raises NotRegularFile (checked before opening, and again on the open descriptor, so a path swapped for a
    FIFO in between does not block), FileTooLarge (by the size on disk, and while reading: a file that grows
    is cut at limit + 1 bytes, never read whole), or the OSError of the failed open or read.
    """
    st = check_regular(path)
    too_large = FileTooLarge(None, f"file is larger than {limit_text(limit)}", str(path))
    if st.st_size > limit:
        raise too_large
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(None, f"is {_kind(st.st_mode)}, not a regular file", str(path))
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(_CHUNK, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > limit:
        raise too_large
    return b"".join(chunks)
