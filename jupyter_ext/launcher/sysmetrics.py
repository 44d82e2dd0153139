"""System metrics of a run's nodes: host CPU, memory, disk and network, each node's own process
tree (or container), and its NVIDIA GPUs, sampled every few seconds into ``metrics/system_<node>.jsonl``.

It runs as a daemon thread of whatever watches a node's processes (the per-run supervisor, a Ray
node's agent), never in a training process. Host figures come from Linux ``/proc`` (``stat``,
``meminfo``, ``diskstats``: whole disks only, ``net/dev``: without ``lo``) and ``os.statvfs`` of
the run's folder; a node's processes from ``/proc/<pid>/stat`` and ``status`` of its tree (found
through ``/proc/<pid>/task/*/children``, or by parent pid where the kernel lacks those files);
GPUs through NVML (nvidia-ml-py, imported lazily: no NVML, no GPU figures, nothing said). Rates
are the change between two samples over the time between them. Each sample is one write of its
lines to the node's file (append mode), so a crash loses at most one sample. The names are
MLflow's system-metric names under contract.SYSTEM_PREFIX. A failure in sampling never touches the
run: it is said once (``say``, the supervisor's log) and the sampler stops.

Standard library only (it travels to Ray nodes with the packages and imports nothing else of
jupyter-train but the contract).
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from ..contract import (ENV_SYSTEM_METRICS_INTERVAL, KIND, METRIC, NAME, STEP, SYSTEM_METRICS_DEFAULT_S,
                        SYSTEM_PREFIX, TIME, VALUE, system_metrics_file_name)

MB = 1024 * 1024
SECTOR = 512  # /proc/diskstats counts 512-byte sectors whatever the device's own size
try:
    CLK_TCK = os.sysconf("SC_CLK_TCK")
except (ValueError, OSError, AttributeError):
    CLK_TCK = 100


def interval_from_env(environ=None) -> float:
    """Seconds between samples: ENV_SYSTEM_METRICS_INTERVAL (0 or less: off), default 5."""
    raw = (os.environ if environ is None else environ).get(ENV_SYSTEM_METRICS_INTERVAL, "")
    try:
        value = float(raw) if raw.strip() else SYSTEM_METRICS_DEFAULT_S
    except ValueError:
        return SYSTEM_METRICS_DEFAULT_S
    return value if value > 0 and value == value else 0.0


# -- parsers of /proc text (pure) ------------------------------------------------------------
def parse_cpu(text: str) -> tuple[int, int]:
    """(busy, total) jiffies of the whole host from /proc/stat's ``cpu`` line (idle and iowait
    are not busy; guest time is already in user time)."""
    for line in text.splitlines():
        if line.startswith("cpu "):
            v = [int(x) for x in line.split()[1:9]]
            v += [0] * (8 - len(v))
            total = sum(v)
            return total - v[3] - v[4], total
    raise ValueError("no cpu line in /proc/stat")


def parse_meminfo(text: str) -> dict[str, int]:
    """/proc/meminfo as {key: bytes}."""
    out = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            out[key.strip()] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    return out


def memory_used(info: dict[str, int]) -> tuple[float, float]:
    """(used bytes, used %) of the host: total less what is available."""
    total = info["MemTotal"]
    available = info.get("MemAvailable", info.get("MemFree", 0) + info.get("Cached", 0))
    used = max(0, total - available)
    return used, 100.0 * used / total if total else 0.0


def parse_diskstats(text: str, disks) -> tuple[int, int]:
    """(bytes read, bytes written) summed over the devices named in ``disks`` (whole disks)."""
    read = written = 0
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 10 and f[2] in disks:
            read += int(f[5]) * SECTOR
            written += int(f[9]) * SECTOR
    return read, written


def whole_disks(sys_block: str = "/sys/block") -> set[str]:
    """Physical whole disks (sda, nvme0n1, vda): /sys/block entries with a device; partitions,
    loop, ram, zram, dm- and md- devices are left out, so no byte is counted twice."""
    try:
        names = os.listdir(sys_block)
    except OSError:
        return set()
    return {n for n in names if os.path.exists(os.path.join(sys_block, n, "device"))
            and not n.startswith(("loop", "ram", "zram", "dm-", "md"))}


def parse_net_dev(text: str) -> tuple[int, int]:
    """(bytes received, bytes sent) over every interface but ``lo``, from /proc/net/dev."""
    rx = tx = 0
    for line in text.splitlines():
        name, sep, rest = line.partition(":")
        if not sep or name.strip() == "lo":
            continue
        f = rest.split()
        if len(f) >= 9 and f[0].isdigit():
            rx += int(f[0])
            tx += int(f[8])
    return rx, tx


def parse_pid_stat(text: str) -> tuple[int, int, int, int]:
    """(ppid, session, utime + stime jiffies, start time) from /proc/<pid>/stat (the command
    name in parentheses may hold spaces and parentheses: fields count from the last ``)``)."""
    f = text[text.rindex(")") + 2:].split()
    return int(f[1]), int(f[3]), int(f[11]) + int(f[12]), int(f[19])


def parse_rss(text: str) -> int:
    """VmRSS of /proc/<pid>/status in bytes (0 for a kernel thread or a zombie)."""
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def rate(before: float, after: float, seconds: float) -> float:
    """Change per second of a counter; 0 when time did not pass or the counter went back."""
    return max(0.0, after - before) / seconds if seconds > 0 else 0.0


def cpu_percent(before: tuple[int, int], after: tuple[int, int]) -> float:
    """Busy share (0-100) of the host's CPU between two parse_cpu readings."""
    total = after[1] - before[1]
    return min(100.0, max(0.0, 100.0 * (after[0] - before[0]) / total)) if total > 0 else 0.0


