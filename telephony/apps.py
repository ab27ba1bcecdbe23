from django.apps import AppConfig


class TelephonyConfig(AppConfig):
    name = "telephony"
    verbose_name = "MaxContact telephony"

    def ready(self) -> None:
        from . import checks, encryption

        # Fail at start-up, in every process (web, worker, command), not at the first login.
        encryption.keyring()
        checks.register()
