from django.db import migrations, models
from django.db.models import Max


def backfill(apps, schema_editor):
    """Each account's latest successful disposition, from the audit log."""
    AgentAccount = apps.get_model("telephony", "AgentAccount")
    AuditEntry = apps.get_model("telephony", "AuditEntry")
    latest = (
        AuditEntry.objects.filter(method__in=("dispose", "connectcalls"), outcome="ok")
        .exclude(account=None)
        .values("account")
        .annotate(at=Max("created_at"))
    )
    for row in latest:
        AgentAccount.objects.filter(pk=row["account"]).update(disposed_at=row["at"])


class Migration(migrations.Migration):
    dependencies = [
        ("telephony", "0003_auditentry_request_id"),
    ]

    operations = [
        migrations.AddField(
            model_name="agentaccount",
            name="disposed_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
