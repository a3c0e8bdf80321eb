# statebox's server image: `statebox serve` on 0.0.0.0:8787, the store in the volume
# /var/lib/statebox (STATEBOX_HOME: the default SQLite store, the secret key file), bearer
# tokens from /etc/statebox/tokens.yaml (mount yours there). See docs/install.md.
#
#   docker build -t statebox .
#   docker run -d --name statebox -p 127.0.0.1:8787:8787 -v statebox-data:/var/lib/statebox \
#     -v "$PWD/tokens.yaml:/etc/statebox/tokens.yaml:ro" statebox
#
# Any builder builds it, the legacy one too: no `RUN --mount`, no `# syntax=` line (which
# would pull a frontend image at every build).

# Stage 1: statebox and the extras the image serves with (server, postgres, secrets),
# installed from this tree into the virtual environment /opt/statebox. Only this stage
# has the source and pip's work; the image gets the environment alone.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m venv /opt/statebox \
 && /opt/statebox/bin/pip install --no-cache-dir ".[server,postgres,secrets]"

# Stage 2: the image: the same base, the environment copied in, a user of its own.
FROM python:3.11-slim
COPY --from=build /opt/statebox /opt/statebox
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/statebox \
      --shell /usr/sbin/nologin statebox \
 && mkdir -p /var/lib/statebox /etc/statebox \
 && chown statebox:statebox /var/lib/statebox \
 && chmod 0700 /var/lib/statebox
ENV PATH=/opt/statebox/bin:$PATH \
    STATEBOX_HOME=/var/lib/statebox \
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
