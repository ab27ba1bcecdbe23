"""MaxContact secrets at rest: Fernet under keys of their own, newest first.

`MAXCONTACT_ENCRYPTION_KEYS` holds one or more Fernet keys separated by commas. The first
encrypts; all of them decrypt, so a new key can be put in front, the secrets rotated to it
(`manage.py rotate_encryption_keys`), and the old key removed afterwards. The keys are not
derived from SECRET_KEY, so rotating one never touches the other.
"""

from __future__ import annotations

from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class UndecryptableSecret(Exception):
    """A stored secret does not open with any configured key (wrong or missing key)."""


def parse_keys(raw: str) -> MultiFernet:
    keys = [part.strip() for part in raw.split(",") if part.strip()]
    if not keys:
        raise ImproperlyConfigured(
            'MAXCONTACT_ENCRYPTION_KEYS is not set. Generate a key with `python -c "from '
            'cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`.'
        )
    fernets = []
    for position, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key))
        except (ValueError, TypeError):
            # Never echo the key itself.
            raise ImproperlyConfigured(
                f"MAXCONTACT_ENCRYPTION_KEYS: key number {position} is not a valid Fernet key "
                "(32 url-safe base64-encoded bytes)"
            ) from None
    return MultiFernet(fernets)


@cache
def _multifernet(raw: str) -> MultiFernet:
    return parse_keys(raw)


def keyring() -> MultiFernet:
    return _multifernet(settings.MAXCONTACT_ENCRYPTION_KEYS)


def encrypt(plaintext: str) -> str:
    return keyring().encrypt(plaintext.encode("utf-8")).decode("ascii")


def decrypt(ciphertext: str) -> str:
    try:
        return keyring().decrypt(ciphertext.encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeError):
        raise UndecryptableSecret(
            "A stored MaxContact secret cannot be decrypted with MAXCONTACT_ENCRYPTION_KEYS"
        ) from None


def rotate(ciphertext: str) -> str:
    """Re-encrypt under the newest key (raises UndecryptableSecret if no key opens it)."""
    try:
        return keyring().rotate(ciphertext.encode("ascii")).decode("ascii")
    except (InvalidToken, UnicodeError):
        raise UndecryptableSecret(
            "A stored MaxContact secret cannot be decrypted with MAXCONTACT_ENCRYPTION_KEYS"
        ) from None
