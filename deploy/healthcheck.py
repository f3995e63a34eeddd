"""The container's health check: exits 0 when this process's /readyz answers 200.

It asks as one of DJANGO_ALLOWED_HOSTS (Django refuses any other Host) over loopback; /readyz is
exempt from the HTTPS redirect, so plain HTTP is enough.
"""

import http.client
import os
import sys


def main() -> int:
    hosts = [h.strip() for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "").split(",") if h.strip()]
    host = hosts[0].lstrip(".") if hosts and hosts[0] != "*" else "127.0.0.1"
    port = os.environ.get("PORT", "8000")
    connection = http.client.HTTPConnection("127.0.0.1", int(port), timeout=4)
    try:
        connection.request("GET", "/readyz", headers={"Host": host})
        response = connection.getresponse()
        body = response.read(1000).decode(errors="replace")
    except (OSError, http.client.HTTPException) as exc:
        print(f"readyz: {exc}", file=sys.stderr)
        return 1
    finally:
        connection.close()
    if response.status != 200:
        print(f"readyz: {response.status} {body}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
