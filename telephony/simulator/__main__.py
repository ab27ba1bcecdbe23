"""python -m telephony.simulator: a stand-in MaxContact tenant on loopback (docs/simulator.md)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from .server import run
from .world import DemoSettings


def seconds_range(text: str) -> tuple[float, float]:
    """'15-40' -> (15.0, 40.0); a single number means exactly that long."""
    low, _, high = text.partition("-")
    try:
        bounds = (float(low), float(high or low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN-MAX seconds, got {text!r}") from None
    if not 0 <= bounds[0] <= bounds[1]:
        raise argparse.ArgumentTypeError(f"expected 0 <= MIN <= MAX, got {text!r}")
    return bounds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m telephony.simulator",
        description="A MaxContact tenant simulator speaking the Agent Remote Control API.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=8081, help="port (0 picks a free one)")
    parser.add_argument(
        "--demo", action="store_true", help="offer inbound calls and let customers hang up"
    )
    parser.add_argument(
        "--offer-every",
        type=seconds_range,
        default=(15.0, 40.0),
        metavar="MIN-MAX",
        help="demo: seconds between offers to a ready, idle agent (default 15-40)",
    )
    parser.add_argument(
        "--talk-for",
        type=seconds_range,
        default=(30.0, 90.0),
        metavar="MIN-MAX",
        help="demo: seconds before the customer hangs up (default 30-90)",
    )
    parser.add_argument(
        "--crowd",
        type=int,
        default=0,
        metavar="N",
        help="N extra agents for load tests (user ids 10001.., login crowdN.agent, crowdN-pw)",
    )
    parser.add_argument("--quiet", action="store_true", help="no access log on stderr")
    args = parser.parse_args(argv)

    demo = DemoSettings(offer_every=args.offer_every, talk_for=args.talk_for) if args.demo else None
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        run(args.host, args.port, demo=demo, quiet=args.quiet, stop=stop, crowd=args.crowd)
    except OSError as error:
        print(f"cannot serve on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
