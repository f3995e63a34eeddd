"""Prints this Amazon ECS task's private IPv4 address, from the task metadata endpoint (v4).

`entrypoint.sh` adds it to DJANGO_ALLOWED_HOSTS: the load balancer's health checks name the
task's own address as their Host, which Django refuses unless it is allowed. Exits 1, printing
why on stderr, when the endpoint does not answer or names no address.
"""

import json
import os
import sys
import urllib.request


def main() -> int:
    url = os.environ.get("ECS_CONTAINER_METADATA_URI_V4", "")
    if not url.startswith("http://"):
        print(
            f"ecs_address: ECS_CONTAINER_METADATA_URI_V4 is not http://: {url[:60]!r}",
            file=sys.stderr,
        )
        return 1
    try:
        # The scheme is checked above; ECS serves the endpoint on a link-local address.
        with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310
            metadata = json.load(response)
    except (OSError, ValueError) as exc:
        print(f"ecs_address: {url}: {exc}", file=sys.stderr)
        return 1
    for network in metadata.get("Networks") or []:
        for address in network.get("IPv4Addresses") or []:
            print(address)
            return 0
    print(f"ecs_address: {url} names no IPv4 address", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
