"""Key rings an app and ``asgi-sessions rekey --keyring keyrings:ROTATED`` both import."""

from asgi_sessions.sealing import KeyRing, TokenBound, generate_key

OLD_KEY, NEW_KEY = generate_key(), generate_key()
BEFORE = KeyRing({"2026-06": OLD_KEY})
ROTATED = KeyRing({"2026-12": NEW_KEY, "2026-06": OLD_KEY})
AFTER = KeyRing({"2026-12": NEW_KEY})
BOUND = TokenBound()
NOT_A_RING = {"2026-12": NEW_KEY}
