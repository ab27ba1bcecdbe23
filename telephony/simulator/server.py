"""HTTP face of the simulator: the vendor's paths, the token service, auth, faults, /_sim/ control.

One `App` holds the world, the configuration, the tokens, the pending faults and the request log
behind one lock. `Handler` turns each HTTP request into an `App` call and writes what it returns,
including the deliberately broken answers a fault asks for.
"""

from __future__ import annotations

import base64
import binascii
import collections
import contextlib
import dataclasses
import json
import re
import secrets
import socket
import socketserver
import sys
import threading
import time
import traceback
import urllib.parse
from collections.abc import Callable
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

from . import formats
from .formats import Arr, Obj, Value, WireStyle
from .world import (
    AgentState,
    DemoSettings,
    Rejected,
    ResponseCode,
    World,
)

DEFAULT_TOKEN_LIFETIME = 8 * 3600.0
LOG_LIMIT = 10_000  # requests kept for GET /_sim/requests, newest win
MAX_BODY = 1_000_000
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)

# Telephony methods: the named segments that follow /user/{UserID} (vendor text + errata).
ROUTES: dict[str, tuple[str, ...]] = {
    "getcalls": (),
    "goready": (),
    "campaigns": (),
    "users": (),
    "resultcodes": (),
    "acdqueues": (),
    "connectcalls": (),
    "dial": ("phone",),
    "hangup": ("call",),
    "dispose": ("call",),
    "hold": ("call",),
    "retrieve": ("call",),
    "stoprecord": ("call",),
    "startrecord": ("call",),
    "leadphones": ("lead",),
    "changelead": ("call", "leadphone"),
    "createnewlead": ("call", "phone"),
}

CONFIG_CHOICES: dict[str, tuple[str, ...]] = {
    "json_dates": ("msajax", "iso"),
    "key_case": ("pascal", "camel"),
    "token_reply": ("flat", "wrapped"),
    "auth_failure": ("http401", "success_false"),
    "token_scope": ("tenant", "user"),
}
CONFIG_BOOLS = ("call_lead_id", "json_type_hints")

FAULT_KINDS = (
    "latency",
    "status",
    "drop",
    "truncate",
    "garbage",
    "xml_bomb",
    "expired_token",
    "reject",
)
# Whether the action takes effect before the fault hits the response, unless the fault says.
FAULT_APPLIES = {
    "latency": True,
    "status": False,
    "drop": True,
    "truncate": True,
    "garbage": True,
    "xml_bomb": True,
    "expired_token": False,
    "reject": False,
}
REJECT_CODE = 99  # ResponseCode of an injected rejection (docs/simulator.md)


@dataclasses.dataclass
class Config:
    json_dates: str = "msajax"
    key_case: str = "pascal"
    json_type_hints: bool = True
    call_lead_id: bool = True
    lead_phone_id_field: str | None = "LeadPhoneID"
    token_reply: str = "flat"  # noqa: S105 (a reply shape, not a secret)
    auth_failure: str = "http401"
    token_scope: str = "tenant"  # noqa: S105 (a scope name, not a secret)
    dial_ring_seconds: float = 0.0
    latency_ms: float = 0.0  # every vendor request waits this long: a hosted tenant's round trip

    def style(self) -> WireStyle:
        return WireStyle(
            json_dates=self.json_dates,
            key_case=self.key_case,
            json_type_hints=self.json_type_hints,
            call_lead_id=self.call_lead_id,
            lead_phone_id_field=self.lead_phone_id_field,
        )


@dataclasses.dataclass
class Token:
    login: str
    user_id: int
    expires_at: float


@dataclasses.dataclass
class Fault:
    kind: str
    remaining: int
    path_contains: str | None
    delay: float
    status: int
    apply: bool
    detail: str = ""


@dataclasses.dataclass(frozen=True)
class Request:
    method: str
    raw_path: str
    raw_query: str
    headers: Message
    body: bytes
    client_host: str

    @property
    def wants_json(self) -> bool:
        content_type = self.headers.get("Content-Type", "")
        return content_type.split(";")[0].strip().lower() == "application/json"


