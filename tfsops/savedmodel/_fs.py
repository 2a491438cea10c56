"""Small filesystem helpers shared by the savedmodel modules: safe display, plain-word OS errors."""

from __future__ import annotations

import errno
import os
from pathlib import Path

# Names listed in messages before "and N more": enough to recognise a layout.
MAX_LISTED = 10


def show(path: Path | str) -> str:
    """A path as printable text: undecodable bytes and control characters escaped.

    File names may hold bytes that are not UTF-8 (Python keeps them as lone
    surrogates, which cannot be written to a UTF-8 stdout or to strict JSON)
    or newlines that would forge extra output lines.
    """
    text = os.fspath(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if not text.isprintable():
        text = "".join(
            ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text
        )
    return text


def listing(names: list[str], limit: int = MAX_LISTED) -> str:
    """``a, b, c`` (sorted, escaped), cut after ``limit`` names."""
    shown = [show(n) for n in sorted(names)]
    if len(shown) > limit:
        return ", ".join(shown[:limit]) + f" and {len(shown) - limit} more"
    return ", ".join(shown)


def os_problem(exc: OSError, path: Path) -> str:
    """``<path> <what is wrong>`` in plain words for an ``OSError`` met while reading ``path``."""
    where = show(path)
    code = exc.errno
    if code == errno.ENOENT:
        if os.path.islink(path):
            try:
                target = os.readlink(path)
            except OSError:
                target = "?"
            return f"{where} is a dangling symlink (to {show(target)})"
        return f"{where} does not exist"
    if code == errno.ELOOP:
        return f"{where} is a symlink loop"
    if code in (errno.EACCES, errno.EPERM):
        return f"{where} cannot be read (permission denied)"
    if code == errno.ENOTDIR:
        return f"{where} does not exist (a parent folder is a file)"
    if code == errno.ENAMETOOLONG:
        return f"{where} has a name that is too long"
    return f"{where} cannot be read ({exc.strerror or exc})"
