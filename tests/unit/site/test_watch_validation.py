"""The site file's `watch:` section (issue 21): schedules load with their seconds and the controls they cover;
a bad schedule is refused at load, naming the key and what is allowed. Nothing in the section is a command: the
notification command is the controller's, so a `notify:` key is refused as unknown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import example_data, run_cli, write_site

from provisioner.errors import SiteError
from provisioner.site.load import load_site
from provisioner.site.watch_schedules import catalogue_ids, covered, intervals_by_control


def with_watch(tmp_path: Path, watch: Any) -> Path:
    data = example_data()
    data["watch"] = watch
    return write_site(tmp_path / "s", data)


def test_schedules_load_with_seconds_and_covered_controls(tmp_path: Path):
    site = load_site(with_watch(tmp_path, {
        "schedules": [
            {"name": "separation", "every": "1h", "controls": ["NET", "ACC-2"]},
            {"name": "fast-net", "every": "20s", "controls": ["NET-2"]},
            {"name": "data-scan", "every": "1d", "controls": ["DATA"]},
        ],
        "grace": "2m",
    })).model  # fmt: skip
    assert site.watch is not None
    net_and_acc2, fast, data = site.watch.schedules
    assert (net_and_acc2.seconds, fast.seconds, data.seconds, site.watch.grace_seconds) == (3600, 20, 86400, 120)
    assert covered(net_and_acc2) == ["NET-1", "NET-2", "NET-3", "ACC-2", "NET-4"]
    assert covered(data) == ["DATA-1", "DATA-2", "DATA-3"]
    intervals = intervals_by_control(site)
    assert intervals["NET-2"] == 20 and intervals["NET-1"] == 3600 and intervals["DATA-3"] == 86400
    assert "CHG-1" not in intervals


def test_no_controls_means_every_control(tmp_path: Path):
    site = load_site(with_watch(tmp_path, {"schedules": [{"name": "all", "every": "30m"}]})).model
    assert set(intervals_by_control(site)) == set(catalogue_ids())
    assert load_site(write_site(tmp_path / "plain", example_data())).model.watch is None


@pytest.mark.parametrize(
    ("watch", "path", "message"),
    [
        (
            {"schedules": [{"name": "n", "every": "10s"}]},
            "watch.schedules[0].every",
            "'10s' is shorter than 20s; allowed: 20s or longer",
        ),
        (
            {"schedules": [{"name": "n", "every": "1w"}]},
            "watch.schedules[0].every",
            "a whole number and s, m, h or d, such as 20s or 1h",
        ),
        (
            {"schedules": [{"name": "n", "every": "1h", "controls": ["NET-9"]}]},
            "watch.schedules[0].controls[0]",
            "'NET-9' is no control or family of the catalogue; allowed: ACC, CHG, CUE, DATA, DOC, HYP, LOG, NET or an "
            "ID",
        ),
        (
            {"schedules": [{"name": "n", "every": "1h"}, {"name": "n", "every": "2h"}]},
            "watch.schedules[1].name",
            "schedule name 'n' is used twice",
        ),
        ({"schedules": []}, "watch.schedules", "at least 1"),
        ({"schedules": [{"name": "n", "every": "1h"}], "notify": "curl http://x"}, "watch.notify", ""),
    ],
    ids=["too-often", "unit", "unknown-control", "twice", "empty", "notify-is-not-the-site-files"],
)
def test_bad_schedules_are_refused_naming_the_key(tmp_path: Path, watch: Any, path: str, message: str):
    site_file = with_watch(tmp_path, watch)
    with pytest.raises(SiteError) as caught:
        load_site(site_file)
    problems = {p.path: p for p in caught.value.problems}
    assert path in problems, caught.value.problems
    assert message in problems[path].message and problems[path].line is not None
    result = run_cli("validate", str(site_file))
    assert result.rc == 2 and path in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
