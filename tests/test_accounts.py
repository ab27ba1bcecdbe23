"""Agent accounts keep MaxContact secrets encrypted, rotatable, and fail loudly on a bad key."""

import io

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from telephony import checks, encryption
from telephony.models import AgentAccount, Tenant

pytestmark = pytest.mark.django_db


@pytest.fixture
def tenant():
    return Tenant.objects.create(name="Acme", base_url="https://acme.maxcontact.com/webservices")


@pytest.fixture
def alice(django_user_model, tenant):
    user = django_user_model.objects.create_user("alice", password="x")
    account = AgentAccount(
        user=user, tenant=tenant, remote_user_id=101, maxcontact_login="alice.agent"
    )
    account.set_password("alice-maxcontact-pw")
    account.save()
    return account


def raw_row(account):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT password_encrypted, static_token_encrypted FROM telephony_agentaccount "
            "WHERE id = %s",
            [account.pk],
        )
        return cursor.fetchone()


def test_the_password_is_stored_encrypted_and_opens_again(alice):
    password_column, _ = raw_row(alice)
    assert "alice-maxcontact-pw" not in password_column
    assert password_column.startswith("gAAAA")  # a Fernet token
    reloaded = AgentAccount.objects.get(pk=alice.pk)
    assert reloaded.credentials().password == "alice-maxcontact-pw"


def test_secrets_are_not_in_the_accounts_repr_or_str(alice):
    alice.set_static_token("pasted-token-value")
    for text in (repr(alice), str(alice), repr(alice.credentials())):
        assert "alice-maxcontact-pw" not in text
        assert "pasted-token-value" not in text


def test_changing_the_password_forgets_the_cached_token(alice):
    from datetime import UTC, datetime

    from telephony.entities import Token
    from telephony.models import AccountTokenStore

    AccountTokenStore(alice).save(Token("cached", datetime.now(UTC), None))
    assert AgentAccount.objects.get(pk=alice.pk).cached_token_encrypted
    alice.set_password("new-password")
    alice.save()
    assert AccountTokenStore(AgentAccount.objects.get(pk=alice.pk)).load() is None


def test_the_token_store_keeps_the_token_encrypted_in_the_row(alice):
    from datetime import UTC, datetime

    from telephony.entities import Token
    from telephony.models import AccountTokenStore

    AccountTokenStore(alice).save(Token("tok-secret", datetime.now(UTC), None))
    fresh = AgentAccount.objects.get(pk=alice.pk)
    assert "tok-secret" not in fresh.cached_token_encrypted
    assert AccountTokenStore(fresh).load().key == "tok-secret"


def test_rotation_moves_every_secret_to_the_newest_key(alice, settings):
    old_key = settings.MAXCONTACT_ENCRYPTION_KEYS
    alice.set_static_token("a-token")
    alice.save()
    new_key = Fernet.generate_key().decode()
    settings.MAXCONTACT_ENCRYPTION_KEYS = f"{new_key},{old_key}"
    out = io.StringIO()
    call_command("rotate_encryption_keys", stdout=out)
    assert "Re-encrypted 2 secret(s)" in out.getvalue()

    settings.MAXCONTACT_ENCRYPTION_KEYS = new_key  # the old key is gone now
    assert AgentAccount.objects.get(pk=alice.pk).credentials().password == "alice-maxcontact-pw"
    assert AgentAccount.objects.get(pk=alice.pk).credentials().static_token == "a-token"


def test_a_wrong_key_is_reported_by_the_system_check_and_by_rotation(alice, settings):
    settings.MAXCONTACT_ENCRYPTION_KEYS = Fernet.generate_key().decode()
    (error,) = checks.stored_secrets_open()
    assert error.id == "telephony.E001"
    assert str(alice.pk) in error.msg
    with pytest.raises(CommandError, match="no configured key opens"):
        call_command("rotate_encryption_keys", stdout=io.StringIO())
    with pytest.raises(encryption.UndecryptableSecret):
        AgentAccount.objects.get(pk=alice.pk).credentials()


def test_the_system_check_passes_with_the_right_key(alice):
    assert checks.stored_secrets_open() == []


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "is not set"),
        ("not-a-key", "key number 1"),
        (f"{Fernet.generate_key().decode()},x", "key number 2"),
    ],
)
def test_missing_or_malformed_keys_fail_loudly_without_echoing_them(raw, message):
    with pytest.raises(ImproperlyConfigured, match=message) as caught:
        encryption.parse_keys(raw)
    if raw:
        assert raw.split(",")[-1] not in str(caught.value)


def test_start_up_refuses_a_malformed_key(tmp_path):
    """A fresh process with a bad key stops at django.setup(), before serving anything."""
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "MAXCONTACT_ENCRYPTION_KEYS": "definitely-not-a-fernet-key",
        "DJANGO_SETTINGS_MODULE": "controlpanel.settings",
        "ENV_FILE": "/dev/null",
        "DEBUG": "true",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "not a valid Fernet key" in result.stderr
    assert "definitely-not-a-fernet-key" not in result.stderr


