from django.db import migrations, models
from django.utils.text import slugify


def name_slugs(apps, schema_editor):
    Tenant = apps.get_model("telephony", "Tenant")
    taken: set[str] = set()
    for tenant in Tenant.objects.order_by("pk"):
        base = slugify(tenant.name)[:40] or "tenant"
        slug, n = base, 1
        while slug in taken:
            n += 1
            slug = f"{base}-{n}"
        taken.add(slug)
        Tenant.objects.filter(pk=tenant.pk).update(slug=slug)


class Migration(migrations.Migration):
    dependencies = [("telephony", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="tenant",
            name="slug",
            # No index yet: on PostgreSQL, indexing it here and again as unique below would
            # create two "..._like" indexes of the same name.
            field=models.SlugField(max_length=50, null=True, db_index=False),
        ),
        migrations.RunPython(name_slugs, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="tenant",
            name="slug",
            field=models.SlugField(
                help_text="The CRM frames the panel at /embed/<this name>/.",
                max_length=50,
                unique=True,
                verbose_name="name in embed links",
            ),
        ),
        migrations.AddField(
            model_name="tenant",
            name="launch_secret_encrypted",
            field=models.TextField(blank=True, editable=False),
        ),
        migrations.AlterField(
            model_name="tenant",
            name="allowed_origins",
            field=models.JSONField(
                blank=True,
                default=list,
                help_text='Exact origins, e.g. ["https://acme.my.salesforce.com"]: only these may '
                "frame the panel and talk to it.",
                verbose_name="CRM origins allowed to embed the panel",
            ),
        ),
    ]
