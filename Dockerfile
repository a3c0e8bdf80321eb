# syntax=docker/dockerfile:1
# statebox's server image: `statebox serve` on 0.0.0.0:8787, the store in the volume
# /var/lib/statebox (STATEBOX_HOME: the default SQLite store, the secret key file), bearer
# tokens from /etc/statebox/tokens.yaml (mount yours there). See docs/install.md.
#
#   docker build -t statebox .
#   docker run -d --name statebox -p 127.0.0.1:8787:8787 -v statebox-data:/var/lib/statebox \
#     -v "$PWD/tokens.yaml:/etc/statebox/tokens.yaml:ro" statebox

# Stage 1: the wheels — statebox's own, built from this tree, and those of the extras the
# image serves with (server, postgres, secrets). Only this stage has pip's cache and the
# source; the image gets the wheels alone.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[server,postgres,secrets]"

# Stage 2: the image. Installed from the wheels with no index: nothing else comes in.
FROM python:3.11-slim
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels \
      "statebox[server,postgres,secrets]" \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/statebox \
      --shell /usr/sbin/nologin statebox \
 && mkdir -p /var/lib/statebox /etc/statebox \
 && chown statebox:statebox /var/lib/statebox \
 && chmod 0700 /var/lib/statebox
ENV STATEBOX_HOME=/var/lib/statebox \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# Not root: the server needs no privilege (8787 is above 1024), and the volume is its own.
USER statebox
WORKDIR /var/lib/statebox
VOLUME ["/var/lib/statebox"]
EXPOSE 8787
# No curl in the slim image: Python's urllib asks /healthz (which needs no token) on
# loopback, so the server's Host check lets it in. A non-200 answer raises: unhealthy.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8787/healthz', timeout=4)"]
ENTRYPOINT ["statebox"]
# A non-loopback address needs tokens (the server refuses to listen without them).
CMD ["serve", "--host", "0.0.0.0", "--port", "8787", "--tokens", "/etc/statebox/tokens.yaml"]
