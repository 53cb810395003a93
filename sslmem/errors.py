"""One exception type for every failure a user can fix.

Why: a researcher who passes a wrong dataset name or a missing file should see one readable line
that says what to do, not a traceback through torch internals. The CLI and the notebooks print
``str(err)`` for an :class:`SSLMemError` and stop.
"""


class SSLMemError(Exception):
    """A failure with a message meant for the user (what went wrong and how to fix it)."""


def unknown_choice(kind: str, value: object, choices) -> SSLMemError:
    """Error for a value outside a fixed set: names the kind and lists the valid choices."""
    listed = ", ".join(sorted(str(c) for c in choices))
    return SSLMemError(f"unknown {kind} {value!r}; choose one of: {listed}")
