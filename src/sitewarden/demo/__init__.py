"""The demo site: ``sitewarden demo`` serves a small real site protected by sitewarden.

* :mod:`sitewarden.demo.app` — the Starlette application (:func:`~sitewarden.demo.app.create_app`);
* :mod:`sitewarden.demo.accounts` — Argon2id accounts in sitewarden's store;
* :mod:`sitewarden.demo.tls` — the local CA and server certificate for ``--https``;
* :mod:`sitewarden.demo.serve` — HTTPS and the HTTP→HTTPS redirector in one event loop;
* :mod:`sitewarden.demo.cli` — the command (``python -m sitewarden.demo.cli`` also works).

Nothing is imported here, so ``sitewarden`` itself does not need the demo's packages
(Starlette, uvicorn, Jinja2, python-multipart: the ``demo`` extra).
"""
