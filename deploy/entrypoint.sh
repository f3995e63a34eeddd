#!/bin/sh
# Starts one process of Hobbies Community, by its first argument:
#   web     daphne on $BIND_ADDRESS:$PORT (0.0.0.0:8000 by default), serving pages and sockets
#   worker  the Amazon Chime SDK messaging bridge (`manage.py chime_bridge`)
#   manage  any other management command: `entrypoint.sh manage grant_admin alice`
# On Amazon ECS it first adds the task's own address to DJANGO_ALLOWED_HOSTS (deploy/ecs_address.py).
# With MIGRATE_ON_START=1 it applies the database migrations first. Set it on one process only
# (or run `entrypoint.sh manage migrate` once): `migrate` takes no lock, so two processes
# migrating at once can collide.
set -eu

cd "$(dirname "$0")/.."

role="${1:-web}"
if [ "$#" -gt 0 ]; then
    shift
fi

case "$role" in
    web | worker | manage) ;;
    *)
        echo "entrypoint.sh: unknown process '$role': web, worker or manage" >&2
        exit 64
        ;;
esac

# On Amazon ECS (awsvpc), the load balancer's health checks carry the task's own address as
# their Host, which Django refuses unless it is allowed: add it to DJANGO_ALLOWED_HOSTS.
if [ -n "${ECS_CONTAINER_METADATA_URI_V4:-}" ] && [ -n "${DJANGO_ALLOWED_HOSTS:-}" ]; then
    if address="$(python deploy/ecs_address.py)"; then
        DJANGO_ALLOWED_HOSTS="$DJANGO_ALLOWED_HOSTS,$address"
        export DJANGO_ALLOWED_HOSTS
    fi
fi

if [ "${MIGRATE_ON_START:-0}" = "1" ]; then
    python manage.py migrate --noinput
fi

case "$role" in
    web)
        exec python -m daphne --bind "${BIND_ADDRESS:-0.0.0.0}" --port "${PORT:-8000}" \
            "$@" hobbies.asgi:application
        ;;
    worker)
        exec python manage.py chime_bridge "$@"
        ;;
    manage)
        exec python manage.py "$@"
        ;;
esac