@dataclasses.dataclass(frozen=True)
class Response:
    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What the handler writes: a response (maybe cut in half) or nothing at all."""

    response: Response | None
    truncate: bool = False


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# ---------------------------------------------------------------------------------------------
# Bodies that are not a CallActionResponse

_WCF_STYLE = (
    "BODY { color: #000000; background-color: white; font-family: Verdana; margin-left: 0px;"
    " margin-top: 0px; } #content { margin-left: 30px; font-size: .70em; padding-bottom: 2em; }"
    " .heading1 { background-color: #003366; border-bottom: #336699 6px solid; color: #ffffff;"
    " font-family: Tahoma; font-size: 26px; font-weight: normal;margin: 0em 0em 10px -20px;"
    " padding-bottom: 8px; padding-left: 30px;padding-top: 16px;}"
)


def wcf_page(message: str) -> bytes:
    """The HTML page WCF's web HTTP endpoint answers with when no operation matches."""
    return (
        '<?xml version="1.0" encoding="utf-8"?>\r\n'
        '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" '
        '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">\r\n'
        '<html xmlns="http://www.w3.org/1999/xhtml">\r\n'
        f"  <head>\r\n    <title>Service</title>\r\n    <style>{_WCF_STYLE}</style>\r\n"
        '  </head>\r\n  <body>\r\n    <div id="content">\r\n'
        '      <p class="heading1">Service</p>\r\n'
        f'      <p xmlns="">{message}</p>\r\n'
        "    </div>\r\n  </body>\r\n</html>"
    ).encode()


def status_page(status: int) -> bytes:
    """An IIS / HTTP.sys / ASP.NET error page for an injected status."""
    if status == 500:
        return (
            b"<!DOCTYPE html>\r\n<html>\r\n<head>\r\n<title>Runtime Error</title>\r\n</head>\r\n"
            b'<body bgcolor="white">\r\n'
            b"<span><H1>Server Error in '/WebServices' Application.<hr width=100% size=1 "
            b"color=silver></H1>\r\n<h2> <i>Runtime Error</i> </h2></span>\r\n"
            b"<b> Description: </b>An application error occurred on the server.\r\n"
            b"</body>\r\n</html>\r\n"
        )
    reason = {503: "Service Unavailable", 502: "Bad Gateway", 504: "Gateway Timeout"}.get(
        status, BaseHTTPRequestHandler.responses.get(status, ("Error", ""))[0]
    )
    detail = "The service is unavailable." if status == 503 else reason + "."
    return (
        '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN""http://www.w3.org/TR/html4/strict.dtd">'
        f"\r\n<HTML><HEAD><TITLE>{reason}</TITLE>\r\n"
        '<META HTTP-EQUIV="Content-Type" Content="text/html; charset=us-ascii"></HEAD>\r\n'
        f"<BODY><h2>{reason}</h2>\r\n<hr><p>HTTP Error {status}. {detail}</p>\r\n</BODY></HTML>\r\n"
    ).encode()


GARBAGE = b"\x1f\x8b\x08\x00 Object reference not set to an instance of an object.\r\n\xff\xfe\x00"

XML_BOMB = (
    '<?xml version="1.0"?>\n<!DOCTYPE CallActionResponse [\n <!ENTITY lol "lol">\n'
    + "".join(
        f' <!ENTITY lol{n} "{("&lol" + (str(n - 1) if n > 1 else "") + ";") * 10}">\n'
        for n in range(1, 10)
    )
    + f']>\n<CallActionResponse xmlns="{formats.TELEPHONY_NS}">'
    "<ResponseDetail>&lol9;</ResponseDetail></CallActionResponse>"
).encode()

HTML = "text/html; charset=UTF-8"
JSON = "application/json; charset=utf-8"


def _json_response(status: int, payload: Any) -> Response:
    return Response(status, JSON, json.dumps(payload).encode())


