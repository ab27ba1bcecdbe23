"""Settings for the test run: the project's settings with test-only keys.

The developer's `.env` is not read, so a test run never depends on (or touches) it. Subprocess
servers started by the tests inherit these variables, so they open the same secrets.
"""

import os

from cryptography.fernet import Fernet

os.environ["ENV_FILE"] = "/dev/null"
os.environ.setdefault("MAXCONTACT_ENCRYPTION_KEYS", Fernet.generate_key().decode())
os.environ.setdefault("SECRET_KEY", "test-only-secret-key-" + "x" * 40)
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECURE_COOKIES", "false")
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
# A private redis-server on a free port (started by tests/servers.py), so tests can restart it
# and never touch a Redis that a `make run` is using. Server processes inherit the variable.
if "REDIS_URL" not in os.environ or os.environ.get("PANEL_TEST_REDIS") != "1":
    import socket

    with socket.socket() as _sock:
        _sock.bind(("127.0.0.1", 0))
        os.environ["REDIS_URL"] = f"redis://127.0.0.1:{_sock.getsockname()[1]}/0"
    os.environ["PANEL_TEST_REDIS"] = "1"
# Each test run has its own cache keys on the shared Redis (a `make run` may be using it).
os.environ.setdefault("CACHE_KEY_PREFIX", f"panel-tests-{os.getpid()}")

from controlpanel.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast test logins
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True  # serve from the finders; no collectstatic before tests

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    # A file, not memory: server processes started by the tests (uvicorn) share it.
    import tempfile

    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": os.path.join(tempfile.gettempdir(), f"panel-tests-{os.getpid()}.sqlite3")
    }
