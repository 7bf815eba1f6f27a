"""HYP-1's attempts: the known ways out of a container, tried as root inside one, and what each outcome means.

The script runs as root on a lab host that shares the hypervisor's kernel (a container). It changes nothing even
where an attempt succeeds: every write puts back the value it has just read. Each attempt reports how it ended:
"written"/"opened"/"allowed" (the way out is open), an errno name (refused, and by what), or "absent" (nothing
there to try). `judge` says which outcomes are a refusal for the right reason.
"""

from __future__ import annotations

from dataclasses import dataclass

SCRIPT = r"""
import ctypes, errno, json, os, tempfile
libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
MS_RDONLY = 1
work = tempfile.mkdtemp(prefix="provisioner-hyp1-")
out = []

def name(number):
    return errno.errorcode.get(number, str(number))

def mount(source, target, fstype, options=None):
    os.makedirs(target, exist_ok=True)
    if libc.mount(source.encode(), target.encode(), fstype.encode(), 0,
                  options.encode() if options else None) != 0:
        return name(ctypes.get_errno())
    return None

def umount(target):
    libc.umount2(target.encode(), 2)

def write_back(path):
    try:
        with open(path, "rb") as handle:
            current = handle.read()
    except FileNotFoundError:
        return "absent"
    except OSError as exc:
        return name(exc.errno)
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError as exc:
        return name(exc.errno)
    try:
        os.write(fd, current if current.strip() else b"\n")
        return "written"
    except OSError as exc:
        return name(exc.errno)
    finally:
        os.close(fd)

def attempt(primitive, target, outcome, detail=""):
    out.append({"primitive": primitive, "target": target, "outcome": outcome, "detail": detail})

# 1. the kernel's core_pattern and modprobe helpers: through the mounted /proc and through a fresh read-write one
for knob in ("kernel/core_pattern", "kernel/modprobe"):
    attempt("proc", "/proc/sys/" + knob, write_back("/proc/sys/" + knob), "the /proc the container booted with")
failed = mount("proc", work + "/proc", "proc")
if failed:
    attempt("proc", "mount -t proc (read-write)", failed, "a fresh /proc refused")
else:
    for knob in ("kernel/core_pattern", "kernel/modprobe"):
        attempt("proc", "fresh /proc/sys/" + knob, write_back(work + "/proc/sys/" + knob), "a fresh /proc, read-write")
    umount(work + "/proc")

# 2. sysfs read-write: host-wide kernel settings
failed = mount("sysfs", work + "/sys", "sysfs")
if failed:
    attempt("sysfs", "mount -t sysfs (read-write)", failed, "a fresh sysfs refused")
else:
    tried = False
    for knob in ("kernel/uevent_helper", "kernel/rcu_expedited", "kernel/mm/ksm/run", "kernel/profiling"):
        outcome = write_back(work + "/sys/" + knob)
        if outcome != "absent":
            attempt("sysfs", "fresh /sys/" + knob, outcome, "a host-wide kernel setting")
            tried = True
    if not tried:
        attempt("sysfs", "fresh /sys/kernel", "absent", "no host-wide setting found to try")
    umount(work + "/sys")

# 3. cgroups: the release_agent of a v1 hierarchy runs as host root
hierarchies = []
with open("/proc/cgroups") as handle:
    for line in handle:
        fields = line.split()
        if fields and not line.startswith("#") and fields[3] == "1":
            hierarchies.append(fields[0])
cgroup = next((h for h in ("memory", "pids", "cpuset", "freezer") if h in hierarchies), None)
if cgroup is None:
    attempt("cgroup", "cgroup v1 release_agent", "absent", "no cgroup v1 controller enabled")
else:
    failed = mount("cgroup", work + "/cgroup", "cgroup", cgroup)
    if failed:
        attempt("cgroup", f"mount -t cgroup -o {cgroup}", failed, "a fresh cgroup hierarchy refused")
    else:
        agent = work + "/cgroup/release_agent"
        if os.path.exists(agent):
            attempt("cgroup", f"{cgroup} hierarchy release_agent", write_back(agent), "the hierarchy's root is visible")
        else:
            try:
                os.close(os.open(agent, os.O_WRONLY | os.O_CREAT, 0o600))
                attempt("cgroup", f"{cgroup} hierarchy release_agent", "written", "created where it was absent")
            except OSError as exc:
                attempt("cgroup", f"{cgroup} hierarchy release_agent", name(exc.errno),
                        "only the container's own cgroup is visible (cgroup namespace); creating it refused")
        umount(work + "/cgroup")

# 4. the host's disk as a block device
disk = None
for entry in sorted(os.listdir("/sys/block")):
    if entry.startswith(("loop", "ram", "zram", "sr")):
        continue
    try:
        with open(f"/sys/block/{entry}/dev") as handle:
            disk = (entry, handle.read().strip())
        break
    except OSError:
        continue
if disk is None:
    attempt("block device", "the host's disk", "absent", "no disk listed in /sys/block")
else:
    major, minor = (int(x) for x in disk[1].split(":"))
    node = work + "/disk"
    try:
        os.mknod(node, 0o600 | 0o060000, os.makedev(major, minor))
    except OSError as exc:
        attempt("block device", f"mknod {disk[0]} ({disk[1]})", name(exc.errno), "creating the device node refused")
    else:
        try:
            fd = os.open(node, os.O_RDONLY)
            os.close(fd)
            attempt("block device", f"open {disk[0]} ({disk[1]})", "opened", "the host's disk is readable")
        except OSError as exc:
            attempt("block device", f"open {disk[0]} ({disk[1]})", name(exc.errno), "node made, opening refused")
        os.unlink(node)

# 5. loading a kernel module (no module is given: only the permission check is reached)
libc.syscall.restype = ctypes.c_long
if libc.syscall(313, -1, b"", 0) == 0:
    attempt("module", "finit_module", "allowed", "")
else:
    number = ctypes.get_errno()
    attempt("module", "finit_module", "allowed" if number == errno.EBADF else name(number),
            "the permission check passed (only the missing file stopped it)" if number == errno.EBADF else "")

try:
    for sub in os.listdir(work):
        os.rmdir(os.path.join(work, sub))
    os.rmdir(work)
except OSError:
    pass
print(json.dumps(out))
"""

