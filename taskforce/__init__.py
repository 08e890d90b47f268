"""The task force's domain core: plain Python, no Prefect import (ARCHITECTURE.md rule 3)."""
