"""Plain-English titles of the checks, as the evidence pack shows them to auditors.

A check is a pytest function in `checks/` (its name is an identifier such as
`test_developer_key_refused_by_production_and_accepted_in_development`); reports show the sentence below instead.
The control a check proves keeps the catalogue's wording (catalogue.yml); these titles say what the one check
attempts or reads. `tests/unit/report/test_report_for_auditors.py` requires a title here for every check
function, and for the rows the waivers and the report add.
"""

from __future__ import annotations

import re

CHECK_TITLES: dict[str, str] = {
    # NET
    "test_host_sits_only_in_its_environment": "The host has one network interface, in its own environment's subnet",
    "test_hypervisor_wiring_matches_the_design": "Every machine is wired to its own environment's segment only",
    "test_reachability_from_each_environment": "Connections between environments pass only where a flow is declared",
    "test_reachability_from_each_access_network": (
        "From people's workstations (an access network), only SSH to the environments it reaches passes"
    ),
    "test_host_firewall_drops_inbound_by_default": "The host's firewall drops incoming traffic by default",
    "test_the_hypervisors_firewall_filters_every_nic_of_the_host": (
        "The hypervisor's own firewall is in force on every network interface of the host, with its environment's rules"
    ),
    "test_ssh_only_from_the_management_network": (
        "SSH to the host is accepted only from the management network (and the access networks that reach it)"
    ),
    "live_network_matches_site_file": "The live network matches the site file (diagram drawn from live state)",
    # HYP
    "test_root_on_a_development_host_cannot_act_on_the_hypervisor": (
        "Root on a development host cannot reach the hypervisor: every known container escape is refused"
    ),
    # ACC
    "test_no_developer_or_tester_account_on_production": "No developer or tester account exists on the production host",
    "test_developer_key_refused_by_production_and_accepted_in_development": (
        "A developer's SSH key is refused by every production host (and works in development)"
    ),
    "test_developer_cannot_reach_the_production_database": (
        "A developer cannot connect to the production database (but can to development's)"
    ),
    "test_no_developer_role_in_the_production_database": "The production database has no developer or tester login",
    "test_production_sudo_only_for_administrators": (
        "On production, only administrators may use sudo; the deploy identity only its deploy command"
    ),
    "test_developer_sudo_refused_in_test_and_allowed_in_development": (
        "A developer may log in to test but not become administrator there"
    ),
    "test_no_root_login_and_no_password_authentication": "SSH accepts neither root logins nor passwords",
    "test_keys_only_from_root_owned_files": (
        "SSH takes keys only from root-owned files that no user can change (not from the user's own home)"
    ),
    "test_nobody_holds_hypervisor_rights_beyond_their_access": (
        "Nobody holds rights at the hypervisor on an environment they may not access"
    ),
    "test_developers_hold_nothing_on_production_but_work_in_development": (
        "Developers hold no hypervisor rights on production, and their rights in development are seen"
    ),
    # CUE and LOG
    "test_banners_and_prompt_announce_the_environment": "Login banner and prompt name the environment in its colour",
    "test_hostname_carries_the_environment": "The host's name carries its environment",
    "test_production_records_a_fresh_login_and_sudo": "Production logs a fresh login and an administrator command",
    "test_production_logs_leave_the_host_as_they_are_written": (
        "A production login and administrator command reach the controller's copy of the host's log within seconds"
    ),
    "test_web_pages_show_the_environment_banner_outside_production": (
        "Web pages outside production show an environment banner; production's show none"
    ),
    # DATA
    "test_no_personal_data_outside_production": "The scan finds no live personal data in this environment",
    "test_data_provenance_matches_the_data_rule": "The environment's data has a recorded origin its data rule allows",
    "test_refreshes_are_authorised_and_scrubbed_in_time": (
        "Every copy of production data was authorised and is scrubbed by its deadline"
    ),
    # CHG
    "test_release_ledger_is_chained_signed_and_complete": "The release record is chained, signed and complete",
    "test_host_runs_the_release_the_ledger_says": "The host runs the release the release record says it runs",
    "test_every_production_deploy_was_approved_by_someone_else": (
        "Every production deploy was approved by someone other than the release's author"
    ),
    "test_production_files_are_exactly_what_the_release_deployed": (
        "Production's application files are exactly what the release deployed"
    ),
    # ACC-7 (from the site file's waivers) and DOC
    "waiver_is_valid": "The exception is approved by someone other than its requester, unexpired, with compensations",
    "evidence_pack_generated": "This evidence pack was generated from the latest checks and live state",
}


def check_title(check: str) -> str:
    """The check's plain-English title; a check this table does not know (from an older or newer suite) is
    named by its words, never by its identifier."""
    if check in CHECK_TITLES:
        return CHECK_TITLES[check]
    words = re.sub(r"^test_+", "", check).replace("_", " ").strip()
    return (words[:1].upper() + words[1:]) if words else "Unnamed check"
