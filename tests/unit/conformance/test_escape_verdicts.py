"""HYP-1's reading of the escape attempts: only a refusal by the kernel's permission checks counts."""

from __future__ import annotations

from provisioner.conformance import escape_probe


def row(primitive: str, target: str, outcome: str) -> dict[str, str]:
    return {"primitive": primitive, "target": target, "outcome": outcome, "detail": "d"}


def test_permission_refusals_count_as_refused():
    verdicts = escape_probe.judge(
        [
            row("proc", "fresh /proc/sys/kernel/core_pattern", "EACCES"),
            row("proc", "/proc/sys/kernel/core_pattern", "EROFS"),
            row("block device", "mknod vda (254:0)", "EPERM"),
            row("module", "finit_module", "ENOSYS"),
            row("proc", "fresh /proc/sys/kernel/modprobe", "absent"),
        ]
    )
    assert all(v.refused for v in verdicts), verdicts


def test_a_way_out_that_is_open_fails():
    verdicts = escape_probe.judge(
        [row("proc", "fresh /proc/sys/kernel/core_pattern", "written"), row("module", "finit_module", "allowed")]
    )
    assert [v.refused for v in verdicts] == [False, False]
    assert verdicts[0].meaning == "the way out is open"


def test_an_outcome_that_proves_nothing_is_not_a_refusal():
    """A missing file, a busy device or a timeout is silence, not proof."""
    verdicts = escape_probe.judge(
        [
            row("sysfs", "fresh /sys/kernel", "absent"),
            row("proc", "fresh /proc/sys/kernel/core_pattern", "absent"),
            row("block device", "open vda (254:0)", "EBUSY"),
            row("proc", "fresh /proc/sys/kernel/core_pattern", "ENOENT"),
            row("block device", "mknod vda", "ENOSYS"),  # ENOSYS is a refusal only for module loading
        ]
    )
    assert not any(v.refused for v in verdicts)
    assert all(v.meaning.startswith("inconclusive") for v in verdicts)


def test_the_script_is_valid_python_that_writes_back_what_it_read():
    compile(escape_probe.SCRIPT, "hyp1", "exec")
    assert "os.write(fd, current" in escape_probe.SCRIPT, "an attempt that succeeds must change nothing"
