"""The HTTP transport: every route but the two websockets.

* ``common``: what every route shares (the context, the token check, the
  JSON body, a JSON answer);
* ``errors``: the one place an exception becomes a problem+json answer;
* ``health``, ``admin``, ``work``: health checks, the center's admin API,
  work items;
* ``cases``: comments, status, transfers and the customer directory;
* ``channels/``: the channel adapters (voice, email, web form, messaging);
* ``reports``, ``metrics``: reports as JSON or CSV, the Prometheus scrape;
* ``openapi``: the published description, built from the routes;
* ``pages``: the agent panel, the wallboard, the contact page and their files.

It talks to the websocket side only through Redis: neither imports the other.
"""
