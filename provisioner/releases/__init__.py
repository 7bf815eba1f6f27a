"""Releases: one-way promotion Dev -> Test -> Prod, four-eyes approvals, a signed hash-chained ledger."""
