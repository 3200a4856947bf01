"""Account protections: passwords (:mod:`.passwords`) and TOTP two-factor (:mod:`.totp`).

Each is reachable from a :class:`~sitewarden.Warden` as ``warden.passwords`` and
``warden.totp``.
"""
