"""Files written so that a reader never sees half of one: a temporary name, then a rename.

Every file hcnet writes (checkpoints, metrics, plots, exports, store files) goes through
:func:`atomic_path` or :func:`atomic_write`: the data lands in ``<path>.<pid>.<rand>.tmp``
in the same directory, is flushed to disk, and replaces ``path`` in one ``os.replace``.
On any failure (an exception, a full disk, KeyboardInterrupt) the temporary file is
removed and ``path`` is left as it was.
"""
import contextlib
import os
import uuid

__all__ = ['tmp_name', 'remove_quietly', 'atomic_path', 'atomic_write', 'write_text',
           'write_bytes']


def tmp_name(path):
    """A fresh temporary name beside ``path`` (same directory, so the rename is atomic)."""
    return '%s.%d.%s.tmp' % (path, os.getpid(), uuid.uuid4().hex[:8])


def remove_quietly(path):
    """Remove ``path`` if it exists."""
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _fsync(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path, fsync=True):
    """Yield a temporary path to write ``path`` through (for writers that take a name,
    such as ``mx.nd.save`` or ``matplotlib``'s ``savefig``); rename it on success."""
    tmp = tmp_name(path)
    try:
        yield tmp
        if fsync:
            _fsync(tmp)
        os.replace(tmp, path)
    finally:
        remove_quietly(tmp)


@contextlib.contextmanager
def atomic_write(path, mode='wb', encoding=None, fsync=True):
    """Yield a file object open on a temporary name; on success it replaces ``path``."""
    if 'b' not in mode and encoding is None:
        encoding = 'utf-8'
    with atomic_path(path, fsync=False) as tmp:
        with open(tmp, mode.replace('w', 'x'), encoding=encoding) as f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())


def write_bytes(path, data):
    """Write ``data`` to ``path`` atomically."""
    with atomic_write(path, 'wb') as f:
        f.write(data)


def write_text(path, text):
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_write(path, 'w') as f:
        f.write(text)
