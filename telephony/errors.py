"""What can go wrong when talking to MaxContact, as a small tree of exceptions.

Every error answers two questions (CONVENTIONS.md 5): may the caller retry it, and what should
an agent be told. The mapping from HTTP status codes and bodies to these classes is written once,
in `telephony.client`. No message ever contains a password or a token.
"""

from __future__ import annotations


class MaxContactError(Exception):
    """Base class: something stopped a MaxContact request from giving a usable answer."""

    #: True when the request certainly did not change anything on the server, so sending it
    #: again cannot, for example, dial twice.
    safe_to_retry: bool = False

    def __init__(self, message: str, *, safe_to_retry: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if safe_to_retry is not None:
            self.safe_to_retry = safe_to_retry

    @property
    def agent_message(self) -> str:
        """The sentence to show an agent: what happened and what to do next."""
        return self.message


class Unreachable(MaxContactError):
    """MaxContact did not answer in time, refused the connection, or answered with a 5xx."""

    def __init__(
        self, message: str, *, may_have_reached_server: bool, status: int | None = None
    ) -> None:
        super().__init__(message, safe_to_retry=not may_have_reached_server)
        self.may_have_reached_server = may_have_reached_server
        self.status = status

    @property
    def agent_message(self) -> str:
        if self.may_have_reached_server:
            return (
                f"{self.message}. MaxContact may or may not have carried it out, and it was "
                "not sent twice: check your calls before trying again."
            )
        return f"{self.message}. Nothing reached MaxContact; try again in a moment."


class Rejected(MaxContactError):
    """MaxContact answered `Success=false`: it understood the request and refused it."""

    safe_to_retry = True  # the server did not act on it

    def __init__(self, response_code: int | None, response_detail: str) -> None:
        detail = response_detail.strip() or "MaxContact refused the request without a reason"
        super().__init__(detail)
        self.response_code = response_code
        self.response_detail = response_detail


class AuthenticationFailed(MaxContactError):
    """The login was refused, or a token was refused even after logging in again."""

    safe_to_retry = True

    @property
    def agent_message(self) -> str:
        return f"{self.message}. Ask an administrator to check your MaxContact login."


class MalformedResponse(MaxContactError):
    """MaxContact answered something we cannot read: not XML/JSON, too big, or the wrong shape."""

    @property
    def agent_message(self) -> str:
        return (
            f"{self.message}. MaxContact may or may not have carried out the request; "
            "check your calls before trying again."
        )


class InvalidRequest(MaxContactError):
    """We refused to send a request whose arguments cannot be right (nothing was sent)."""

    safe_to_retry = True
