"""The closed loop: report → coordination → plan → execution feedback → evaluation (SPEC §2)."""
