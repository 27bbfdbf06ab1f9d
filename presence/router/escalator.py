"""Overflow and skill relaxation on a timer: the `Escalator` task.

Every process runs one; each tick calls ``store/lua/queue_escalate.lua``,
which handles only the items whose next check is due (a timer zset entry
per waiting item of a queue with rules), so a tick costs the number of
items due, never the number of agents. The script relaxes required skills
step by step and marks overflowed items as borrowed by the other queue;
the queues it names are woken so ``route.lua`` tries them at once. Several
processes may tick at once: each change is one atomic script and applying
a step twice changes nothing.
"""

from __future__ import annotations

from presence.router.dispatcher import Dispatcher
from presence.store import Store
from presence.tasks import Periodic


class Escalator(Periodic):
    name = "escalator"

    def __init__(self, store: Store, dispatcher: Dispatcher, *, interval: float = 0.2) -> None:
        super().__init__(interval)
        self.store = store
        self.dispatcher = dispatcher

    async def tick(self) -> None:
        woke = await self.store.escalate()
        if woke:
            self.dispatcher.wake(woke)
