"""Files that are complete or absent: what a run or a tool writes replaces the old file in one step."""

import contextlib
import os
import tempfile

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside `path` to write to; when the block ends without an error the temporary file
    replaces `path` (`os.replace`: a reader, or a run killed meanwhile, sees the old file or the new one, never a
    part of it); on an error it is removed and `path` is left as it was. The file gets the usual permissions
    (0666 less the umask), not `mkstemp`'s 0600. The temporary name keeps the extension (PyAV picks the container
    by it)."""
    directory, name = os.path.split(os.path.abspath(os.fspath(path)))
    handle, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=os.path.splitext(name)[1], dir=directory)
    os.close(handle)
    try:
        yield temporary
        os.chmod(temporary, 0o666 & ~_UMASK)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write `text` (UTF-8) to `path` through `atomic_path`."""
    with atomic_path(path) as temporary, open(temporary, "w", encoding="utf-8") as f:
        f.write(text)


__all__ = ["atomic_path", "write_text_atomic"]
