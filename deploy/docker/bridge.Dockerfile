# Herald event bridge (herald bridge). Build from the repository root:
#   docker build -f deploy/docker/bridge.Dockerfile -t ghcr.io/herald/bridge:0.1.0 .

FROM python:3.11.13-slim-bookworm AS build
# PIP_CONSTRAINT (not only -c) so the isolated build environments of the local packages
# get the pinned hatchling as well.
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_CONSTRAINT=/src/constraints.txt
WORKDIR /src
RUN python -m venv /opt/herald
COPY constraints.txt ./
COPY libs/common ./libs/common
COPY services ./services
COPY cli ./cli
# The `herald` command (cli) depends on every service package, so all of them are named
# here: pip then takes them from these folders and never looks them up on an index.
RUN /opt/herald/bin/pip install -c constraints.txt \
    ./libs/common ./services/api ./services/gateway ./services/bridge ./cli

FROM python:3.11.13-slim-bookworm
ENV PATH=/opt/herald/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HERALD_DATA_DIR=/tmp/herald \
    HERALD_BRIDGE_HOST=0.0.0.0
RUN groupadd --system --gid 10001 herald \
    && useradd --system --uid 10001 --gid herald --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin herald
COPY --from=build /opt/herald /opt/herald
COPY deploy/docker/nats_connected.py /opt/herald/probes/nats_connected.py
USER 10001:10001
WORKDIR /tmp
# 8082: /healthz, /readyz, /metrics (HERALD_BRIDGE_METRICS_PORT)
EXPOSE 8082
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=4 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(\"http://127.0.0.1:%s/healthz\" % os.environ.get(\"HERALD_BRIDGE_METRICS_PORT\", \"8082\"), timeout=2)"]
ENTRYPOINT ["herald"]
CMD ["bridge"]
