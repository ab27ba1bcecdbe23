"""`manage.py telephony`: every vendor method for an agent, JSON out, errors in words."""

import io
import json
import logging
import os
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from telephony.models import AgentAccount, Tenant
from telephony.simulator.world import SEED_AGENTS

pytestmark = pytest.mark.django_db
ALICE = SEED_AGENTS[0]


@pytest.fixture
def agent(django_user_model, simulator):
    tenant = Tenant.objects.create(name="Sim", base_url=simulator.base_url)
    user = django_user_model.objects.create_user("agent")
    account = AgentAccount(
        user=user, tenant=tenant, remote_user_id=ALICE.user_id, maxcontact_login=ALICE.login
    )
    account.set_password(ALICE.password)
    account.save()
    return account


def run(*args):
    out = io.StringIO()
    call_command("telephony", "agent", *args, stdout=out)
    return json.loads(out.getvalue())


def test_every_vendor_method_from_the_command_line(agent, simulator, caplog):
    caplog.set_level(logging.DEBUG)
    outputs = []

    def step(*args):
        outputs.append(run(*args))
        return outputs[-1]

    login = step("login")
    assert login["logged_in"] is True
    assert "key" not in login
    step("goready")
    call = step("dial", "07700900123")["call"]
    assert call["call_id"] == 1000
    assert step("getcalls")[0]["phone_number"] == "07700900123"
    lead_id = step("getcalls")[0]["lead_id"]
    step("hold", "1000")
    step("retrieve", "1000")
    step("stoprecord", "1000")
    step("startrecord", "1000")
    phones = step("leadphones", str(lead_id))
    step("createnewlead", "1000", "07700900999")
    step("changelead", "1000", str(phones[0]["lead_phone_id"]))
    step("hold", "1000")
    step("dial", "01614960000", "--lead-id", str(lead_id))
    step(
        "connectcalls",
        "1000",
        "1001",
        "TRANSFER",
        "BRIDGE_WARM",
        "--notes1",
        "to billing",
        "--num-sales2",
        "0",
    )
    assert step("getcalls") == []
    step("dial", "07700900123")
    step("hangup", "1002")
    step("dispose", "1002", "SALE")
    assert any(c["code"] == "SALE" for c in step("resultcodes"))
    assert any(u["id"] == ALICE.user_id for u in step("users"))
    assert step("campaigns")[0]["campaign_id"]
    assert step("acdqueues")[0]["name"]

    token = AgentAccount.objects.get(pk=agent.pk).client().token_store.load().key
    printed = json.dumps(outputs) + caplog.text
    assert ALICE.password not in printed
    assert token not in printed
    connect = next(r for r in simulator.requests() if "connectcalls" in r["path"].lower())
    assert connect["params"]["notes1"] == ["to billing"]


def test_a_rejection_is_an_error_with_the_vendors_words(agent):
    run("goready")
    run("dial", "07700900123")
    with pytest.raises(CommandError, match="Unknown result code") as caught:
        run("dispose", "1000", "NOT_A_CODE")
    assert "ResponseCode" in str(caught.value)


def test_an_unknown_agent_is_an_error(agent):
    with pytest.raises(CommandError, match="No agent account"):
        call_command("telephony", "nobody", "getcalls", stdout=io.StringIO())


def test_the_exit_status_is_non_zero_with_the_error_text_on_stderr(tmp_path):
    # A real process: the exit status and stderr are what an admin's shell sees. It runs on a
    # database file of its own.
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
    }
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True, timeout=120)
    result = subprocess.run(
        [*manage, "telephony", "nobody", "getcalls"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "No agent account for 'nobody'" in result.stderr
    assert "Traceback" not in result.stderr
