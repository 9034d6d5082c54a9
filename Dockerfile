# One image for Lambda (container image), Lambda Managed Instances and ECS.
#
#   docker build -t runtime-worker .                                   # echo handler, CPU
#   docker build --build-arg EXTRAS=embed -t runtime-worker:embed .    # + MiniLM, CPU torch
#   docker build --build-arg EXTRAS=embed \
#       --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124 -t runtime-worker:gpu .
#
# With AWS_LAMBDA_RUNTIME_API set (Lambda, LMI) `worker HANDLER` runs Lambda mode; without
# it (ECS) it serves HTTP on 8080. `CMD ["sqs", "handlers.sqs.handler", "--queue-url", …]`
# makes it an SQS worker. It runs as a non-root user on a read-only root filesystem: the
# only writes go to /tmp (per-worker and per-invocation scratch directories).

ARG PYTHON_VERSION=3.13

FROM python:${PYTHON_VERSION}-slim-bookworm AS builder
# A C compiler for the Cython extension (the hot path's classifier). Debian's security
# updates move these versions; the builder's output is the wheel, not these packages.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY ext/ ext/
COPY worker/ worker/
COPY handlers/ handlers/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
# EXTRAS: comma-separated extras of runtime-worker (embed, inference, aws), or empty.
ARG EXTRAS=""
# Where torch comes from: the CPU index keeps the image small; a CUDA index for GPUs.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    WORKER_HOST=0.0.0.0 \
    WORKER_PORT=8080 \
    WORKER_ADMIN_PORT=8081 \
    HF_HUB_OFFLINE=1 \
    HOME=/tmp
COPY --from=builder /dist/ /dist/
# The wheel was built above; its dependencies carry the project's own version ranges.
# hadolint ignore=DL3013
RUN set -eux; \
    wheel="$(ls /dist/runtime_worker-*.whl)"; \
    if [ -n "$EXTRAS" ]; then target="${wheel}[${EXTRAS}]"; else target="$wheel"; fi; \
    pip install --no-cache-dir --extra-index-url "$TORCH_INDEX" "$target"; \
    rm -rf /dist; \
    useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin worker
# Handlers of your own: COPY them here (LAMBDA_TASK_ROOT is on the import path), then
# `RUN python -m compileall -q /var/task`: with PYTHONDONTWRITEBYTECODE and a read-only
# root, source left uncompiled is compiled again at every cold start (pip compiled ours).
ENV LAMBDA_TASK_ROOT=/var/task
WORKDIR /var/task
USER 10001
# 8081 is the admin listener (metrics, stats, dashboard), on 127.0.0.1 unless
# WORKER_ADMIN_HOST says otherwise: publish it only inside a private network.
EXPOSE 8080 8081
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/_worker/health' % os.environ.get('WORKER_PORT', '8080'), timeout=2)"]
ENTRYPOINT ["python", "-m", "worker"]
CMD ["handlers.echo.handler"]
