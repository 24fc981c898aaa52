"""Where a file source or sink's ``path`` lives: the local disk, S3, or another ``pyarrow.fs``
file system, and the files a path names (a file, a directory, a glob).

``'x.path' = 's3://bucket/key-or-prefix'`` reads and writes S3 through ``pyarrow.fs.S3FileSystem``
(credentials from the standard AWS variables and files, as the AWS SDK finds them);
``'x.s3.endpoint'`` points it at an S3-compatible server (MinIO, moto, Ceph) and ``'x.s3.region'``
names the region. Any other URI that ``pyarrow.fs.FileSystem.from_uri`` knows (``gs://``,
``hdfs://``, ``file://``) works too (docs/CONNECTORS.md, object stores).

>>> import os, tempfile
>>> from velostream.io.base import Properties
>>> d = tempfile.mkdtemp()
>>> for n in ("b.csv", "a.csv", "_SUCCESS"):
...     _ = open(os.path.join(d, n), "w").write("x\\n1\\n")
>>> store = ObjectStore.for_path("t", Properties("t", {}), d)
>>> [os.path.basename(p) for p in store.expand(d)[0]]
['a.csv', 'b.csv']
"""
from __future__ import annotations

import fnmatch
import glob as _glob
import io
import os
import posixpath
from typing import Optional

from typing import TYPE_CHECKING

from .base import ConfigError, Properties

if TYPE_CHECKING:
    import pyarrow.fs as pafs

__all__ = ["ObjectStore", "is_remote"]


def is_remote(path: str) -> bool:
    """Whether ``path`` is a URI (``s3://...``) rather than a local path."""
    return "://" in path and not path.startswith("file://")


def _hidden(name: str) -> bool:
    # Spark's _SUCCESS, Hive's _temporary, our own .part-*.tmp files: not data (pyarrow.dataset's
    # default selector ignores them too)
    return name.startswith((".", "_"))


