"""The decision trail (决策留痕, SPEC §2): append-only and tamper-evident."""

from taskforce.trail.service import TrailBreak, append, append_many, canonical_json, verify

__all__ = ["TrailBreak", "append", "append_many", "canonical_json", "verify"]
