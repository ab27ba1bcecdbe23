from django.apps import AppConfig


class ControlPanelConfig(AppConfig):
    name = "controlpanel"
    verbose_name = "Agent control panel"

    def ready(self) -> None:
        from .live import watch_configuration
        from .requestlog import stamp_every_record

        stamp_every_record()
        watch_configuration()
