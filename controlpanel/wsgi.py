"""WSGI entry point, for tools that want one; the panel itself runs under ASGI (uvicorn)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlpanel.settings")

application = get_wsgi_application()
