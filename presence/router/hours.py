"""Business hours on the clock: the `HoursPlanner` task.

A queue's plan (when it opens and closes, `presence.hours.plan`) covers a
window around now; every process renews every plan once at start and then
every hour (``store/lua/queue_plan.lua``), so the scripts always find the
coming weeks' changes. Writing the same plan twice changes nothing, so
several processes may plan at once.
"""

from __future__ import annotations

from presence.store import Store
from presence.tasks import Periodic

PLAN_EVERY = 3600.0


class HoursPlanner(Periodic):
    name = "hours planner"
    tick_first = True

    def __init__(self, store: Store, *, interval: float = PLAN_EVERY) -> None:
        super().__init__(interval)
        self.store = store

    async def tick(self) -> None:
        await self.store.plan_hours()
