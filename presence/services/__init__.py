"""Domain services: what the product does that is neither transport nor Redis.

* ``work``: a new work item checked and submitted (``POST /api/v1/work``,
  the demo);
* ``cases``: a contact opened as a case or joined to its thread, the
  sender's customer record, the expected wait, moves that wake the router;
* ``webhooks``: the delivery task that signs and posts events.

A service takes the store and the dispatcher it needs as arguments; it
never imports a transport (``presence/http/``, ``presence/ws/``).
"""
