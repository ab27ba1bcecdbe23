"""What the panel itself stores: the launch links already used (each opens the panel once)."""

from __future__ import annotations

from django.db import models

from telephony.models import Tenant


class UsedLaunchLink(models.Model):
    """One launch link that was exchanged. Its nonce can never open the panel again.

    Rows are kept until the link would have expired anyway (then deleted when a new link is
    used): after that, the link's own expiry refuses it.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    nonce = models.CharField(max_length=64)
    expires_at = models.DateTimeField(db_index=True)
    used_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "nonce"], name="launch_link_used_once")
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id}:{self.nonce[:6]}…"
