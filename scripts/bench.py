"""`make bench`: what the MaxContact client costs, measured as ratios within one run.

The machine is shared and noisy, so each number is reported next to a baseline taken in the
same run, and the ratio is the result worth comparing between runs (docs/performance.md).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import requests  # noqa: E402

from telephony import wire  # noqa: E402
from telephony.client import (  # noqa: E402
    ClientConfig,
    Credentials,
    MaxContactClient,
    MemoryTokenStore,
)
from telephony.simulator.world import SEED_AGENTS  # noqa: E402
from tests.simulator_control import start_simulator, stop_simulator  # noqa: E402

NS = (
    'xmlns="http://schemas.datacontract.org/2004/07/MaxContact.Telephony" '
    'xmlns:i="http://www.w3.org/2001/XMLSchema-instance"'
)


def per_call(fn: Callable[[], object], *, repeat: int = 7, number: int = 2000) -> float:
    """Best-of-`repeat` seconds per call of fn()."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - started) / number)
    return best


def getcalls_bodies(count: int) -> tuple[bytes, bytes]:
    calls = [
        {
            "CallId": 1000 + i,
            "CallStartTime": "/Date(1764238500123+0000)/",
            "CallState": 2,
            "CallStatus": 1,
            "CustomerName": f"Customer {i}",
            "CustomerName2": None,
            "PhoneNumber": f"0770090{i:04d}",
            "RecordingState": 1,
            "LeadId": 4000000 + i,
        }
        for i in range(count)
    ]
    as_json = json.dumps(
        {"Data": calls, "ResponseCode": 0, "ResponseDetail": "", "Success": True}
    ).encode()
    items = "".join(
        f"<Call><CallId>{c['CallId']}</CallId><CallStartTime>2026-11-27T10:15:00.1234567+00:00"
        f"</CallStartTime><CallState>2</CallState><CallStatus>1</CallStatus><CustomerName>"
        f'{c["CustomerName"]}</CustomerName><CustomerName2 i:nil="true"/><LeadId>{c["LeadId"]}'
        f"</LeadId><PhoneNumber>{c['PhoneNumber']}</PhoneNumber><RecordingState>1"
        f"</RecordingState></Call>"
        for c in calls
    )
    as_xml = (
        f'<CallActionResponse {NS}><Data i:type="ArrayOfCall">{items}</Data>'
        "<ResponseCode>0</ResponseCode><ResponseDetail/><Success>true</Success>"
        "</CallActionResponse>"
    ).encode()
    return as_json, as_xml


def bench_parsing() -> None:
    options = wire.WireOptions()
    as_json, as_xml = getcalls_bodies(3)
    json_s = per_call(lambda: wire.calls(wire.parse_envelope(as_json).data, options))
    xml_s = per_call(lambda: wire.calls(wire.parse_envelope(as_xml).data, options))
    loads_s = per_call(lambda: json.loads(as_json))
    print("parse getcalls, 3 calls (best of 7 x 2000):")
    print(f"  json.loads alone (baseline)  {loads_s * 1e6:8.1f} us")
    print(
        f"  JSON body -> list[Call]      {json_s * 1e6:8.1f} us  ({json_s / loads_s:.1f}x baseline)"
    )
    print(
        f"  XML body  -> list[Call]      {xml_s * 1e6:8.1f} us  ({xml_s / loads_s:.1f}x baseline)"
    )


def bench_memory() -> None:
    as_json, as_xml = getcalls_bodies(12_000)  # about the client's 4 MiB response cap
    for name, body in (("JSON", as_json), ("XML", as_xml)):
        tracemalloc.start()
        wire.calls(wire.parse_envelope(body).data, wire.WireOptions())
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(
            f"peak memory parsing a {len(body) / 2**20:.1f} MiB {name} getcalls (12,000 calls): "
            f"{peak / 2**20:.1f} MiB ({peak / len(body):.1f}x the body)"
        )


def bench_round_trip() -> None:
    process, simulator = start_simulator()
    try:
        alice = SEED_AGENTS[0]
        client = MaxContactClient(
            ClientConfig(base_url=simulator.base_url),
            user_id=alice.user_id,
            credentials=Credentials(login=alice.login, password=alice.password),
            token_store=MemoryTokenStore(),
        )
        client.go_ready()
        client.dial(phone="07700900123")
        token = client.token_store.load()
        assert token is not None
        url = f"{simulator.base_url}/services/telephony/getcalls/user/{alice.user_id}"
        session = requests.Session()
        headers = {"Cookie": f"TokenKey={token.key}", "Content-Type": "application/json"}

        def raw() -> None:
            session.get(url, headers=headers, timeout=5).content  # noqa: B018

        samples: dict[str, list[float]] = {"raw": [], "client": []}
        for _ in range(5):  # interleaved rounds, so both see the same machine
            for name, fn in (("raw", raw), ("client", client.get_calls)):
                samples[name].append(per_call(fn, repeat=1, number=200))
        raw_s, client_s = (statistics.median(samples[k]) for k in ("raw", "client"))
        print("getcalls round trip to the simulator over loopback (median of 5 x 200):")
        print(f"  plain requests.Session (base) {raw_s * 1e3:8.3f} ms")
        print(
            f"  MaxContactClient.get_calls()  {client_s * 1e3:8.3f} ms  "
            f"({client_s / raw_s:.2f}x baseline)"
        )
    finally:
        stop_simulator(process)


if __name__ == "__main__":
    import django

    django.setup()
    bench_parsing()
    bench_memory()
    bench_round_trip()
