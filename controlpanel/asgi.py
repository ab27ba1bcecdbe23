"""ASGI entry point (uvicorn serves the panel, so that the live stream can stream)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlpanel.settings")

application = get_asgi_application()
