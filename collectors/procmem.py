"""Reading another process's memory: one process_vm_readv per read, no stop, no ptrace attach.

The kernel allows it where ptrace would be allowed (root, CAP_SYS_PTRACE,
or yama's ptrace_scope), as for py-spy. The target keeps running while it
is read, so what is read can be torn: callers check what they read
(collectors.cpython) and never follow a pointer they have not checked.
"""

from __future__ import annotations

import ctypes
import errno
import os


class ReadFailed(OSError):
    """The address is not mapped in the target (or not all of it): a stale pointer, or a torn read."""


class ProcessGone(OSError):
    """The target has exited."""


class ReadDenied(OSError):
    """The kernel does not let us read the target (ptrace is not permitted)."""


class _IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


_libc = ctypes.CDLL(None, use_errno=True)
_readv = _libc.process_vm_readv
_readv.argtypes = [ctypes.c_int, ctypes.POINTER(_IoVec), ctypes.c_ulong, ctypes.POINTER(_IoVec), ctypes.c_ulong,
                   ctypes.c_ulong]
_readv.restype = ctypes.c_ssize_t

BUFFER_BYTES = 1 << 20
"""The most one read returns: a thread's whole frame stack (collectors.cpython) fits with room to spare."""


class RemoteMemory:
    """The memory of process `pid`, read by address. One instance per reading thread: its buffer is reused."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._buffer = ctypes.create_string_buffer(BUFFER_BYTES)
        self._local = _IoVec(ctypes.addressof(self._buffer), 0)
        self._remote = _IoVec(0, 0)
        self._local_ref, self._remote_ref = ctypes.byref(self._local), ctypes.byref(self._remote)

    def read(self, address: int, size: int) -> bytes:
        """`size` bytes at `address` in the target; raises ReadFailed, ProcessGone or ReadDenied."""
        if size <= 0 or size > BUFFER_BYTES or address <= 0:
            raise ReadFailed(errno.EFAULT, f"bad read of {size} bytes at {address:#x}")
        self._local.len = self._remote.len = size
        self._remote.base = address
        got = _readv(self.pid, self._local_ref, 1, self._remote_ref, 1, 0)
        if got == size:
            return ctypes.string_at(self._buffer, size)
        if got >= 0:
            raise ReadFailed(errno.EFAULT, f"short read at {address:#x}")
        code = ctypes.get_errno()
        if code == errno.ESRCH:
            raise ProcessGone(code, f"process {self.pid} has exited")
        if code == errno.EPERM:
            raise ReadDenied(code, os.strerror(code))
        raise ReadFailed(code, os.strerror(code))
