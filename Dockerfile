FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
# The NBD data path: libnbd and its Python bindings (linked into this Python below by
# importer.nbdlib), nbdkit and qemu-utils to serve and inspect images, and nbdkit's
# Python plugin for the front end that serves destination volumes (importer/frontend).
RUN apt-get update \
 && apt-get install -y --no-install-recommends nbdkit nbdkit-plugin-python libnbd-bin \
    python3-libnbd qemu-utils \
 && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
COPY config config
COPY importer importer
COPY templates templates
COPY static static
COPY manage.py ./
# collectstatic with debug off, as tests/test_production.py runs it; the throwaway key and
# var folder keep any key or broker folder out of the image (the key is used for nothing).
RUN pip install --no-cache-dir . \
 && python -m importer.nbdlib \
 && DJANGO_DEBUG=false DJANGO_SECRET_KEY=collectstatic-only FERRY_VAR_DIR=/tmp/build \
    python manage.py collectstatic --noinput \
 && test -f staticfiles/staticfiles.json \
 && rm -rf /tmp/build
# /pool is a worker's storage pool: a named volume mounted there starts with this owner, so
# the worker (user ferry) can create destinations in it.
RUN useradd --create-home ferry && mkdir -p /data /pool && chown ferry /data /pool
USER ferry
EXPOSE 8000
CMD ["gunicorn", "-c", "config/gunicorn.py", "config.wsgi"]
