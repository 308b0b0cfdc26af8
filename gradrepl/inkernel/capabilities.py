"""`--sandbox` as root (a CI container, often): the kernel gives up every Linux capability, for
itself and for what it runs, so that it cannot raise the limits it set (CAP_SYS_RESOURCE), is
counted against its process limit (root with CAP_SYS_ADMIN or CAP_SYS_RESOURCE is not), and
keeps none of root's other powers over the machine.

No binding covers this (py_landlock does Landlock only; python-prctl is unmaintained and needs
libcap headers), so it is three libc calls through ctypes: the bounding set, the ambient set,
then capset(2) with empty sets. `no_new_privs()` keeps an exec'd setuid program
from gaining any back.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_PR_SET_NO_NEW_PRIVS = 38
_PR_CAPBSET_DROP = 24
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def held() -> int:
    """The capabilities this process may use (its effective set)."""
    return _status_mask("CapEff")


def no_new_privs() -> None:
    """No program this process runs gains privileges (setuid, file capabilities), ever again.
    Landlock sets it too, when there is Landlock; best-effort mode without it still has this."""
    if _libc().prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        _raise("PR_SET_NO_NEW_PRIVS")


def drop_all() -> None:
    """Give up every capability, now and across exec; OSError when the kernel refuses."""
    if not held() and not _status_mask("CapPrm") and not _status_mask("CapAmb"):
        return  # none to use or regain: exec cannot grant any under no_new_privs, whatever the bounding set holds
    libc = _libc()
    bounding = _status_mask("CapBnd")
    for capability in range(_last_capability() + 1):
        if bounding >> capability & 1 and libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            _raise("dropping capability from the bounding set")
    libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)  # EINVAL before Linux 4.3: nothing to clear
    header = _Header(_LINUX_CAPABILITY_VERSION_3, 0)
    empty = (_Data * 2)()
    if libc.capset(ctypes.byref(header), empty) != 0:
        _raise("capset")
    still = held()
    if still:
        raise OSError(f"capabilities still held after dropping them: {still:#x}")


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def _status_mask(key: str) -> int:
    """A capability set as /proc/self/status shows it (CapEff, CapBnd)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(f"{key}:"):
                    return int(line.split()[1], 16)
    except OSError:
        pass
    return 0


def _last_capability() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as last:
            return int(last.read())
    except (OSError, ValueError):
        return 63


def _raise(what: str) -> None:
    errno = ctypes.get_errno()
    raise OSError(errno, f"{what}: {os.strerror(errno)}")
