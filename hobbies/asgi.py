"""ASGI entry point: HTTP through Django, `/ws/` through the chat consumer."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hobbies.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from accounts.sockets import SocketAuthMiddleware  # noqa: E402
from chat.routing import websocket_urlpatterns  # noqa: E402
from chat.transport import ConnectionMiddleware  # noqa: E402
from hobbies import metrics  # noqa: E402
from hobbies.guards import BodyLimit, OriginValidator, install_daphne_body_limit  # noqa: E402

if settings.METRICS_EMF:
    metrics.emf_start(
        namespace=settings.METRICS_NAMESPACE,
        environment=settings.HOBBIES_ENVIRONMENT,
        interval=settings.METRICS_EMF_INTERVAL,
    )

# Under daphne, bodies over the limit are refused before they are read (hobbies.guards).
install_daphne_body_limit()

application = ProtocolTypeRouter(
    {
        "http": BodyLimit(django_asgi_app),
        # The whole Origin (scheme, host, port) must be ours: a page on another site cannot
        # open a socket with our users' cookies.
        "websocket": ConnectionMiddleware(
            OriginValidator(SocketAuthMiddleware(URLRouter(websocket_urlpatterns)))
        ),
    }
)

# Everything imported so far lives as long as the process: move it out of the collector's way,
# so full collections scan only what requests and sockets allocate. Under a busy channel they
# paused the event loop for 55-90 ms every few seconds (docs/performance.md).
gc.collect()
gc.freeze()
