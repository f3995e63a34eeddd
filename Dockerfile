# Hobbies Community: one image for the web processes (`web`, the default) and the Chime bridge
# (`worker`); see docs/operations.md, "Run in production".
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOBBIES_VAR_DIR=/var/lib/hobbies \
    DJANGO_STATIC_ROOT=/app/staticfiles \
    DJANGO_STATIC_MANIFEST=1 \
    PORT=8000

WORKDIR /app

# Only the locked run-time dependencies, each checked against its hash.
COPY requirements.txt .
RUN pip install --require-hashes --no-deps -r requirements.txt

RUN groupadd --system --gid 10001 hobbies \
    && useradd --system --uid 10001 --gid hobbies --home-dir /app --shell /usr/sbin/nologin hobbies \
    && mkdir -p /var/lib/hobbies \
    && chown hobbies:hobbies /var/lib/hobbies

COPY . .

# Hashed, compressed static files, made once here. The throwaway key keeps the settings from
# writing a generated one into the image; the real DJANGO_SECRET_KEY comes at run time. The
# app user owns them so that `entrypoint.sh manage setup` can collect again.
RUN DJANGO_SECRET_KEY=collectstatic-only-not-a-secret \
    python manage.py collectstatic --noinput --verbosity 0 \
    && chown -R hobbies:hobbies /app/staticfiles \
    && rm -rf /var/lib/hobbies/* \
    && chmod +x deploy/entrypoint.sh

USER 10001:10001
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "deploy/healthcheck.py"]

ENTRYPOINT ["/app/deploy/entrypoint.sh"]
CMD ["web"]