def _parse_int(raw: str, label: str, bounds: tuple[int, int]) -> int:
    if re.fullmatch(r"[+-]?[0-9]{1,19}", raw.strip()):
        value = int(raw)
        if bounds[0] <= value <= bounds[1]:
            return value
    raise Rejected(ResponseCode.INVALID_PARAMETER, f"Invalid {label} '{raw}'")


def _decode_password(header: str | None) -> str | None:
    """The token service wants the Base64 of the password alone: no "Basic ", no "user:"."""
    if not header:
        return None
    try:
        return base64.b64decode(header.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


def _cookie_token(headers: Message) -> str | None:
    for header in headers.get_all("Cookie") or []:
        for part in header.split(";"):
            name, _, value = part.strip().partition("=")
            if name.strip().lower() == "tokenkey" and value.strip():
                return value.strip().strip('"')
    return None


def _is_loopback(host: str) -> bool:
    return host.startswith("127.") or host in ("::1", "localhost") or host.startswith("::ffff:127.")


# ---------------------------------------------------------------------------------------------
# The application


class App:
    def __init__(
        self,
        *,
        demo: DemoSettings | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        crowd: int = 0,
    ) -> None:
        self.lock = threading.RLock()
        self.demo = demo
        self.crowd = crowd
        self.clock = clock
        self.sleep = sleep
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.world = World(demo=self.demo, clock=self.clock, crowd=self.crowd)
            ring = self.demo.ring_seconds if self.demo else 0.0
            self.config = Config(dial_ring_seconds=ring)
            self.world.dial_ring_seconds = ring
            self.tokens: dict[str, Token] = {}
            self.token_lifetime = DEFAULT_TOKEN_LIFETIME
            self.faults: list[Fault] = []
            # Bounded: a long demo run must not grow without limit.
            self.log: collections.deque[dict[str, Any]] = collections.deque(maxlen=LOG_LIMIT)
            self.seq = 0
            # Vendor requests by method and user id, for counting polls (never capped).
            self.counts: collections.Counter[tuple[str, str]] = collections.Counter()

    def tick(self) -> None:
        with self.lock:
            self.world.advance()

    # -- vendor API ----------------------------------------------------------------------------

    def handle_api(self, req: Request) -> Outcome:
        """Log the request, pick a pending fault for it, and answer (or fail) accordingly."""
        with self.lock:
            fault = self._take_fault(req.raw_path)
            self._log_request(req, fault)
            self.counts[_method_and_user(req.raw_path)] += 1
            latency = self.config.latency_ms / 1000
        if latency:
            self.sleep(latency)
        with self.lock:
            if fault is not None and fault.kind == "expired_token":
                presented = _cookie_token(req.headers)
                if presented in self.tokens:
                    self.tokens[presented].expires_at = self.clock() - 1
        if fault is None or fault.kind == "expired_token":
            return Outcome(self.respond(req))
        if fault.kind == "latency":
            if fault.apply:
                response = self.respond(req)
                self.sleep(fault.delay)
            else:
                self.sleep(fault.delay)
                response = self.respond(req)
            return Outcome(response)
        applied = self.respond(req) if fault.apply else None
        if fault.delay:
            self.sleep(fault.delay)
        if fault.kind == "status":
            return Outcome(Response(fault.status, HTML, status_page(fault.status)))
        if fault.kind == "drop":
            return Outcome(None)
        if fault.kind == "truncate":
            if applied is None:
                content_type, body = self._document(
                    formats.call_action_response(True, None, 0, ""), req.wants_json
                )
                applied = Response(200, content_type, body)
            return Outcome(applied, truncate=True)
        if fault.kind == "garbage":
            content_type = JSON if req.wants_json else "application/xml; charset=utf-8"
            return Outcome(Response(200, content_type, GARBAGE))
        if fault.kind == "reject":
            content_type, body = self._document(
                formats.call_action_response(False, None, REJECT_CODE, fault.detail),
                req.wants_json,
            )
            return Outcome(Response(200, content_type, body))
        return Outcome(Response(200, "application/xml; charset=utf-8", XML_BOMB))

    def respond(self, req: Request) -> Response:
        """The answer a healthy tenant gives (the action takes effect here)."""
        segments = [urllib.parse.unquote(s) for s in req.raw_path.split("/")[1:]]
        if segments and segments[-1] == "":
            segments.pop()
        lowered = [s.lower() for s in segments]
        params: dict[str, str] = {}
        for name, values in urllib.parse.parse_qs(req.raw_query, keep_blank_values=True).items():
            params.setdefault(name.lower(), values[0])
        if lowered[:4] == ["webservices", "services", "apitoken", "login"] and len(lowered) == 5:
            if req.method != "GET":
                return self._not_allowed()
            return self._login(req, segments[4])
        if (
            lowered[:3] == ["webservices", "services", "telephony"]
            and len(lowered) >= 6
            and lowered[4] == "user"
            and lowered[3] in ROUTES
        ):
            names = ROUTES[lowered[3]]
            rest = lowered[6:]
            if len(rest) == 2 * len(names) and tuple(rest[0::2]) == names:
                if req.method != "GET":
                    return self._not_allowed()
                variables = dict(zip(names, segments[7::2], strict=True))
                return self._telephony(req, lowered[3], segments[5], variables, params)
        return Response(404, HTML, wcf_page("Endpoint not found."))

    def _not_allowed(self) -> Response:
        return Response(405, HTML, wcf_page("Method not allowed."), (("Allow", "GET"),))

    def _document(self, fields: dict[str, Value], as_json: bool, **kw: str) -> tuple[str, bytes]:
        return formats.render(fields, as_json=as_json, style=self.config.style(), **kw)

    def _login(self, req: Request, login: str) -> Response:
        with self.lock:
            wanted = login.lower()
            agent = next((a for a in self.world.seed_agents if a.login.lower() == wanted), None)
            password = _decode_password(req.headers.get("Authorization"))
            if (
                agent is None
                or password is None
                or not secrets.compare_digest(password.encode(), agent.password.encode())
            ):
                content_type, body = self._document(
                    formats.call_action_response(
                        False, None, ResponseCode.TOKEN_INVALID, "Invalid username or password"
                    ),
                    req.wants_json,
                )
                return Response(401, content_type, body)
            token = secrets.token_urlsafe(32)
            self.tokens[token] = Token(
                agent.login, agent.user_id, self.clock() + self.token_lifetime
            )
            if self.config.token_reply == "wrapped":  # noqa: S105 (a reply shape)
                data = Obj("ApiTokenResponse", {"TokenKey": token})
                content_type, body = self._document(
                    formats.call_action_response(True, data, ResponseCode.OK, ""), req.wants_json
                )
            else:
                content_type, body = self._document(
                    {"TokenKey": token},
                    req.wants_json,
                    root="ApiTokenResponse",
                    namespace=formats.TOKEN_NS,
                )
            return Response(200, content_type, body)

    def _telephony(
        self,
        req: Request,
        method: str,
        raw_user: str,
        variables: dict[str, str],
        params: dict[str, str],
    ) -> Response:
        with self.lock:
            self.world.advance()
            token = self._valid_token(req)
            if token is None:
                content_type, body = self._document(
                    formats.call_action_response(
                        False, None, ResponseCode.TOKEN_INVALID, "Token is invalid or has expired"
                    ),
                    req.wants_json,
                )
                status = 401 if self.config.auth_failure == "http401" else 200
                return Response(status, content_type, body)
            try:
                user_id = _parse_int(raw_user, "user id", INT32)
                user_scoped = self.config.token_scope == "user"  # noqa: S105 (a scope name)
                if user_scoped and token.user_id != user_id:
                    raise Rejected(
                        ResponseCode.NOT_PERMITTED,
                        f"This token may only act for user {token.user_id}, not user {user_id}",
                    )
                data = self._perform(method, user_id, variables, params)
                fields = formats.call_action_response(True, data, ResponseCode.OK, "")
            except Rejected as rejected:
                fields = formats.call_action_response(False, None, rejected.code, rejected.detail)
            content_type, body = self._document(fields, req.wants_json)
            return Response(200, content_type, body)

    def _valid_token(self, req: Request) -> Token | None:
        presented = _cookie_token(req.headers)
        token = self.tokens.get(presented) if presented else None
        if token is None:
            return None
        if token.expires_at <= self.clock():
            return None
        return token

    def _perform(
        self, method: str, user_id: int, variables: dict[str, str], params: dict[str, str]
    ) -> Value:
        world = self.world
        style = self.config.style()
        call_id = _parse_int(variables["call"], "call id", INT32) if "call" in variables else 0
        if method == "getcalls":
            return formats.calls_arr(world, world.calls_for(user_id), style)
        if method == "goready":
            world.go_ready(user_id)
        elif method == "dial":
            raw_lead = params.get("leadid", "").strip()
            lead_id = _parse_int(raw_lead, "lead id", INT64) if raw_lead else None
            return formats.call_obj(world, world.dial(user_id, variables["phone"], lead_id), style)
        elif method == "hangup":
            world.hangup(user_id, call_id)
        elif method == "dispose":
            world.dispose(user_id, call_id, params.get("resultcode", "").strip())
        elif method == "hold":
            world.hold(user_id, call_id)
        elif method == "retrieve":
            world.retrieve(user_id, call_id)
        elif method == "stoprecord":
            world.stop_record(user_id, call_id)
        elif method == "startrecord":
            world.start_record(user_id, call_id)
        elif method == "campaigns":
            world.agent(user_id)
            return Arr("Campaign", [formats.campaign_obj(world, c) for c in world.campaigns()])
        elif method == "users":
            world.agent(user_id)
            return formats.users_arr(world.users())
        elif method == "resultcodes":
            world.agent(user_id)
            return Arr("ResultCode", [formats.result_code_obj(c) for c in world.result_codes()])
        elif method == "acdqueues":
            world.agent(user_id)
            return Arr("AcdQueue", [formats.acd_queue_obj(world, q) for q in world.acd_queues()])
        elif method == "leadphones":
            lead_id = _parse_int(variables["lead"], "lead id", INT64)
            phones = world.lead_phones(user_id, lead_id)
            return Arr("LeadPhone", [formats.lead_phone_obj(p, style) for p in phones])
        elif method == "changelead":
            lead_phone_id = _parse_int(variables["leadphone"], "lead phone id", INT64)
            world.change_lead(user_id, call_id, lead_phone_id)
        elif method == "createnewlead":
            world.create_new_lead(user_id, call_id, variables["phone"])
        elif method == "connectcalls":
            self._connect_calls(user_id, params)
        return None

    def _connect_calls(self, user_id: int, params: dict[str, str]) -> None:
        def required(name: str) -> str:
            value = params.get(name, "").strip()
            if not value:
                raise Rejected(ResponseCode.INVALID_PARAMETER, f"{name} is required")
            return value

        def optional_int(name: str) -> int | None:
            raw = params.get(name, "").strip()
            return _parse_int(raw, name, INT32) if raw else None

        call1 = _parse_int(required("call1"), "call1", INT32)
        call2 = _parse_int(required("call2"), "call2", INT32)
        code1, code2 = required("resultcode1"), required("resultcode2")
        self.world.connect_calls(
            user_id, call1, call2, code1, code2,
            params.get("notes1", ""), params.get("notes2", ""),
            optional_int("numsales1"), optional_int("numsales2"),
        )  # fmt: skip

    def _take_fault(self, raw_path: str) -> Fault | None:
        path = urllib.parse.unquote(raw_path).lower()
        for fault in self.faults:
            if fault.path_contains is None or fault.path_contains.lower() in path:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    def _log_request(self, req: Request, fault: Fault | None) -> None:
        self.seq += 1
        headers: dict[str, str] = {}
        for name, value in req.headers.items():
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        self.log.append(
            {
                "seq": self.seq,
                "time": self.clock(),
                "method": req.method,
                "path": req.raw_path,
                "query": req.raw_query,
                "params": urllib.parse.parse_qs(req.raw_query, keep_blank_values=True),
                "headers": headers,
                "fault": fault.kind if fault else None,
            }
        )

    # -- /_sim/ control ------------------------------------------------------------------------

    def handle_control(self, req: Request) -> Response:
        if not _is_loopback(req.client_host):
            return _json_response(403, {"error": "control endpoints answer loopback only"})
        action = req.raw_path.lower().rstrip("/")[len("/_sim/") :]
        try:
            payload = self._control_payload(req)
            with self.lock:
                self.world.advance()
                return _json_response(200, self._control(req.method, action, payload, req))
        except ControlError as error:
            return _json_response(error.status, {"error": error.message})
        except Rejected as rejected:
            status = {
                ResponseCode.INVALID_PARAMETER: 400,
                ResponseCode.AGENT_WRONG_STATE: 409,
                ResponseCode.CALL_WRONG_STATE: 409,
            }.get(rejected.code, 404)
            return _json_response(status, {"error": rejected.detail})

    def _control_payload(self, req: Request) -> dict[str, Any]:
        if not req.body.strip():
            return {}
        try:
            payload = json.loads(req.body)
        except ValueError as error:
            raise ControlError(400, f"body is not JSON: {error}") from None
        if not isinstance(payload, dict):
            raise ControlError(400, "body must be a JSON object")
        return payload

    def _control(self, method: str, action: str, payload: dict[str, Any], req: Request) -> Any:
        world = self.world
        route = (method, action)
        if route == ("POST", "reset"):
            self.reset()
            return {"ok": True}
        if route == ("POST", "offer"):
            call = world.offer(
                _int(payload, "user_id"),
                phone=_opt(payload, "phone", str),
                lead_id=_opt(payload, "lead_id", int),
                force=bool(_opt(payload, "force", bool)),
                ring_seconds=float(_opt(payload, "ring_seconds", float) or 0.0),
            )
            return self._call_json(call.call_id)
        if route == ("POST", "lead"):
            lead = world.add_lead(
                str(payload.get("name", "")), _opt(payload, "name2", str), str(payload["phone"])
            )
            return {"lead_id": lead.lead_id}
        if route == ("POST", "customer-hangup"):
            call = world.customer_hangup(_int(payload, "call_id"))
            return self._call_json(call.call_id)
        if route == ("POST", "agent-state"):
            state = payload.get("state")
            if state not in ("ready", "not_ready"):
                raise ControlError(400, "state must be 'ready' or 'not_ready'")
            user_id = _int(payload, "user_id")
            world.set_agent_state(user_id, AgentState(state))
            return {"user_id": user_id, "state": str(world.agent_state(user_id))}
        if route == ("POST", "token-lifetime"):
            seconds = _opt(payload, "seconds", float)
            if seconds is None or seconds < 0:
                raise ControlError(400, "seconds must be a number >= 0")
            self.token_lifetime = float(seconds)
            return {"seconds": self.token_lifetime}
        if route == ("POST", "expire-tokens"):
            for token in self.tokens.values():
                token.expires_at = min(token.expires_at, self.clock() - 1)
            return {"expired": len(self.tokens)}
        if route == ("POST", "config"):
            self._update_config(payload)
            return dataclasses.asdict(self.config)
        if route == ("GET", "config"):
            return dataclasses.asdict(self.config)
        if route == ("POST", "faults"):
            self.faults.append(_fault(payload))
            return [dataclasses.asdict(f) for f in self.faults]
        if route == ("GET", "faults"):
            return [dataclasses.asdict(f) for f in self.faults]
        if route == ("DELETE", "faults"):
            self.faults.clear()
            return []
        if route == ("GET", "requests"):
            wanted = urllib.parse.parse_qs(req.raw_query).get("path_contains", [""])[0].lower()
            return [e for e in self.log if wanted in urllib.parse.unquote(e["path"]).lower()]
        if route == ("DELETE", "requests"):
            self.log.clear()
            return []
        if route == ("GET", "counts"):
            by_method: collections.Counter[str] = collections.Counter()
            by_user: dict[str, dict[str, int]] = {}
            for (method_name, user), n in self.counts.items():
                by_method[method_name] += n
                by_user.setdefault(method_name, {})[user] = n
            return {"total": sum(by_method.values()), "by_method": by_method, "by_user": by_user}
        if route == ("DELETE", "counts"):
            self.counts.clear()
            return {}
        if route == ("GET", "state"):
            snapshot = world.snapshot()
            snapshot["tokens"] = len(self.tokens)
            snapshot["config"] = dataclasses.asdict(self.config)
            snapshot["demo"] = self.demo is not None
            return snapshot
        raise ControlError(404, f"no control endpoint {method} /_sim/{action}")

    def _call_json(self, call_id: int) -> Any:
        """A call as the wire's JSON Call entity (ISO dates, LeadId included), plus its user."""
        call = self.world.calls[call_id]
        style = WireStyle(json_dates="iso", json_type_hints=False)
        body = formats.json_document({"Call": formats.call_obj(self.world, call, style)}, style)
        result: dict[str, Any] = json.loads(body)["Call"]
        result["user_id"] = call.user_id
        return result

    def _update_config(self, payload: dict[str, Any]) -> None:
        updated = dataclasses.asdict(self.config)
        for key, value in payload.items():
            if key in CONFIG_CHOICES:
                if value not in CONFIG_CHOICES[key]:
                    raise ControlError(400, f"{key} must be one of {list(CONFIG_CHOICES[key])}")
            elif key in CONFIG_BOOLS:
                if not isinstance(value, bool):
                    raise ControlError(400, f"{key} must be true or false")
            elif key == "lead_phone_id_field":
                if value is not None and not (
                    isinstance(value, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value)
                ):
                    raise ControlError(400, "lead_phone_id_field must be a field name or null")
            elif key in ("dial_ring_seconds", "latency_ms"):
                if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                    raise ControlError(400, f"{key} must be a number >= 0")
                value = float(value)
            else:
                raise ControlError(400, f"unknown config key {key!r}")
            updated[key] = value
        self.config = Config(**updated)
        self.world.dial_ring_seconds = self.config.dial_ring_seconds


def _method_and_user(raw_path: str) -> tuple[str, str]:
    """("getcalls", "101") for a telephony path, ("login", "-") for the token service."""
    parts = raw_path.lower().split("/")
    if parts[1:4] == ["webservices", "services", "telephony"] and len(parts) > 6:
        return parts[4], parts[6]
    if parts[1:5] == ["webservices", "services", "apitoken", "login"]:
        return "login", "-"
    return "other", "-"


def _int(payload: dict[str, Any], key: str) -> int:
    value = payload.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ControlError(400, f"{key} must be an integer")
    return value


def _opt(payload: dict[str, Any], key: str, kind: type) -> Any:
    value = payload.get(key)
    if value is None:
        return None
    numeric = kind in (int, float)
    if (numeric and isinstance(value, bool)) or not isinstance(
        value, (int | float) if kind is float else kind
    ):
        raise ControlError(400, f"{key} must be of type {kind.__name__}")
    return value


def _fault(payload: dict[str, Any]) -> Fault:
    kind = payload.get("kind")
    if kind not in FAULT_KINDS:
        raise ControlError(400, f"kind must be one of {list(FAULT_KINDS)}")
    unknown = set(payload) - {
        "kind",
        "count",
        "path_contains",
        "delay",
        "status",
        "apply",
        "detail",
    }
    if unknown:
        raise ControlError(400, f"unknown fault fields {sorted(unknown)}")
    count = _opt(payload, "count", int)
    count = 1 if count is None else count
    if count < 1:
        raise ControlError(400, "count must be >= 1")
    delay = _opt(payload, "delay", float)
    delay = (1.0 if kind == "latency" else 0.0) if delay is None else float(delay)
    if delay < 0:
        raise ControlError(400, "delay must be >= 0")
    status = _opt(payload, "status", int)
    status = 503 if status is None else status
    if not 400 <= status <= 599:
        raise ControlError(400, "status must be a 4xx or 5xx code")
    apply = _opt(payload, "apply", bool)
    apply = FAULT_APPLIES[kind] if apply is None else apply
    if kind == "expired_token":
        apply = False
    path_contains = _opt(payload, "path_contains", str)
    detail = _opt(payload, "detail", str) or "Rejected by the simulator (fault injection)"
    return Fault(kind, count, path_contains or None, delay, status, apply, detail)


# ---------------------------------------------------------------------------------------------
# HTTP


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-IIS/10.0"
    # Headers and body go out as two writes; with Nagle on, a keep-alive client waits ~40 ms.
    disable_nagle_algorithm = True

    @property
    def app(self) -> App:
        return cast(SimulatorServer, self.server).app

    @property
    def quiet(self) -> bool:
        return cast(SimulatorServer, self.server).quiet

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Access lines are written by `_access_log`, never with the query string or headers."""

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: the default lines quote the request line, which carries the query."""

    def log_error(self, format: str, *args: Any) -> None:
        if not self.quiet:
            sys.stderr.write("rejected a malformed HTTP request\n")

    def _access_log(self, path: str, status: int | str) -> None:
        if not self.quiet:
            sys.stderr.write(f"{self.command} {path} {status}\n")
            sys.stderr.flush()

    def _dispatch(self) -> None:
        raw_path, _, raw_query = self.path.partition("?")
        try:
            body = self._read_body()
            if body is None:
                return
            req = Request(
                self.command, raw_path, raw_query, self.headers, body, self.client_address[0]
            )
            if raw_path.lower() == "/_sim" or raw_path.lower().startswith("/_sim/"):
                outcome = Outcome(self.app.handle_control(req))
            else:
                outcome = self.app.handle_api(req)
            if outcome.response is None:
                self.close_connection = True
                self._access_log(raw_path, "dropped")
                return
            self._send(outcome.response, truncate=outcome.truncate)
            self._access_log(raw_path, outcome.response.status)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:
            traceback.print_exc(file=sys.stderr)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self._send(Response(500, HTML, status_page(500)))

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            self._send(Response(411, HTML, status_page(411)))
            return None
        try:
            length = int(self.headers.get("Content-Length", "0") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self.close_connection = True
            self._send(Response(413 if length > 0 else 400, HTML, status_page(413)))
            return None
        return self.rfile.read(length) if length else b""

    def _send(self, response: Response, *, truncate: bool = False) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Cache-Control", "private")
        self.send_header("X-Powered-By", "ASP.NET")
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command == "HEAD":
            return
        if truncate:
            # The promised Content-Length is the whole body; half of it arrives, then EOF.
            self.wfile.write(response.body[: len(response.body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(response.body)


class SimulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], app: App, *, quiet: bool) -> None:
        self.app = app
        self.quiet = quiet
        super().__init__(address, Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would call socket.getfqdn(), which can stall on DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)


class SimulatorServer6(SimulatorServer):
    address_family = socket.AF_INET6


def make_server(host: str, port: int, app: App, *, quiet: bool) -> SimulatorServer:
    server_class = SimulatorServer6 if ":" in host else SimulatorServer
    return server_class((host, port), app, quiet=quiet)


def base_url(server: SimulatorServer) -> str:
    host, port = server.server_address[:2]
    shown = f"[{host!s}]" if ":" in str(host) else str(host)
    return f"http://{shown}:{port}/webservices"


def run(
    host: str,
    port: int,
    *,
    demo: DemoSettings | None,
    quiet: bool,
    stop: threading.Event,
    crowd: int = 0,
) -> None:
    """Serve until `stop` is set; a ticker lets time pass in the world ~4 times a second."""
    app = App(demo=demo, crowd=crowd)
    server = make_server(host, port, app, quiet=quiet)
    print(f"MaxContact simulator listening on {base_url(server)}", flush=True)

    def tick() -> None:
        while not stop.wait(0.25):
            app.tick()

    threading.Thread(target=tick, name="sim-ticker", daemon=True).start()
    serving = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="sim-http", daemon=True
    )
    serving.start()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.shutdown()
        server.server_close()
