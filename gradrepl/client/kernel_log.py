"""What the kernel writes to its fd 1 and 2 (ipykernel's own log, crash messages, and a copy
of every byte a cell writes there): read from a pipe by the front end, kept in memory as a
tail, and written to a capped log in the kernel's runtime directory.

The front end reads it, not the kernel, so that a kernel that crashes loses nothing it wrote
(the pipe keeps it), and a log that cannot be written (a full /tmp, a file size limit) only
loses lines of the log: the pipe is always read, so the kernel never waits on the disk.
The log is two files, `kernel.log` and the previous `kernel.log.1`, of `file_limit` bytes each.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
from pathlib import Path

FILE_LIMIT = 1 << 20
TAIL_LIMIT = 64 << 10
_CHUNK = 1 << 16
_F_SETPIPE_SZ = 1031  # Linux's fcntl; a larger pipe rides out a front end busy for a moment


class KernelLog:
    def __init__(self, fd: int, path: Path, *, file_limit: int = FILE_LIMIT, tail_limit: int = TAIL_LIMIT) -> None:
        self.path = path
        self.file_limit = file_limit
        self.tail_limit = tail_limit
        self.dropped = 0  # bytes the file could not take
        self._fd = fd
        self._received = 0
        self._tail = bytearray()
        self._file: int | None = None
        self._in_file = 0
        self._failure = ""  # why the last write failed
        self._gap = 0  # bytes dropped since the log last took a write
        self._closed = False
        self._eof = False
        self._lock = threading.RLock()
        os.set_blocking(fd, False)
        with contextlib.suppress(OSError, AttributeError):
            import fcntl

            fcntl.fcntl(fd, _F_SETPIPE_SZ, 1 << 20)
        self._wake_read, self._wake_write = os.pipe()
        self._thread = threading.Thread(target=self._run, name="gradrepl-kernel-log", daemon=True)
        self._thread.start()

    def size(self) -> int:
        """Bytes the kernel has written so far (all of them, in the log or not)."""
        with self._lock:
            self._drain()
            return self._received

    def tail(self, limit: int = 4000) -> bytes:
        """The last `limit` bytes the kernel wrote (at most `tail_limit`), up to this moment."""
        with self._lock:
            self._drain()
            return bytes(self._tail[-limit:]) if limit > 0 else b""

    def close(self) -> None:
        """Stop reading; the files stay as they are (the runtime directory may go next)."""
        # Also called from a signal handler: the lock is reentrant, and never held for long.
        if not self._lock.acquire(timeout=1.0):
            self._closed = True
            return
        try:
            if not self._closed:  # else the thread has closed the wake-up pipe (its number may be reused)
                self._closed = True
                os.write(self._wake_write, b"x")
        finally:
            self._lock.release()

    # ------------------------------------------------------------ the reading thread

    def _run(self) -> None:
        poll = select.poll()
        poll.register(self._fd, select.POLLIN)
        poll.register(self._wake_read, select.POLLIN)
        try:
            while not self._closed and not self._eof:
                ready = {fd for fd, _ in poll.poll()}
                if self._wake_read in ready:
                    break
                with self._lock:
                    self._drain()
        finally:
            with self._lock:
                self._closed = True
                for fd in (self._fd, self._wake_read, self._wake_write, self._file):
                    if fd is not None:
                        with contextlib.suppress(OSError):
                            os.close(fd)
                self._file = None

    def _drain(self) -> None:
        """Read all the pipe holds now (the lock is held: reads and writes keep their order)."""
        while not self._closed and not self._eof:
            try:
                data = os.read(self._fd, _CHUNK)
            except BlockingIOError:
                return
            except OSError:
                self._eof = True
                return
            if not data:
                self._eof = True
                return
            self._received += len(data)
            self._tail += data
            if len(self._tail) > 2 * self.tail_limit:
                del self._tail[: -self.tail_limit]
            self._write(data)

    def _write(self, data: bytes) -> None:
        if self._gap and self._put(f"\n[gradrepl: {self._gap} bytes not logged: {self._failure}]\n".encode()):
            self._gap = 0
        if not self._put(data):
            self._gap += len(data)
            self.dropped += len(data)

    def _put(self, data: bytes) -> bool:
        """Write `data` to the log file; False (and the rest dropped) if it does not take it."""
        view = memoryview(data)
        while view:
            if not self._writable():
                return False
            assert self._file is not None
            try:
                written = os.write(self._file, view[: self.file_limit - self._in_file])
            except OSError as err:
                self._failure = err.strerror or str(err)
                return False
            self._in_file += written
            view = view[written:]
        return True

    def _writable(self) -> bool:
        """An open log file with room left, rotating to a new one when the current one is full."""
        if self._closed:
            return False
        if self._file is not None and self._in_file < self.file_limit:
            return True
        try:
            if self._file is not None:
                os.close(self._file)
                self._file = None
                os.replace(self.path, self.path.with_name(self.path.name + ".1"))
            self._file = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            self._in_file = 0
        except OSError as err:
            self._failure = err.strerror or str(err)
            return False
        return True
