# One image for every service of docker-compose.yml (the Executors, the indexer's shard head and the gateway).
#   docker compose up --build                       (a normal machine: BASE python:3.11-slim from Docker Hub)
#   podman build --build-arg BASE=localdebian:bookworm --build-arg TORCH_INDEX= \
#     -v /opt/wheels:/host/wheels:ro -v /etc/ssl/certs/ca-certificates.crt:/host/ca.crt:ro -t covidqa:latest .
#                                                   (no image registry: tests/compose/compose_stack.py)
# BASE is a Debian bookworm image with or without Python 3.11; what is missing is installed from Debian.
# Optional build mounts: /host/ca.crt (a CA bundle for pip behind an intercepting proxy) and /host/wheels (local
# wheels, e.g. the torch CPU wheel; then TORCH_INDEX= skips the PyTorch index).
ARG BASE=python:3.11-slim

# --- build stage: compilers (hnswlib has no wheel on PyPI) and the virtual environment with the pinned requirements
FROM ${BASE} AS build
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN set -eux; apt-get update; \
    packages='g++ make'; \
    if ! command -v python3 >/dev/null; then packages="$packages python3 python3-venv python3-dev"; fi; \
    apt-get install -y --no-install-recommends $packages; rm -rf /var/lib/apt/lists/*; \
    python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY requirements.txt /tmp/requirements.txt
# requirements first (their own layer): editing the source does not reinstall them
RUN set -eux; \
    if [ -f /host/ca.crt ]; then export PIP_CERT=/host/ca.crt; fi; \
    if [ -d /host/wheels ]; then export PIP_FIND_LINKS=/host/wheels; fi; \
    pip install torch==2.13.0 ${TORCH_INDEX:+--index-url "$TORCH_INDEX"}; \
    pip install -r /tmp/requirements.txt; \
    python -c "import torch; assert not torch.version.cuda, 'a CUDA torch was installed'"

# --- runtime stage: Python, the environment, the code and the shipped reader; runs as the user covidqa
FROM ${BASE}
ENV DEBIAN_FRONTEND=noninteractive
RUN set -eux; \
    if ! command -v python3 >/dev/null; then \
      apt-get update; apt-get install -y --no-install-recommends python3; rm -rf /var/lib/apt/lists/*; \
    fi; \
    useradd --create-home --uid 1000 --shell /bin/bash covidqa; \
    mkdir -p /home/covidqa/workspace; chown covidqa:covidqa /home/covidqa/workspace
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY . /app
# (owned by root, read-only for the service; the shipped reader's checksum is checked here, not only at first use)
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps --no-build-isolation -e /app \
 && /opt/venv/bin/python -c "from covidqa.models.shipped import verify, SHIPPED_READER_FILE; verify(SHIPPED_READER_FILE)"
# The state (models, index, labels; the shipped reader is unpacked there on first use) lives in $COVIDQA_HOME:
# docker-compose.yml mounts a named volume there, which starts as this image's empty directory owned by covidqa
# (`docker run -v covidqa-home:/home/covidqa/workspace ...` does the same; no VOLUME line: services that keep no
# state would each get an anonymous volume that `down -v` leaves behind).
ENV PATH=/opt/venv/bin:$PATH HF_HUB_OFFLINE=1 COVIDQA_HOME=/home/covidqa/workspace COVIDQA_HTTP_PORT=8080 \
    PYTHONUNBUFFERED=1
USER covidqa
EXPOSE 8080 54321
# The gateway's HTTP side answers GET /dry_run once every Executor is reachable (the Executors' services override it)
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/dry_run' % os.environ['COVIDQA_HTTP_PORT'], timeout=4)"
CMD ["jina", "flow", "--uses", "flow.yml"]
