"""The MaxContact "Agent Remote Control" client: one method per vendor endpoint.

This is the only module that talks HTTP (see CONVENTIONS.md 3). Rules it keeps, and why:

- Every vendor method is a GET, including the ones that change a live call. An *action* is never
  sent twice once it may have reached the server (a retried dial is a second call to a
  customer). Only reads (getcalls and the directory lists) are retried, and only after a
  connection failure, a timeout or a 5xx. The one resend an action gets is after MaxContact
  refused the token: the request was turned away without effect, so it is sent again once
  with a fresh token.
- A `requests.Session` is lent to one request at a time from a process-wide pool, so kept-alive
  connections serve every request of the process (urllib3 drops one the server closed before
  reusing it). Its cookie jar accepts nothing: the token goes out as an explicit
  `Cookie: TokenKey=...` header per request, so one agent's cookie can never ride along in
  another agent's request. `trust_env` is off, so a `.netrc` entry can never replace our
  `Authorization` header.
- JSON is asked for with `Content-Type: application/json` (the vendor's switch, even on a GET);
  whatever comes back, XML or JSON, is parsed by `telephony.wire`.
- Every request has a connect and a read timeout and an overall deadline, and a response larger
  than `max_response_bytes` is refused.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.cookiejar import CookiePolicy
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import requests
import urllib3.exceptions
from django.views.decorators.debug import sensitive_variables
from requests.adapters import HTTPAdapter

from . import timing, wire
from .entities import (
    AcdQueue,
    ActionResult,
    Call,
    Campaign,
    DialResult,
    LeadPhone,
    ResultCode,
    Token,
    User,
)
from .errors import (
    AuthenticationFailed,
    InvalidRequest,
    MalformedResponse,
    MaxContactError,
    Rejected,
    Unreachable,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

USER_AGENT = "maxcontact-agent-panel/0.1"
RETRYABLE_STATUSES = frozenset({502, 503, 504})
#: Renew a token this long before its known expiry rather than let a request fail on it.
TOKEN_EXPIRY_MARGIN = timedelta(seconds=30)


@dataclass(frozen=True)
class ClientConfig:
    """How to reach one tenant, and the tenant's answers to the vendor's unknowns."""

    base_url: str  # https://<customer>.maxcontact.com/webservices
    connect_timeout: float = 3.05
    read_timeout: float = 8.0
    max_response_bytes: int = 4 * 1024 * 1024
    #: Send `Content-Type: application/json` (the vendor's switch to JSON). XML is parsed
    #: whatever this says, so a tenant that ignores the switch still works.
    ask_for_json: bool = True
    read_attempts: int = 3  # reads only; actions get exactly one
    retry_backoff: float = 0.25  # seconds, doubled per retry of a read
    #: `ResponseCode`s that mean "log in again" when they come with Success=false.
    auth_failure_codes: frozenset[int] = frozenset({401})
    #: Known token lifetime (the vendor's is unknown); None: reuse until refused.
    token_lifetime: timedelta | None = None
    wire: wire.WireOptions = field(default_factory=wire.WireOptions)


class TokenStore(Protocol):
    """Where a client keeps its token between requests and processes (kept encrypted)."""

    def load(self) -> Token | None: ...

    def save(self, token: Token | None) -> None: ...

    def discard(self, key: str) -> None:
        """Forget the token `key` (MaxContact refused it), unless a newer one replaced it."""


class MemoryTokenStore:
    def __init__(self, token: Token | None = None) -> None:
        self.token = token

    def load(self) -> Token | None:
        return self.token

    def save(self, token: Token | None) -> None:
        self.token = token

    def discard(self, key: str) -> None:
        if self.token is not None and self.token.key == key:
            self.token = None


@dataclass(frozen=True)
class Credentials:
    """A MaxContact login and password, or a token an admin pasted. Never in a repr."""

    login: str = ""
    password: str = field(default="", repr=False)
    static_token: str = field(default="", repr=False)

    @property
    def can_log_in(self) -> bool:
        return bool(self.login and self.password)


class _RefuseAllCookies(CookiePolicy):
    """A cookie policy that neither stores nor sends any cookie."""

    netscape = True
    rfc2965 = False
    hide_cookie2 = True

    def set_ok(self, cookie: Any, request: Any) -> bool:
        return False

    def return_ok(self, cookie: Any, request: Any) -> bool:
        return False

    def domain_return_ok(self, domain: str, request: Any) -> bool:
        return False

    def path_return_ok(self, path: str, request: Any) -> bool:
        return False


def _new_session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.cookies.set_policy(_RefuseAllCookies())
    # urllib3 must not retry on its own: whether a request may be resent is decided here.
    adapter = HTTPAdapter(max_retries=0, pool_connections=4, pool_maxsize=4)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


# Prepares requests (its default headers merged in, as Session.get would); sends nothing.
_PREPARER = _new_session()
_idle_sessions: list[requests.Session] = []
_idle_lock = threading.Lock()
MAX_IDLE_SESSIONS = 32


@contextlib.contextmanager
def _session() -> Iterator[requests.Session]:
    """A session (and its kept-alive connections) lent to one request at a time.

    Shared by the whole process, not kept per thread: under ASGI each request runs in a
    thread of its own, so a per-thread session opened a new TCP (and TLS) connection to
    MaxContact on every click."""
    with _idle_lock:
        session = _idle_sessions.pop() if _idle_sessions else None
    if session is None:
        session = _new_session()
    try:
        yield session
    finally:
        with _idle_lock:
            if len(_idle_sessions) < MAX_IDLE_SESSIONS:
                _idle_sessions.append(session)
                session = None
        if session is not None:
            session.close()


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes


class MaxContactClient:
    """Acts for one MaxContact remote user (the `UserID` in every telephony URL)."""

    def __init__(
        self,
        config: ClientConfig,
        *,
        user_id: int,
        credentials: Credentials,
        token_store: TokenStore | None = None,
    ) -> None:
        self.config = config
        self.user_id = int(user_id)
        self.credentials = credentials
        self.token_store: TokenStore = token_store or MemoryTokenStore()
        self._base = config.base_url.rstrip("/")
        self._last_prepared: tuple[tuple[str, str], requests.PreparedRequest] | None = None

    # --- Token service --------------------------------------------------------------------

    @sensitive_variables()
    def login(self) -> Token:
        """Token service: GET services/apitoken/login/{login}, password in Authorization."""
        if not self.credentials.can_log_in:
            raise AuthenticationFailed("No MaxContact login and password are stored for this agent")
        url = f"{self._base}/services/apitoken/login/{_segment(self.credentials.login)}"
        # The vendor wants the Base64 of the password alone: no "Basic ", no "user:".
        encoded = base64.b64encode(self.credentials.password.encode("utf-8")).decode("ascii")
        headers = {"Authorization": encoded}
        obtained_at = datetime.now(UTC)
        reply = self._with_read_retries(lambda: self._send("login", url, {}, headers))
        if reply.status in (401, 403):
            raise AuthenticationFailed(
                f"MaxContact refused the login for {self.credentials.login!r}: "
                f"{_detail_of(reply.body) or f'HTTP {reply.status}'}"
            )
        if reply.status != 200:
            raise _status_error("login", reply.status, may_have_reached_server=True)
        token = wire.token(reply.body, obtained_at=obtained_at, options=self.config.wire)
        if token.expires_at is None and self.config.token_lifetime is not None:
            token = Token(token.key, obtained_at, obtained_at + self.config.token_lifetime)
        self.token_store.save(token)
        logger.info("maxcontact login user=%s ok", self.user_id)
        return token

    @sensitive_variables()
    def _current_token(self) -> str:
        if self.credentials.static_token and not self.credentials.can_log_in:
            if not wire.VALID_TOKEN.fullmatch(self.credentials.static_token):
                raise AuthenticationFailed(
                    "The token stored for this agent has characters a cookie cannot carry; "
                    "an administrator must paste it again"
                )
            return self.credentials.static_token
        token = self.token_store.load()
        if token is None or (
            token.expires_at is not None
            and token.expires_at - TOKEN_EXPIRY_MARGIN <= datetime.now(UTC)
        ):
            token = self.login()
        return token.key

    # --- Reads ----------------------------------------------------------------------------

    def get_calls(self) -> list[Call]:
        """Get Calls: GET telephony/getcalls/user/{UserID}."""
        envelope = self._read("getcalls", ["getcalls", "user", self.user_id])
        return wire.calls(envelope.data, self.config.wire)

    def campaigns(self) -> list[Campaign]:
        """Campaigns: GET telephony/campaigns/user/{UserID}."""
        return wire.campaigns(self._read("campaigns", ["campaigns", "user", self.user_id]).data)

    def users(self) -> list[User]:
        """Users: GET telephony/users/user/{UserID} (the text's first URL is a copy error)."""
        return wire.users(self._read("users", ["users", "user", self.user_id]).data)

    def result_codes(self) -> list[ResultCode]:
        """Result Codes: GET telephony/resultcodes/user/{UserID}."""
        envelope = self._read("resultcodes", ["resultcodes", "user", self.user_id])
        return wire.result_codes(envelope.data)

    def acd_queues(self) -> list[AcdQueue]:
        """ACD Queues: GET telephony/acdqueues/user/{UserID}."""
        return wire.acd_queues(self._read("acdqueues", ["acdqueues", "user", self.user_id]).data)

    def lead_phones(self, *, lead_id: int) -> list[LeadPhone]:
        """Lead Phones: GET telephony/leadphones/user/{UserID}/lead/{LeadID}."""
        envelope = self._read(
            "leadphones", ["leadphones", "user", self.user_id, "lead", int(lead_id)]
        )
        return wire.lead_phones(envelope.data, self.config.wire)

    # --- Actions (never retried once they may have reached MaxContact) ----------------------

    def go_ready(self) -> ActionResult:
        """Go Ready: GET telephony/goready/user/{UserID}."""
        return self._action("goready", ["goready", "user", self.user_id])

    def dial(self, *, phone: str, lead_id: int | None = None) -> DialResult:
        """Dial: GET telephony/dial/user/{UserID}/phone/{PhoneNum}?leadid={LeadID}."""
        params = {"leadid": str(int(lead_id))} if lead_id is not None else {}
        segments = ["dial", "user", self.user_id, "phone", _phone(phone)]
        envelope = self._act("dial", segments, params)
        try:
            record = wire.one_record(envelope.data, marker="CallId")
            new_call = wire.call(record, self.config.wire) if record is not None else None
        except MalformedResponse:
            # Success=true is the truth: the dial happened. An unreadable Data must not make
            # it look doubtful (and invite a second dial); the next getcalls shows the call.
            logger.warning("maxcontact dial user=%s: Data unreadable after success", self.user_id)
            new_call = None
        return DialResult(
            response_code=envelope.response_code,
            response_detail=envelope.response_detail,
            call=new_call,
        )

    def hangup(self, *, call_id: int) -> ActionResult:
        """Hangup: GET telephony/hangup/user/{UserID}/call/{CallID}."""
        return self._call_action("hangup", call_id)

    def dispose(self, *, call_id: int, result_code: str) -> ActionResult:
        """Dispose: GET telephony/dispose/user/{UserID}/call/{CallID}?resultcode={ResultCode}."""
        return self._call_action("dispose", call_id, {"resultcode": result_code})

    def hold(self, *, call_id: int) -> ActionResult:
        """Hold: GET telephony/hold/user/{UserID}/call/{CallID}."""
        return self._call_action("hold", call_id)

    def retrieve(self, *, call_id: int) -> ActionResult:
        """Retrieve: GET telephony/retrieve/user/{UserID}/call/{CallID}."""
        return self._call_action("retrieve", call_id)

    def stop_record(self, *, call_id: int) -> ActionResult:
        """Stop Recording: GET telephony/stoprecord/user/{UserID}/call/{CallID}."""
        return self._call_action("stoprecord", call_id)

    def start_record(self, *, call_id: int) -> ActionResult:
        """Start Recording: GET telephony/startrecord/user/{UserID}/call/{CallID}."""
        return self._call_action("startrecord", call_id)

    def change_lead(self, *, call_id: int, lead_phone_id: int) -> ActionResult:
        """Change Lead Phone: GET telephony/changelead/user/{U}/call/{C}/leadphone/{LeadPhoneID}."""
        return self._action(
            "changelead",
            [
                "changelead",
                "user",
                self.user_id,
                "call",
                int(call_id),
                "leadphone",
                int(lead_phone_id),
            ],
        )

    def create_new_lead(self, *, call_id: int, phone: str) -> ActionResult:
        """Create New Lead: GET telephony/createnewlead/user/{U}/call/{C}/phone/{PhoneNum}."""
        return self._action(
            "createnewlead",
            ["createnewlead", "user", self.user_id, "call", int(call_id), "phone", _phone(phone)],
        )

    def connect_calls(
        self,
        *,
        call1_id: int,
        call2_id: int,
        result_code1: str,
        result_code2: str,
        notes1: str | None = None,
        notes2: str | None = None,
        num_sales1: int | None = None,
        num_sales2: int | None = None,
    ) -> ActionResult:
        """Connect Calls: GET telephony/connectcalls/user/{UserID}?call1=&call2=&resultcode1=...

        The vendor page shows `¬es1`/`¬es2`: its mangling of `&notes1`/`&notes2`.
        """
        params = {
            "call1": str(int(call1_id)),
            "call2": str(int(call2_id)),
            "resultcode1": result_code1,
            "resultcode2": result_code2,
        }
        optional = {
            "notes1": notes1,
            "notes2": notes2,
            "numsales1": num_sales1,
            "numsales2": num_sales2,
        }
        params.update({name: str(value) for name, value in optional.items() if value is not None})
        return self._action("connectcalls", ["connectcalls", "user", self.user_id], params)

    # --- Plumbing -------------------------------------------------------------------------

    def _call_action(
        self, method: str, call_id: int, params: dict[str, str] | None = None
    ) -> ActionResult:
        return self._action(method, [method, "user", self.user_id, "call", int(call_id)], params)

    def _action(
        self, method: str, segments: list[Any], params: dict[str, str] | None = None
    ) -> ActionResult:
        envelope = self._act(method, segments, params or {})
        return ActionResult(envelope.response_code, envelope.response_detail)

    def _act(self, method: str, segments: list[Any], params: dict[str, str]) -> wire.Envelope:
        return self._telephony(method, segments, params, retry_reads=False)

    def _read(self, method: str, segments: list[Any]) -> wire.Envelope:
        return self._telephony(method, segments, {}, retry_reads=True)

    @sensitive_variables()
    def _telephony(
        self, method: str, segments: list[Any], params: dict[str, str], *, retry_reads: bool
    ) -> wire.Envelope:
        url = f"{self._base}/services/telephony/" + "/".join(_segment(s) for s in segments)
        logged_in_again = False
        while True:
            token = self._current_token()
            send = functools.partial(
                self._send, method, url, params, {"Cookie": f"TokenKey={token}"}
            )
            reply = self._with_read_retries(send) if retry_reads else send()
            if reply.status == 200:
                envelope = wire.parse_envelope(reply.body)
                if envelope.success:
                    return envelope
                if envelope.response_code not in self.config.auth_failure_codes:
                    raise Rejected(envelope.response_code, envelope.response_detail)
                did_nothing = True  # Success=false: MaxContact says it did not act
            elif reply.status == 401:
                did_nothing = True  # refused before anything was done
            elif reply.status == 403:
                did_nothing = _says_not_done(reply.body)
            else:
                raise _status_error(method, reply.status, may_have_reached_server=True)

            # MaxContact refused the token. Forget it (unless another process already
            # replaced it) and log in once; an action is sent again only when MaxContact said
            # it did nothing with it.
            self.token_store.discard(token)
            if logged_in_again or not self.credentials.can_log_in:
                raise AuthenticationFailed(
                    "MaxContact refused this agent's token"
                    + (" even after logging in again" if logged_in_again else "")
                )
            logged_in_again = True
            logger.info(
                "maxcontact %s user=%s token refused; logging in again", method, self.user_id
            )
            if not (did_nothing or retry_reads):
                self._current_token()
                raise AuthenticationFailed(
                    f"MaxContact refused the token for {method} (HTTP 403) without saying "
                    "whether it acted; a new token is ready, but the action was not sent again: "
                    "check your calls before trying again"
                )

    def _with_read_retries(self, send: Callable[[], _Reply]) -> _Reply:
        delay = self.config.retry_backoff
        for attempt in range(1, self.config.read_attempts + 1):
            try:
                reply = send()
            except Unreachable:
                if attempt == self.config.read_attempts:
                    raise
            else:
                if reply.status not in RETRYABLE_STATUSES or attempt == self.config.read_attempts:
                    return reply
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    @sensitive_variables()
    def _prepared(
        self, url: str, params: dict[str, str], headers: dict[str, str]
    ) -> requests.PreparedRequest:
        """The request to send. A read without parameters is the same request every time (a
        poll: the same URL and token every second), so it is prepared once and sent again as
        it is: URL parsing and header merging were a tenth of a poll's CPU, and so was
        `PreparedRequest.copy()`. Sending does not change a prepared request (no redirects are
        followed, no auth hook is set), and one client's requests are sent one at a time (the
        poller holds the agent's lock; a view makes its own client)."""
        key = (url, headers.get("Cookie", "")) if not params else None
        if key is not None and self._last_prepared is not None and self._last_prepared[0] == key:
            return self._last_prepared[1]
        all_headers = {
            "Accept": "application/json, application/xml;q=0.9",
            "Cache-Control": "no-cache",
            "User-Agent": USER_AGENT,
            **headers,
        }
        if self.config.ask_for_json:
            all_headers["Content-Type"] = "application/json"  # the vendor's switch to JSON
        prepared = _PREPARER.prepare_request(
            requests.Request("GET", url, params=params, headers=all_headers)
        )
        if key is not None:
            self._last_prepared = (key, prepared)
        return prepared

    @sensitive_variables()
    def _send(
        self, method: str, url: str, params: dict[str, str], headers: dict[str, str]
    ) -> _Reply:
        """One HTTP GET, with its outcome mapped onto our error tree."""
        config = self.config
        started = time.monotonic()
        deadline = started + config.connect_timeout + 2 * config.read_timeout
        status: int | str = "-"
        try:
            with (
                _session() as session,
                session.send(
                    self._prepared(url, params, headers),
                    timeout=(config.connect_timeout, config.read_timeout),
                    stream=True,
                    allow_redirects=False,
                ) as response,
            ):
                status = response.status_code
                body = _read_capped(response, config.max_response_bytes, deadline)
            return _Reply(response.status_code, body)
        except requests.ConnectTimeout:
            status = "connect-timeout"
            raise Unreachable(
                f"MaxContact did not accept a connection within {config.connect_timeout:g} s",
                may_have_reached_server=False,
            ) from None
        except requests.ReadTimeout:
            status = "timeout"
            raise Unreachable(
                f"MaxContact did not answer within {config.read_timeout:g} s",
                may_have_reached_server=True,
            ) from None
        except requests.ConnectionError as exc:
            status = "connection-error"
            refused = _never_connected(exc)
            raise Unreachable(
                "Could not connect to MaxContact"
                if refused
                else "The connection to MaxContact broke before it answered",
                may_have_reached_server=not refused,
            ) from None
        except requests.RequestException:
            status = "error"
            raise Unreachable(
                "The request to MaxContact failed", may_have_reached_server=True
            ) from None
        finally:
            # No URL here: its path holds customers' phone numbers. Polling makes the happy
            # path frequent, so it logs at DEBUG; anything else is worth a WARNING.
            # Actions are rare and matter: INFO. Polls (getcalls) are frequent: DEBUG when fine.
            quiet = logging.DEBUG if method == "getcalls" else logging.INFO
            timing.note(time.monotonic() - started)
            logger.log(
                quiet if status == 200 else logging.WARNING,
                "maxcontact %s user=%s status=%s ms=%d",
                method,
                self.user_id,
                status,
                (time.monotonic() - started) * 1000,
            )


_PHONE = re.compile(r"\+?[0-9][0-9 ().-]{0,30}", re.ASCII)


def _phone(phone: str) -> str:
    """A phone number for a path segment; anything else is refused before it is sent."""
    phone = phone.strip()
    if not _PHONE.fullmatch(phone):
        raise InvalidRequest(f"{phone[:40]!r} is not a phone number")
    return phone


def _says_not_done(body: bytes) -> bool:
    """True when an error body is a CallActionResponse with Success=false."""
    try:
        return wire.parse_envelope(body).success is False
    except MalformedResponse:
        return False


def _segment(value: object) -> str:
    """One path segment, percent-encoded whole (a '+' or '/' in a phone stays in its segment)."""
    return quote(str(value), safe="")


def _read_capped(response: requests.Response, limit: int, deadline: float) -> bytes:
    """The body, refused past `limit` bytes or past `deadline` (a server that trickles).

    `read1` returns whatever has arrived, so the deadline is checked at least once per read
    timeout however slowly the bytes come.
    """
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise MalformedResponse(f"MaxContact's answer is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            if time.monotonic() > deadline:
                raise requests.ReadTimeout("overall deadline passed")
            chunk = response.raw.read1(64 * 1024, decode_content=True)
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise MalformedResponse(f"MaxContact's answer is larger than {limit} bytes")
            chunks.append(chunk)
    except urllib3.exceptions.ReadTimeoutError:
        raise requests.ReadTimeout("read timed out") from None
    except urllib3.exceptions.DecodeError:
        raise MalformedResponse("MaxContact's answer could not be decompressed") from None
    except (urllib3.exceptions.HTTPError, OSError):
        raise requests.ConnectionError("answer cut off") from None
    return b"".join(chunks)


def _never_connected(exc: requests.ConnectionError) -> bool:
    """True when the TCP connection was never made, so the request cannot have been seen."""
    text = repr(exc)
    return any(
        marker in text
        for marker in (
            "NewConnectionError",
            "Connection refused",
            "Name or service not known",
            "NameResolutionError",
            "Failed to resolve",
        )
    )


def _status_error(method: str, status: int, *, may_have_reached_server: bool) -> MaxContactError:
    if status >= 500:
        return Unreachable(
            f"MaxContact had a server error (HTTP {status})",
            may_have_reached_server=may_have_reached_server,
            status=status,
        )
    if status == 404:
        return MaxContactError(
            f"MaxContact does not know the {method} method (HTTP 404): check the tenant's base URL"
        )
    return MaxContactError(f"MaxContact answered HTTP {status} to {method}")


def _detail_of(body: bytes) -> str:
    """The vendor's ResponseDetail from an error body, when it has one."""
    try:
        document = wire.parse_document(body)
    except MalformedResponse:
        return ""
    if isinstance(document, wire.Record):
        return wire.to_str(document.get("ResponseDetail"))
    return ""
