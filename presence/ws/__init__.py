"""The websocket transport: ``/ws/agent`` and ``/ws/supervisor``.

* ``session``: one socket's life (authenticate, accept, snapshot, receive
  loop, always release) and what both roles share;
* ``agent``, ``supervisor``: each role's message handlers and snapshot;
* ``cases``: the case messages (notes, transfers, call control, and the
  supervisor's reassign, push and pull);
* ``hub``: this process's sockets and its one pub/sub listener;
* ``endpoints``: the two endpoints the app mounts.

It talks to the HTTP side only through Redis (the events the scripts
publish): neither imports the other.
"""
