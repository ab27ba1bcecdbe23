"""Fail fast and clearly when the PostgreSQL used by `make test` does not answer."""

import sys
import time

import psycopg

url = sys.argv[1]
deadline = time.monotonic() + 15
while True:
    try:
        psycopg.connect(url, connect_timeout=3).close()
        break
    except psycopg.OperationalError as error:
        if time.monotonic() > deadline:
            sys.exit(f"PostgreSQL at {url} does not answer ({error}); set PG_TEST_URL")
        time.sleep(0.5)
