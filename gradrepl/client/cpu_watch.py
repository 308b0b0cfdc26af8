"""`--sandbox-limit cpu=SECONDS`: the CPU time one cell may use, watched from the front end,
where the cell cannot change it (a limit the kernel set on itself, RLIMIT_CPU, counts the
whole session and could only be lowered between cells, never raised for the next one).

It counts the kernel process's threads and the children it has waited for, as
/proc/PID/stat gives them. It reads the clock only when the cell could have reached the
limit: the time left divided by the cores that could spend it.
"""

from __future__ import annotations

import os

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_LEAST_WAIT = 0.1  # seconds between readings near the limit: overshoot at most this much per core


def cpu_used(pid: int) -> float | None:
    """Seconds of CPU the process and its waited-for children have used; None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    utime, stime, cutime, cstime = (int(field) for field in fields[11:15])  # fields 14-17 of proc_pid_stat(5)
    return (utime + stime + cutime + cstime) / _TICKS


class CpuWatch:
    def __init__(self, pid: int, limit: float) -> None:
        self.pid = pid
        self.limit = limit
        self.cores = len(os.sched_getaffinity(pid)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        self.start = cpu_used(pid) or 0.0

    def used(self) -> float:
        now = cpu_used(self.pid)
        return 0.0 if now is None else now - self.start

    def exceeded(self) -> bool:
        return self.used() >= self.limit

    def next_reading(self) -> float:
        """Seconds until the cell could have used its limit, were every core it may run on busy."""
        return max((self.limit - self.used()) / self.cores, _LEAST_WAIT)

    def reason(self) -> str:
        return f"interrupted after {self.used():.1f} s of CPU time (the sandbox allows {self.limit:g} s a cell: --sandbox-limit cpu=SECONDS)"