# Refused for the right reason: a permission the kernel checks against the host's root, or a read-only mount.
REFUSALS = {
    "EACCES": "permission denied (the file belongs to the host's root)",
    "EPERM": "operation not permitted (no such capability over the host)",
    "EROFS": "read-only file system",
}
MODULE_REFUSALS = {
    **REFUSALS,
    "ENOSYS": "the kernel cannot load modules at all",
}
OPEN = {"written", "opened", "allowed"}


@dataclass(frozen=True)
class Verdict:
    primitive: str
    target: str
    outcome: str
    refused: bool
    meaning: str


def judge(attempts: list[dict[str, str]]) -> list[Verdict]:
    """Each attempt's verdict: refused for the right reason, or not (open, or ended for a reason that proves
    nothing, such as a missing file)."""
    verdicts = []
    for row in attempts:
        outcome = str(row.get("outcome", ""))
        known = MODULE_REFUSALS if row.get("primitive") == "module" else REFUSALS
        if outcome in known:
            verdicts.append(Verdict(row["primitive"], row["target"], outcome, True, known[outcome]))
        elif outcome in OPEN:
            verdicts.append(Verdict(row["primitive"], row["target"], outcome, False, "the way out is open"))
        elif outcome == "absent" and row.get("target", "").endswith("kernel/modprobe"):
            verdicts.append(Verdict(row["primitive"], row["target"], outcome, True, "the kernel has no module loader"))
        else:
            verdicts.append(
                Verdict(row["primitive"], row["target"], outcome, False, f"inconclusive: {row.get('detail', '')}")
            )
    return verdicts