def disk_usage_percent(path: str) -> float:
    """Used share of the file system holding ``path``, as df counts it (reserved blocks apart)."""
    path = os.path.abspath(path)
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)  # the folder is not made yet: the file system it goes on
    st = os.statvfs(path)
    used = st.f_blocks - st.f_bfree
    seen = used + st.f_bavail
    return 100.0 * used / seen if seen else 0.0


def gpu_indices(visible: str | None, count: int, uuids: list[str]) -> list[int]:
    """The NVML indices of the GPUs a process sees, in its own order (its gpu_0, gpu_1, ...):
    CUDA_VISIBLE_DEVICES (``visible``; None: every GPU) of indices or UUIDs (``GPU-...``, a
    unique prefix will do), read as CUDA does: up to the first entry that names no GPU."""
    if visible is None:
        return list(range(count))
    out: list[int] = []
    for entry in (e.strip() for e in visible.split(",")):
        if entry.isdigit():
            index = int(entry)
            if index >= count:
                break
        else:
            matches = [i for i, u in enumerate(uuids) if entry and u.startswith(entry)]
            if len(matches) != 1:
                break
            index = matches[0]
        if index in out:
            break
        out.append(index)
    return out


# -- a node's processes ----------------------------------------------------------------------
def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _children(pid: int) -> list[int] | None:
    """The children of ``pid`` (every thread's), or None where the kernel has no children files."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return []
    out: list[int] = []
    for tid in tids:
        try:
            out += [int(c) for c in _read(f"/proc/{pid}/task/{tid}/children").split()]
        except FileNotFoundError:
            if not os.path.exists(f"/proc/{pid}/task/{tid}"):
                continue  # the thread ended
            return None
        except OSError:
            continue
    return out


def tree_pids(roots: list[int]) -> set[int]:
    """``roots`` and every descendant of theirs (a child's children files, else a scan of every
    process's parent and session: a process in a root's session counts too)."""
    found, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        kids = _children(pid)
        if kids is None:
            return _scan_tree(roots)
        found.add(pid)
        todo += kids
    return found


def _scan_tree(roots: list[int]) -> set[int]:
    parents: dict[int, list[int]] = {}
    found = set(roots)
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                ppid, session, _, _ = parse_pid_stat(_read(f"/proc/{name}/stat"))
            except (OSError, ValueError, IndexError):
                continue
            parents.setdefault(ppid, []).append(int(name))
            if session in roots:
                found.add(int(name))
    todo = list(found)
    while todo:
        for kid in parents.get(todo.pop(), ()):
            if kid not in found:
                found.add(kid)
                todo.append(kid)
    return found


class ProcessTree:
    """CPU seconds (a running total, processes that ended included) and resident memory of the
    process trees under ``roots()`` (a callable: the node's top processes, as they are now)."""

    def __init__(self, roots: Callable[[], list[int]]):
        self.roots = roots
        self.seen: dict[tuple[int, int], int] = {}  # (pid, start time) -> its jiffies at the last look
        self.ended = 0  # jiffies of the processes gone since

    def __call__(self) -> tuple[float, int]:
        now: dict[tuple[int, int], int] = {}
        rss = 0
        for pid in tree_pids([p for p in self.roots() if p > 0]):
            try:
                _, _, ticks, start = parse_pid_stat(_read(f"/proc/{pid}/stat"))
                rss += parse_rss(_read(f"/proc/{pid}/status"))
            except (OSError, ValueError, IndexError):
                continue  # it ended meanwhile
            now[(pid, start)] = ticks
        self.ended += sum(t for key, t in self.seen.items() if key not in now)
        self.seen = now
        return (self.ended + sum(now.values())) / CLK_TCK, rss


# -- GPUs ------------------------------------------------------------------------------------
class Gpus:
    """NVML, initialised once; every call a silent no-op where it is missing or fails."""

    def __init__(self):
        self.nvml = None
        self.handles: list = []
        self.uuids: list[str] = []
        try:
            import pynvml

            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
            self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            self.uuids = [_text(pynvml.nvmlDeviceGetUUID(h)) for h in self.handles]
            self.nvml = pynvml
        except Exception:  # no package, no driver, no GPU: no GPU figures
            self.nvml, self.handles, self.uuids = None, [], []

    def figures(self, visible: str | None) -> dict[str, float]:
        if self.nvml is None:
            return {}
        out: dict[str, float] = {}
        for i, index in enumerate(gpu_indices(visible, len(self.handles), self.uuids)):
            out.update(self._one(i, self.handles[index]))
        return out

    def _one(self, i: int, h) -> dict[str, float]:
        nv, out = self.nvml, {}
        for key, read in ((f"gpu_{i}_utilization_percentage", lambda: nv.nvmlDeviceGetUtilizationRates(h).gpu),
                          (f"gpu_{i}_power_usage_watts", lambda: nv.nvmlDeviceGetPowerUsage(h) / 1000.0)):
            try:
                out[key] = float(read())
            except Exception:  # not supported on this device
                pass
        try:
            mem = nv.nvmlDeviceGetMemoryInfo(h)
            out[f"gpu_{i}_memory_usage_megabytes"] = mem.used / MB
            out[f"gpu_{i}_memory_usage_percentage"] = 100.0 * mem.used / mem.total if mem.total else 0.0
        except Exception:
            pass
        return out

    def close(self) -> None:
        if self.nvml is not None:
            try:
                self.nvml.nvmlShutdown()
            except Exception:
                pass
            self.nvml = None


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# -- the sampler -----------------------------------------------------------------------------
@dataclass
class NodeSource:
    """One node's part of a sample. ``processes``: its (CPU seconds so far, resident bytes), or
    None to leave process figures out; ``gpus``: its CUDA_VISIBLE_DEVICES (None: every GPU of the
    host, "": none); ``host``: whether the host's figures go into its file too."""

    index: int
    processes: Callable[[], tuple[float, int] | None] | None = None
    gpus: str | None = ""
    host: bool = True
    prev: tuple[float, float] | None = field(default=None, repr=False)  # (wall, cpu s) last time


class HostReader:
    """The host's counters now, and its figures between two readings."""

    def __init__(self, disk_path: str):
        self.disk_path = disk_path
        self.disks = whole_disks()

    def read(self) -> dict:
        return {"t": time.monotonic(), "cpu": parse_cpu(_read("/proc/stat")),
                "mem": memory_used(parse_meminfo(_read("/proc/meminfo"))),
                "disk": parse_diskstats(_read("/proc/diskstats"), self.disks),
                "net": parse_net_dev(_read("/proc/net/dev"))}

    def figures(self, before: dict, now: dict) -> dict[str, float]:
        dt = now["t"] - before["t"]
        return {"cpu_utilization_percentage": cpu_percent(before["cpu"], now["cpu"]),
                "system_memory_usage_megabytes": now["mem"][0] / MB,
                "system_memory_usage_percentage": now["mem"][1],
                "disk_usage_percentage": disk_usage_percent(self.disk_path),
                "disk_read_megabytes_per_second": rate(before["disk"][0], now["disk"][0], dt) / MB,
                "disk_write_megabytes_per_second": rate(before["disk"][1], now["disk"][1], dt) / MB,
                "network_receive_megabytes_per_second": rate(before["net"][0], now["net"][0], dt) / MB,
                "network_transmit_megabytes_per_second": rate(before["net"][1], now["net"][1], dt) / MB}


def records(figures: dict[str, float], step: int, wall: float) -> bytes:
    """The contract's metric lines of one sample (finite numbers only)."""
    lines = [json.dumps({KIND: METRIC, NAME: SYSTEM_PREFIX + name, VALUE: round(float(v), 4), STEP: step,
                         TIME: wall}, separators=(",", ":"))
             for name, v in figures.items() if v == v and abs(v) != float("inf")]
    return ("\n".join(lines) + "\n").encode() if lines else b""


class SystemSampler:
    """Samples ``nodes`` every ``interval`` seconds into ``metrics_dir``/system_<node>.jsonl in a
    daemon thread, from start() to stop() (which takes a last sample). ``say``: where its one
    message goes if sampling fails."""

    def __init__(self, metrics_dir, nodes: list[NodeSource], interval: float, disk_path: str | None = None,
                 say: Callable[[str], None] = print):
        self.dir = str(metrics_dir)
        self.nodes, self.interval, self.say = nodes, interval, say
        self.disk_path = disk_path or self.dir
        self.step = 0
        self.cpu_s = 0.0  # the sampler thread's own CPU time (thread_time), for bench/
        self.setup_cpu_s = 0.0  # ... of that, its first readings (NVML's start among them)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fds: dict[int, int] = {}
        self._host: HostReader | None = None
        self._last: dict | None = None
        self._gpus: Gpus | None = None

    def start(self) -> "SystemSampler":
        if self.interval > 0 and self.nodes and self._thread is None:
            self._thread = threading.Thread(target=self._loop, daemon=True, name="system-metrics")
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """The last sample, then the thread's end (it never raises)."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        try:
            self._begin()
            self.setup_cpu_s = time.thread_time()
            while not self._stop.wait(self.interval):
                self.sample()
            self.sample()
        except Exception as exc:  # never the run's problem: said once, and no more samples
            try:
                self.say(f"system metrics stopped: {type(exc).__name__}: {exc}")
            except Exception:
                pass
        finally:
            self.cpu_s = time.thread_time()
            self._close()

    def _begin(self) -> None:
        """The first readings, the base of the first sample's rates (nothing written yet)."""
        if any(n.host for n in self.nodes):
            self._host = HostReader(self.disk_path)
            self._last = self._host.read()
        if any(n.gpus != "" for n in self.nodes):
            self._gpus = Gpus()
        for n in self.nodes:
            got = n.processes() if n.processes else None
            n.prev = (time.monotonic(), got[0]) if got else None

    def sample(self) -> None:
        """One sample of every node, each node's lines in one write."""
        wall = time.time()
        host = {}
        if self._host is not None:
            now = self._host.read()
            host = self._host.figures(self._last, now)
            self._last = now
        for n in self.nodes:
            figures = dict(host) if n.host else {}
            figures.update(self._process_figures(n))
            if self._gpus is not None and n.gpus != "":
                figures.update(self._gpus.figures(n.gpus))
            data = records(figures, self.step, wall)
            if data:
                os.write(self._fd(n.index), data)
        self.step += 1

    @staticmethod
    def _process_figures(n: NodeSource) -> dict[str, float]:
        got = n.processes() if n.processes else None
        if not got:
            return {}
        t = time.monotonic()
        # a tree that has ended holds no memory: left out rather than a drop to 0 at the end
        out = {"process_memory_megabytes": got[1] / MB} if got[1] > 0 else {}
        if n.prev is not None:
            out["process_cpu_percentage"] = 100.0 * rate(n.prev[1], got[0], t - n.prev[0])
        n.prev = (t, got[0])
        return out

    def _fd(self, index: int) -> int:
        fd = self._fds.get(index)
        if fd is None:
            os.makedirs(self.dir, exist_ok=True)
            path = os.path.join(self.dir, system_metrics_file_name(index))
            fd = self._fds[index] = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        return fd

    def _close(self) -> None:
        for fd in self._fds.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds.clear()
        if self._gpus is not None:
            self._gpus.close()


def start_sampler(metrics_dir, nodes: list[NodeSource], disk_path: str | None = None,
                  say: Callable[[str], None] = print, environ=None) -> SystemSampler | None:
    """A running sampler at the interval the environment asks for, or None where it says 0."""
    interval = interval_from_env(environ)
    if interval <= 0 or not nodes:
        return None
    return SystemSampler(metrics_dir, nodes, interval, disk_path, say).start()
