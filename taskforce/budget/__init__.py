"""Budget (SPEC §4): zero-based lines, three reviews, the emergency reserve, the ledger."""
