"""ASGI entry point (uvicorn serves the panel, so that the live stream can stream)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlpanel.settings")

application = get_asgi_application()

# A key that opens none of the stored MaxContact secrets stops the server here, at start-up,
# rather than at an agent's first click (a missing or malformed key already stopped setup()).
from telephony.checks import refuse_to_start_with_wrong_keys  # noqa: E402

refuse_to_start_with_wrong_keys()
