"""Forms of the agent panel: what an agent may type, checked before MaxContact sees it."""

from __future__ import annotations

import uuid
from typing import Any

import phonenumbers
from django import forms
from django.utils.translation import gettext_lazy as _

from telephony.entities import ResultCode
from telephony.models import Tenant

MAX_LEAD_ID = 2**63 - 1


def new_key() -> str:
    """A fresh idempotency key for one rendering of an action form."""
    return uuid.uuid4().hex


class ActionForm(forms.Form):
    """Every action form carries the key that makes a second submission harmless."""

    # A uuid4 hex; derived keys (":hold", ":dial") must still fit AuditEntry's 64 characters.
    key = forms.CharField(max_length=32, widget=forms.HiddenInput)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("initial", {}).setdefault("key", new_key())
        super().__init__(*args, **kwargs)


def dialable(tenant: Tenant, raw: str) -> str:
    """The number in the form the tenant sends, or a ValidationError saying what is wrong."""
    text = raw.strip()
    if not text:
        raise forms.ValidationError(_("Enter a phone number."))
    try:
        number = phonenumbers.parse(text, tenant.default_region)
    except phonenumbers.NumberParseException:
        raise forms.ValidationError(
            _("“%(number)s” is not a phone number."), params={"number": text}
        ) from None
    # "Possible" (the right length for its country), not "valid": the validity tables lag
    # behind new number ranges, and an agent must never be stopped from dialling a real one.
    if (
        phonenumbers.is_possible_number_with_reason(number)
        != phonenumbers.ValidationResult.IS_POSSIBLE
    ):
        raise forms.ValidationError(
            _(
                "“%(number)s” has the wrong number of digits for %(region)s; add the country "
                "code (+…) for a number abroad."
            ),
            params={"number": text, "region": tenant.default_region},
        )
    if tenant.dial_format == "e164":
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    home = phonenumbers.country_code_for_region(tenant.default_region)
    if number.country_code != home:
        # A foreign number cannot be written in national digits: send it with its country code.
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    return "".join(ch for ch in national if ch.isdigit())


class PhoneField(forms.CharField):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 40)
        kwargs.setdefault("error_messages", {"required": _("Enter a phone number.")})
        kwargs.setdefault(
            "widget",
            forms.TextInput(
                attrs={"inputmode": "tel", "autocomplete": "off", "spellcheck": "false"}
            ),
        )
        super().__init__(*args, **kwargs)


class TenantForm(ActionForm):
    def __init__(self, *args: Any, tenant: Tenant, **kwargs: Any) -> None:
        self.tenant = tenant
        super().__init__(*args, **kwargs)

    def clean_phone(self) -> str:
        return dialable(self.tenant, self.cleaned_data.get("phone", ""))


class DialForm(TenantForm):
    phone = PhoneField(label=_("Number"))
    lead_id = forms.IntegerField(
        label=_("Lead id (optional)"), required=False, min_value=1, max_value=MAX_LEAD_ID
    )


class NewLeadForm(TenantForm):
    phone = PhoneField(label=_("New lead's number"))


class TransferStartForm(TenantForm):
    phone = PhoneField(label=_("Transfer to"))


class ChangeLeadForm(ActionForm):
    lead_phone_id = forms.IntegerField(min_value=1, max_value=MAX_LEAD_ID)


class LeadLookupForm(forms.Form):
    lead = forms.IntegerField(label=_("Lead id"), min_value=1, max_value=MAX_LEAD_ID)


def result_code_choices(codes: list[ResultCode], labels: dict[str, str]) -> list[tuple[str, str]]:
    """The codes an agent may choose, labelled for people."""
    return [
        (code.code, labels.get(code.code) or code.description or code.code)
        for code in codes
        if code.is_agent_viewable
    ]


class DisposeForm(ActionForm):
    result_code = forms.ChoiceField(label=_("Result"), choices=())
    notes = forms.CharField(
        label=_("Notes (optional)"),
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def __init__(self, *args: Any, choices: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        result_code = self.fields["result_code"]
        assert isinstance(result_code, forms.ChoiceField)
        result_code.choices = [("", _("Choose a result…")), *choices]
        self.result_code_choices = choices


class TransferCompleteForm(ActionForm):
    call1 = forms.IntegerField(widget=forms.HiddenInput, min_value=0, max_value=MAX_LEAD_ID)
    call2 = forms.IntegerField(widget=forms.HiddenInput, min_value=0, max_value=MAX_LEAD_ID)
    result_code1 = forms.ChoiceField(label=_("Result for the customer's call"), choices=())
    result_code2 = forms.ChoiceField(label=_("Result for the transfer call"), choices=())
    notes1 = forms.CharField(
        label=_("Notes for the customer's call"), required=False, max_length=2000
    )
    notes2 = forms.CharField(
        label=_("Notes for the transfer call"), required=False, max_length=2000
    )
    num_sales1 = forms.IntegerField(
        label=_("Sales on the customer's call"), required=False, min_value=0, max_value=999
    )
    num_sales2 = forms.IntegerField(
        label=_("Sales on the transfer call"), required=False, min_value=0, max_value=999
    )

    def __init__(
        self, *args: Any, codes: list[ResultCode], labels: dict[str, str], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        # Bridging takes any code the tenant has, system codes such as BRIDGE_WARM included.
        choices = [(c.code, labels.get(c.code) or c.description or c.code) for c in codes]
        for name in ("result_code1", "result_code2"):
            field = self.fields[name]
            assert isinstance(field, forms.ChoiceField)
            field.choices = [("", _("Choose a result…")), *choices]
        codes_by_name = {c.code for c in codes}
        self.initial.setdefault("result_code1", "TRANSFER" if "TRANSFER" in codes_by_name else "")
        self.initial.setdefault(
            "result_code2", "BRIDGE_WARM" if "BRIDGE_WARM" in codes_by_name else ""
        )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("call1") is not None and cleaned.get("call1") == cleaned.get("call2"):
            raise forms.ValidationError(_("Choose two different calls."))
        return cleaned