class ObjectStore:
    """A ``pyarrow.fs`` file system and what a connector needs of it: list, open, write."""

    def __init__(self, fs: "Optional[pafs.FileSystem]", local: bool, uri_prefix: str = ""):
        self._fs = fs
        self.local = local
        self.uri_prefix = uri_prefix  # "s3://" for S3: shown in positions and messages

    @property
    def fs(self) -> "pafs.FileSystem":
        """The ``pyarrow.fs`` file system; for the local disk made when first needed: a CSV or
        JSON-lines job reads and writes local files with Python's own, and importing
        ``pyarrow.fs`` (with its S3 and TLS support) is 5-10 ms of its start (docs/PERFORMANCE.md,
        "File to file")."""
        if self._fs is None:
            import pyarrow.fs as pafs
            self._fs = pafs.LocalFileSystem()
        return self._fs

    @classmethod
    def for_path(cls, name: str, props: Properties, path: str) -> "ObjectStore":
        """The file system of ``path``; reads ``s3.endpoint`` and ``s3.region`` from ``props``."""
        endpoint = props.get("s3.endpoint")
        region = props.get("s3.region")
        if path.startswith("s3://") or path.startswith("s3a://"):
            import pyarrow.fs as pafs
            kwargs = {}
            if endpoint:
                scheme, sep, rest = endpoint.partition("://")
                if sep:
                    kwargs["scheme"] = scheme
                    kwargs["endpoint_override"] = rest.rstrip("/")
                else:
                    kwargs["endpoint_override"] = endpoint.rstrip("/")
            region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
            if region is None and not endpoint:  # AWS itself: ask where the bucket is
                try:
                    region = pafs.resolve_s3_region(path.split("://", 1)[1].split("/", 1)[0])
                except Exception:  # noqa: BLE001 - offline, or no such bucket: the read says so
                    region = None
            kwargs["region"] = region or "us-east-1"
            try:
                fs = pafs.S3FileSystem(**kwargs)
            except Exception as exc:  # noqa: BLE001 - any setup error is a property error here
                raise ConfigError(f"'{name}.path': cannot set up S3 access: {exc}") from exc
            return cls(fs, False, "s3://")
        if endpoint or region:
            raise ConfigError(f"'{name}.s3.endpoint' and '{name}.s3.region' apply to an s3:// path, "
                              f"not {path!r}")
        if is_remote(path):
            import pyarrow.fs as pafs
            try:
                fs, _ = pafs.FileSystem.from_uri(path)
            except Exception as exc:  # noqa: BLE001
                raise ConfigError(f"'{name}.path': {path!r}: {exc}") from exc
            scheme = path.split("://", 1)[0]
            return cls(fs, False, scheme + "://")
        return cls(None, True)

    # -- paths -----------------------------------------------------------------------------------
    def fs_path(self, path: str) -> str:
        """``path`` as this file system names it (no scheme for S3; as it is for a local path)."""
        if self.local:
            return path[len("file://"):] if path.startswith("file://") else path
        return path.split("://", 1)[1]

    def show(self, fs_path: str) -> str:
        """A path for positions and messages: the URI for remote files, as given for local ones."""
        return self.uri_prefix + fs_path

    def is_dir(self, path: str) -> bool:
        p = self.fs_path(path)
        if self.local:
            return os.path.isdir(p)
        import pyarrow.fs as pafs
        return self.fs.get_file_info(p).type == pafs.FileType.Directory

    def expand(self, path: str) -> tuple[list[str], Optional[str]]:
        """The files ``path`` names, sorted (a file; every file under a directory, recursively; the
        files a glob matches), and the base directory for hive partitions (None for one file).
        Hidden files (``.name``, ``_name``) of a directory are left out. Paths as the file system
        names them."""
        p = self.fs_path(path)
        if _glob.has_magic(p):
            base = p
            while _glob.has_magic(base):
                base = posixpath.dirname(base) if not self.local else os.path.dirname(base)
            if self.local:
                files = [f for f in _glob.glob(p, recursive=True) if os.path.isfile(f)]
            else:
                files = [i.path for i in self._listing(base) if fnmatch.fnmatchcase(i.path, p)]
            return sorted(files), base or None
        if self.local and os.path.isfile(p):  # one local file: no need of pyarrow.fs
            return [p], None
        import pyarrow.fs as pafs
        info = self.fs.get_file_info(p)
        if info.type == pafs.FileType.Directory:
            files = [i.path for i in self._listing(p)
                     if not any(_hidden(part) for part in i.path[len(p):].split("/") if part)]
            return sorted(files), p
        if info.type == pafs.FileType.NotFound:
            raise FileNotFoundError(f"{self.show(p)}: no such file or directory")
        return [p], None

    def _listing(self, base: str) -> list:
        import pyarrow.fs as pafs
        sel = pafs.FileSelector(base or "/", recursive=True, allow_not_found=True)
        return [i for i in self.fs.get_file_info(sel) if i.type == pafs.FileType.File]

    # -- bytes -----------------------------------------------------------------------------------
    def open_read(self, fs_path: str):
        """A buffered binary file object (``read``, ``readline``) over the file."""
        if self.local:
            return open(fs_path, "rb")
        return io.BufferedReader(_RawInput(self.fs.open_input_stream(fs_path)), 1 << 20)

    def open_write(self, fs_path: str):
        """A binary output stream to the file (created, or replaced)."""
        if self.local:
            return open(fs_path, "wb")
        return self.fs.open_output_stream(fs_path)

    def publish(self, tmp: str, final: str) -> None:
        """Make a file written under a temporary name visible under its final one, whole."""
        if self.local:
            os.replace(tmp, final)
        else:
            self.fs.move(tmp, final)

    def delete(self, fs_path: str) -> None:
        if self.local:
            try:
                os.remove(fs_path)
            except FileNotFoundError:
                pass
        else:
            self.fs.delete_file(fs_path)


class _RawInput(io.RawIOBase):
    """An Arrow input stream as a raw Python file, so ``io.BufferedReader`` gives it
    ``readline`` (the CSV reader reads the header line by line)."""

    def __init__(self, stream):
        self._s = stream

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self._s.read(len(b))
        n = len(data)
        b[:n] = data
        return n

    def close(self) -> None:
        self._s.close()
        super().close()
