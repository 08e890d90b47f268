"""Emergencies and warnings (SPEC §5)."""