def test_tenant_builds_its_client_config_from_its_options(tenant):
    tenant.auth_failure_codes = [401, 9]
    tenant.lead_phone_id_fields = ["PhoneId"]
    tenant.naive_time_zone = "Europe/London"
    tenant.token_lifetime_seconds = 600
    config = tenant.client_config()
    assert config.auth_failure_codes == frozenset({401, 9})
    assert config.wire.lead_phone_id_fields == ("PhoneId",)
    assert str(config.wire.naive_time_zone) == "Europe/London"
    assert config.token_lifetime.total_seconds() == 600
    assert config.base_url == "https://acme.maxcontact.com/webservices"


def test_tenant_validation_explains_bad_options(tenant):
    from django.core.exceptions import ValidationError

    tenant.auth_failure_codes = ["401"]
    tenant.call_state_labels = {"2": 5}
    tenant.naive_time_zone = "Mars/Olympus"
    with pytest.raises(ValidationError) as caught:
        tenant.full_clean()
    assert set(caught.value.message_dict) == {
        "auth_failure_codes",
        "call_state_labels",
        "naive_time_zone",
    }


@pytest.mark.django_db(transaction=True)
def test_the_panel_refuses_to_start_with_a_key_that_opens_nothing(alice):
    from tests.servers import start_panel, stop

    try:
        server = start_panel({"MAXCONTACT_ENCRYPTION_KEYS": Fernet.generate_key().decode()})
    except RuntimeError as error:
        assert "uvicorn exited" in str(error)  # noqa: PT017 (must also stop a started server)
    else:
        stop(server.process)
        pytest.fail("the panel started with a key that opens none of the stored secrets")


def test_a_refused_token_does_not_wipe_a_newer_one_from_another_process(alice):
    from datetime import UTC, datetime

    from telephony.entities import Token
    from telephony.models import AccountTokenStore

    mine = AccountTokenStore(alice)
    mine.save(Token("old", datetime.now(UTC), None))
    other_process = AccountTokenStore(AgentAccount.objects.get(pk=alice.pk))
    other_process.save(Token("newer", datetime.now(UTC), None))

    mine.discard("old")  # my copy is stale: the row now holds "newer"
    assert AccountTokenStore(AgentAccount.objects.get(pk=alice.pk)).load().key == "newer"
    assert mine.load().key == "newer"  # and I pick it up instead of logging in

    mine.discard("newer")
    assert AccountTokenStore(AgentAccount.objects.get(pk=alice.pk)).load() is None


def test_a_cached_token_under_a_lost_key_is_dropped_not_fatal(alice, settings):
    from datetime import UTC, datetime

    from telephony.entities import Token
    from telephony.models import AccountTokenStore

    old_key = settings.MAXCONTACT_ENCRYPTION_KEYS
    settings.MAXCONTACT_ENCRYPTION_KEYS = Fernet.generate_key().decode()
    AccountTokenStore(alice).save(Token("written-by-a-stale-worker", datetime.now(UTC), None))
    settings.MAXCONTACT_ENCRYPTION_KEYS = old_key

    assert checks.stored_secrets_open() == []  # only admin-entered secrets are fatal
    call_command("rotate_encryption_keys", stdout=io.StringIO())
    fresh = AgentAccount.objects.get(pk=alice.pk)
    assert fresh.cached_token_encrypted == ""
    assert fresh.credentials().password == "alice-maxcontact-pw"


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://acme.maxcontact.com/webservices", True),
        ("http://127.0.0.1:8081/webservices", True),
        ("http://localhost:8081/webservices", True),
        ("http://acme.maxcontact.com/webservices", False),
        ("ftp://acme.maxcontact.com/webservices", False),
    ],
)
def test_a_tenant_url_must_be_https_except_on_loopback(tenant, url, ok):
    from django.core.exceptions import ValidationError

    tenant.base_url = url
    if ok:
        tenant.full_clean()
    else:
        with pytest.raises(ValidationError, match="https"):
            tenant.full_clean()


def test_rotation_moves_launch_link_secrets_too(alice, settings):
    old_key = settings.MAXCONTACT_ENCRYPTION_KEYS
    tenant = alice.tenant
    tenant.set_launch_secret("launch-secret-" + "x" * 30)
    tenant.save()
    settings.MAXCONTACT_ENCRYPTION_KEYS = f"{Fernet.generate_key().decode()},{old_key}"
    call_command("rotate_encryption_keys", stdout=io.StringIO())
    settings.MAXCONTACT_ENCRYPTION_KEYS = settings.MAXCONTACT_ENCRYPTION_KEYS.split(",")[0]
    tenant.refresh_from_db()
    assert tenant.launch_secret() == "launch-secret-" + "x" * 30


def test_saving_an_account_read_earlier_keeps_her_newer_desk_state(alice):
    """An admin's edit saves the whole account as it was read; her desk moved on meanwhile."""
    from django.utils import timezone

    stale = AgentAccount.objects.get(pk=alice.pk)
    moved = {"desk_state": "on_call", "ready_before_call": True}
    now = timezone.now()
    AgentAccount.objects.filter(pk=alice.pk).update(**moved, desk_state_since=now, disposed_at=now)
    stale.maxcontact_login = "alice.renamed"
    stale.save()
    fresh = AgentAccount.objects.get(pk=alice.pk)
    assert fresh.maxcontact_login == "alice.renamed"
    assert (fresh.desk_state, fresh.ready_before_call) == ("on_call", True)
    assert fresh.desk_state_since == now
    assert fresh.disposed_at == now
