"""The demo site: ``sitewarden demo`` serves a small real site protected by sitewarden.

* :mod:`sitewarden.demo.app` — the Starlette application (:func:`~sitewarden.demo.app.create_app`),
  the home page, comments and sign-out;
* :mod:`sitewarden.demo.pages` — templates and rendering shared by the route groups;
* :mod:`sitewarden.demo.signin` — sign-in: rate limits, lockout, password, second factor;
* :mod:`sitewarden.demo.account` — ``/account``: two-factor enrolment, recovery codes, password;
* :mod:`sitewarden.demo.admin` — ``/manage``: locks, bans, security events, reports, accounts;
* :mod:`sitewarden.demo.accounts` — the accounts in sitewarden's store (``warden.passwords``);
* :mod:`sitewarden.demo.tls` — the local CA and server certificate for ``--https``;
* :mod:`sitewarden.demo.serve` — HTTPS and the HTTP→HTTPS redirector in one event loop;
* :mod:`sitewarden.demo.cli` — the command (``python -m sitewarden.demo.cli`` also works).

Nothing is imported here, so ``sitewarden`` itself does not need the demo's packages
(Starlette, uvicorn, Jinja2, python-multipart: the ``demo`` extra).
"""
