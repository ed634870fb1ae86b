"""When a fuzz campaign must stop: its budget and a divergence's shrink budget.

Hypothesis shrinks for up to five minutes per failure and replays a thousand candidates; with
an example costing a C run, one divergence could eat a whole campaign. The campaign therefore
ends a Hypothesis run itself, by raising :class:`Stop` from the test body: a BaseException,
which Hypothesis neither catches as a failure nor shrinks, so the smallest failing example seen
so far stays the minimal one. (SIGTERM is the CLI's: harness.runners.process.install_sigterm
raises it again where Hypothesis's gc callback would drop it.)
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional


class Stop(BaseException):
    """Ends the Hypothesis run under way (budget spent); not a failure of the example."""


@dataclass(frozen=True)
class Deadlines:
    """The campaign's end (None: no --budget) and how long one divergence may shrink."""

    campaign_end: Optional[float]
    shrink_s: float

    def campaign_over(self, now: float) -> bool:
        return self.campaign_end is not None and now >= self.campaign_end

    def shrink_end(self, started: float) -> float:
        """When a shrink that began at ``started`` is cut: its budget, or the campaign's end."""
        end = started + self.shrink_s
        return end if self.campaign_end is None else min(end, self.campaign_end)


def deadlines(started: float, budget_s: Optional[float], shrink_s: float) -> Deadlines:
    return Deadlines(None if budget_s is None else started + budget_s, shrink_s)


def now() -> float:
    return time.monotonic()
