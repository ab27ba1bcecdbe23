"""`manage.py telephony AGENT METHOD [ARGS]`: call one MaxContact method as an agent.

The admin's tool for debugging a tenant: it prints the parsed result as JSON and exits non-zero
with the error's text on failure. It never prints a password or a token.
"""

from __future__ import annotations

import dataclasses
import json
from argparse import ArgumentParser
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from telephony.client import MaxContactClient
from telephony.encryption import UndecryptableSecret
from telephony.errors import MaxContactError, Rejected
from telephony.models import AgentAccount

Runner = Callable[[MaxContactClient, dict[str, Any]], Any]


def _login(client: MaxContactClient, options: dict[str, Any]) -> dict[str, Any]:
    token = client.login()
    return {
        "logged_in": True,
        "obtained_at": token.obtained_at,
        "expires_at": token.expires_at,
    }


# name -> (help, [(argument, type, help)], optional flags, runner)
METHODS: dict[str, tuple[str, list[tuple[str, type, str]], list[tuple[str, type]], Runner]] = {
    "login": ("Token service: log in and cache a new token", [], [], _login),
    "getcalls": ("Get Calls", [], [], lambda c, o: c.get_calls()),
    "goready": ("Go Ready", [], [], lambda c, o: c.go_ready()),
    "dial": (
        "Dial a number, optionally for a lead",
        [("phone", str, "the number to dial")],
        [("--lead-id", int)],
        lambda c, o: c.dial(phone=o["phone"], lead_id=o["lead_id"]),
    ),
    "hangup": (
        "Hangup",
        [("call_id", int, "call id")],
        [],
        lambda c, o: c.hangup(call_id=o["call_id"]),
    ),
    "dispose": (
        "Dispose a call with a result code",
        [("call_id", int, "call id"), ("result_code", str, "result code, e.g. SALE")],
        [],
        lambda c, o: c.dispose(call_id=o["call_id"], result_code=o["result_code"]),
    ),
    "hold": ("Hold", [("call_id", int, "call id")], [], lambda c, o: c.hold(call_id=o["call_id"])),
    "retrieve": (
        "Retrieve",
        [("call_id", int, "call id")],
        [],
        lambda c, o: c.retrieve(call_id=o["call_id"]),
    ),
    "stoprecord": (
        "Stop Recording (PCI pause)",
        [("call_id", int, "call id")],
        [],
        lambda c, o: c.stop_record(call_id=o["call_id"]),
    ),
    "startrecord": (
        "Start Recording",
        [("call_id", int, "call id")],
        [],
        lambda c, o: c.start_record(call_id=o["call_id"]),
    ),
    "campaigns": ("Campaigns", [], [], lambda c, o: c.campaigns()),
    "users": ("Users", [], [], lambda c, o: c.users()),
    "resultcodes": ("Result Codes", [], [], lambda c, o: c.result_codes()),
    "acdqueues": ("ACD Queues", [], [], lambda c, o: c.acd_queues()),
    "leadphones": (
        "Lead Phones",
        [("lead_id", int, "lead id")],
        [],
        lambda c, o: c.lead_phones(lead_id=o["lead_id"]),
    ),
    "changelead": (
        "Change Lead Phone: move a call to the lead of a lead phone",
        [("call_id", int, "call id"), ("lead_phone_id", int, "lead phone id")],
        [],
        lambda c, o: c.change_lead(call_id=o["call_id"], lead_phone_id=o["lead_phone_id"]),
    ),
    "createnewlead": (
        "Create New Lead for a call",
        [("call_id", int, "call id"), ("phone", str, "the new lead's number")],
        [],
        lambda c, o: c.create_new_lead(call_id=o["call_id"], phone=o["phone"]),
    ),
    "connectcalls": (
        "Connect Calls (warm transfer): bridge two calls",
        [
            ("call1_id", int, "first call id"),
            ("call2_id", int, "second call id"),
            ("result_code1", str, "result code for the first call"),
            ("result_code2", str, "result code for the second call"),
        ],
        [("--notes1", str), ("--notes2", str), ("--num-sales1", int), ("--num-sales2", int)],
        lambda c, o: c.connect_calls(
            call1_id=o["call1_id"],
            call2_id=o["call2_id"],
            result_code1=o["result_code1"],
            result_code2=o["result_code2"],
            notes1=o["notes1"],
            notes2=o["notes2"],
            num_sales1=o["num_sales1"],
            num_sales2=o["num_sales2"],
        ),
    ),
}


def to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value) if f.repr
        }
    if isinstance(value, list | tuple):
        return [to_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {key: to_jsonable(item) for key, item in value.items()}
    if isinstance(value, datetime):
        return value.isoformat()
    return value


class Command(BaseCommand):
    help = "Call one MaxContact telephony method as an agent and print the result as JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "agent", help="the agent: a Django username, or the agent account's id as #ID"
        )
        methods = parser.add_subparsers(
            dest="method", required=True, metavar="METHOD", parser_class=ArgumentParser
        )
        for name, (description, positionals, flags, _runner) in METHODS.items():
            sub = methods.add_parser(name, help=description, description=description)
            for argument, kind, text in positionals:
                sub.add_argument(argument, type=kind, help=text)
            for flag, kind in flags:
                sub.add_argument(flag, type=kind)

    def handle(self, *args: Any, **options: Any) -> None:
        account = self._account(options["agent"])
        runner = METHODS[options["method"]][3]
        try:
            result = runner(account.client(), options)
        except Rejected as error:
            raise CommandError(
                f"MaxContact rejected {options['method']} (ResponseCode "
                f"{error.response_code}): {error.message}"
            ) from None
        except MaxContactError as error:
            raise CommandError(error.message) from None
        except UndecryptableSecret as error:
            raise CommandError(str(error)) from None
        self.stdout.write(json.dumps(to_jsonable(result), indent=2, ensure_ascii=False))

    def _account(self, name: str) -> AgentAccount:
        accounts = AgentAccount.objects.select_related("tenant", "user")
        try:
            if name.startswith("#"):
                return accounts.get(pk=int(name[1:]))
            return accounts.get(user__username=name)
        except (AgentAccount.DoesNotExist, ValueError):
            raise CommandError(f"No agent account for {name!r}") from None
