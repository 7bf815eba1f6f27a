"""The gateway's deny counters between two verify runs: this run's start minus the previous run's end (issue 21)."""

from __future__ import annotations

from helpers import example_with_access_networks

from provisioner.conformance.attempts.counters import between, pair_names
from provisioner.site.model import Site

PAIRS = pair_names(Site.model_validate(example_with_access_networks()))


def test_counters_that_did_not_move_count_nothing():
    same = {"deny_dev_to_prod": 40, "deny_office_to_prod": 2, "deny_gateway_input": 9}
    found = between(same, same, PAIRS)
    assert (found.by_pair, found.other, found.notes) == ({}, {}, [])


def test_what_a_counter_gained_is_counted_for_its_pair():
    found = between({"deny_dev_to_prod": 40, "deny_mgmt_to_test": 0}, {"deny_dev_to_prod": 43,
                     "deny_mgmt_to_test": 1}, PAIRS)  # fmt: skip
    assert found.by_pair == {"dev->prod": 3, "mgmt->test": 1} and found.notes == []


def test_a_lower_counter_counts_from_zero_and_says_what_was_lost():
    found = between({"deny_dev_to_prod": 40}, {"deny_dev_to_prod": 5}, PAIRS)
    assert found.by_pair == {"dev->prod": 5}
    assert found.notes == [
        "deny_dev_to_prod went down from 40 to 5 (ruleset reloaded or gateway rebuilt): counted from zero, what it "
        "counted before the reload is lost"
    ]


def test_a_new_counter_counts_from_zero_and_says_so_and_one_at_zero_is_no_news():
    found = between({}, {"deny_admins_to_prod": 2, "deny_office_to_prod": 0}, PAIRS)
    assert found.by_pair == {"admins->prod": 2}
    assert found.notes == ["deny_admins_to_prod is new since the previous run: counted from zero"]


def test_counters_of_no_pair_are_kept_apart():
    found = between({"deny_gateway_input": 1, "spoofed_dev": 0}, {"deny_gateway_input": 4, "spoofed_dev": 2,
                    "deny_old_to_prod": 1}, PAIRS)  # fmt: skip
    assert found.by_pair == {}
    assert found.other == {"deny_gateway_input": 3, "spoofed_dev": 2, "deny_old_to_prod": 1}


def test_every_ordered_pair_of_zones_has_its_counter_name():
    zones = ["mgmt", "dev", "test", "prod", "office", "admins"]
    assert len(PAIRS) == len(zones) * (len(zones) - 1)
    assert PAIRS["deny_prod_to_mgmt"] == "prod->mgmt" and PAIRS["deny_office_to_admins"] == "office->admins"
