"""The organisation: units, groups, members (SPEC §1)."""
