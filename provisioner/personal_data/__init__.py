"""Test data (DATA-1..3): synthetic seeding, authorised anonymised refresh, and the personal-data scan."""
