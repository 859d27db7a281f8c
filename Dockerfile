# trigger-daemon: docker build -t trigger-daemon . ; run it as README.md's Docker section shows.
# The API listens on 0.0.0.0 here, so the daemon refuses to start without api.auth (a token).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY trigger_daemon ./trigger_daemon
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/trigger-daemon --create-home trigger-daemon
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
# The config file (and its triggers_files) is mounted here; the SQLite store, when used,
# lives in the writable home directory.
ENV TRIGGER_DAEMON_CONFIG=/etc/trigger-daemon/trigger-daemon.yaml \
    TRIGGER_DAEMON_API__HOST=0.0.0.0 \
    TRIGGER_DAEMON_STORE__URL=sqlite:////var/lib/trigger-daemon/trigger-daemon.db \
    PYTHONUNBUFFERED=1
USER 10001
WORKDIR /var/lib/trigger-daemon
EXPOSE 8081
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('TRIGGER_DAEMON_API__PORT', '8081'), timeout=2)"]
ENTRYPOINT ["trigger-daemon"]
CMD ["run"]
