"""Time spent waiting on MaxContact, summed per request (the panel's `Server-Timing` header).

`measuring()` starts a tally in the current context; every vendor request made in that context
(threads started by asgiref copy it, and share the tally) adds its duration to it.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass


@dataclass
class Tally:
    requests: int = 0
    seconds: float = 0.0


_TALLY: contextvars.ContextVar[Tally | None] = contextvars.ContextVar("vendor_tally", default=None)


def measuring() -> tuple[Tally, contextvars.Token[Tally | None]]:
    tally = Tally()
    return tally, _TALLY.set(tally)


def stop(token: contextvars.Token[Tally | None]) -> None:
    _TALLY.reset(token)


def note(seconds: float) -> None:
    tally = _TALLY.get()
    if tally is not None:
        tally.requests += 1
        tally.seconds += seconds
