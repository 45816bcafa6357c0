# Mail Watchdog daemon image.
#
# The image contains aioimaplib (GPL-3.0-only) combined with our code, so the
# daemon as shipped here is conveyed under GPL-3.0; the installed .py files
# are its corresponding source, and every package keeps its licence files.
#
# NOTE: pin the base image by digest (python:3.12-slim-bookworm@sha256:...)
# in your registry mirror; the tag alone is not reproducible.
FROM python:3.12-slim-bookworm

RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY watchdog ./watchdog
COPY rules ./rules
RUN pip install --no-cache-dir . \
    && groupadd --system --gid 10001 watchdog \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data watchdog \
    && mkdir -p /data && chown 10001:10001 /data

ENV WATCHDOG_RULES_DIR=/app/rules \
    WATCHDOG_DATABASE__URL=sqlite:////data/mail-watchdog.db \
    WATCHDOG_HTTP__HOST=0.0.0.0 \
    WATCHDOG_LOG__FORMAT=json \
    PYTHONDONTWRITEBYTECODE=1

USER 10001:10001
VOLUME ["/data"]
EXPOSE 9465
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:9465/healthz', timeout=4).status != 200)"]

ENTRYPOINT ["/usr/bin/tini", "--", "mail-watchdog"]
CMD ["run", "--config", "/config/mail-watchdog.toml"]
