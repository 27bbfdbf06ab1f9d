"""Channel adapters: every way a contact becomes a routed case.

* ``voice``: call arrival and hang-up from a PBX / CTI (IVR map, screen pop);
* ``forms``: web-to-case from a plain HTML form (``/forms/case``);
* ``email``: email-to-case with reply threading;
* ``messaging``: chat, SMS and social conversations.

What they share (field checks, the customer lookup, the intake call) is
``common``. `ROUTES` is what the app mounts.
"""

from __future__ import annotations

from presence.http.channels import email, forms, messaging, voice

ROUTES = [*voice.ROUTES, *email.ROUTES, *forms.ROUTES, *messaging.ROUTES]

__all__ = ["ROUTES"]
