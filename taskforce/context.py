"""What every service needs besides its session: the policy, the clock, the calendar."""

from __future__ import annotations

from dataclasses import dataclass, field

from taskforce.calendar import WorkCalendar
from taskforce.clock import Clock, SystemClock, end_of_day, local_date
from taskforce.policy import Policy, load_policy

_process_clock: Clock = SystemClock()


def use_clock(clock: Clock) -> Clock:
    """Set the clock of this process's default Context: the demo replays months of simulated
    time through the real flows (which run in-process in Prefect's local mode). Returns the
    clock it replaces, for the caller to put back."""
    global _process_clock
    previous, _process_clock = _process_clock, clock
    return previous


@dataclass(frozen=True)
class Context:
    policy: Policy
    clock: Clock = field(default_factory=SystemClock)
    calendar: WorkCalendar | None = None

    def __post_init__(self) -> None:
        if self.calendar is None:
            object.__setattr__(self, "calendar", WorkCalendar(self.policy.calendar))

    @classmethod
    def default(cls, clock: Clock | None = None, *, policy: Policy | None = None) -> Context:
        return cls(policy=policy or load_policy(), clock=clock or _process_clock)

    def now(self):
        return self.clock.now()

    def today(self):
        return local_date(self.clock.now(), self.policy.timezone)

    def end_of(self, day):
        return end_of_day(day, self.policy.timezone)
