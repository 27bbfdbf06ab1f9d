"""Every script is safe to run twice (issue 16: the server's own retry of a
write Redis had applied): redis-py sends a call again on a fresh connection
after a connection error, so each script either remembers its reply
(`REMEMBERED`: the retry answers the first result) or is named here with the
reason a second run leaves what the first did, or is read only
(`READ_ONLY`, flagged no-writes: Redis refuses a write in it). A new script must be placed
in one of them: unplaced, this test fails."""

from __future__ import annotations

from presence.store.scripts import ANSWERS_ITS_RETRY, READ_ONLY, REMEMBERED, script_names

# writes whose second run of the same call (the same arguments and clock)
# finds the state the first left and changes nothing more
REPEATS_ALIKE = frozenset(
    {
        "agent_hand",  # a repair: the second run finds the field repaired, the old set gone
        "conn_close",  # the socket is gone already
        "conn_open",  # the same connection id registered again
        "conn_renew",  # the same leases pushed to the same time
        "lock_release",  # compare-and-delete: the lock is no longer the caller's
        "lock_renew",  # the same TTL again
        "queue_escalate",  # a timer pass: the items' next escalation already moved
        "queue_plan",  # the same plan of hours written again
        "route",  # the router's pass: what it assigned is no longer waiting
        "sweep",  # what timed out was already handled
        "work_composing",  # the same mark to the same until_ms
        "work_retain",  # the items have their expiry already
        # a retried hit counts twice: the form's limit one hit stricter for
        # that window, never looser
        "rate_hit",
    }
)


def test_every_script_is_placed_once() -> None:
    names = set(script_names())
    classes = (REMEMBERED, READ_ONLY, REPEATS_ALIKE)
    unplaced = names - set().union(*classes)
    assert not unplaced, f"scripts neither remembered nor named safe to repeat: {sorted(unplaced)}"
    assert sum(len(c) for c in classes) == len(set().union(*classes)), "a script placed twice"
    assert set().union(*classes) <= names, "a placed script that no longer exists"
    assert ANSWERS_ITS_RETRY <= REMEMBERED
