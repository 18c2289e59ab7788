# Agent Bruno service images: one build target per service over a shared builder.
#
#   docker build --target edge -t bruno-edge .
#   targets: edge, embedding, retrieval, generation
#
# The same file serves plain Docker and the Dagger pipeline (pipelines/bruno_pipelines/images.py).
# There is deliberately no "# syntax=" line: the Dockerfile frontend built into BuildKit (and
# Dagger) is used, so a build needs no registry beyond the base image.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------------------------
# builder: Python + uv + the workspace manifests. Sources come later, per service, so that the
# dependency layer is rebuilt only when uv.lock or a pyproject.toml changes.
FROM ${PYTHON_IMAGE} AS builder
ARG UV_VERSION=0.13.9
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
# binutils (strip, readelf) for prune-venv; the builder only, never the runtime stage.
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends binutils \
    && rm -rf /var/lib/apt/lists/*
# Bytecode is compiled at build time because the runtime user cannot write into the venv.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11
WORKDIR /app
# pipefail: a failing step inside a RUN pipeline fails the build.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN mkdir /app/workspace-layer
# uv resolves the whole workspace, so every member's manifest must be present.
COPY pyproject.toml uv.lock ./
COPY packages/proto/pyproject.toml packages/proto/
COPY packages/core/pyproject.toml packages/core/
COPY packages/extract/pyproject.toml packages/extract/
COPY packages/testing/pyproject.toml packages/testing/
COPY packages/cli/pyproject.toml packages/cli/
COPY services/embedding/pyproject.toml services/embedding/
COPY services/retrieval/pyproject.toml services/retrieval/
COPY services/generation/pyproject.toml services/generation/
COPY services/edge/pyproject.toml services/edge/
COPY pipelines/pyproject.toml pipelines/
# What a build stage's workspace packages installed, staged for the image's second venv layer.
COPY scripts/stage-workspace-layer.sh /usr/local/bin/stage-workspace-layer
# What a running service never reads (test suites, headers, debug symbols, ...), removed from
# the dependency venv; each rule says why it is safe.
COPY scripts/prune-venv.sh /usr/local/bin/prune-venv

# Per service, two stages that become the image's two venv layers:
#   <service>-deps   the locked third-party dependencies only (rebuilt when uv.lock changes),
#                    pruned by prune-venv;
#   <service>-build  adds the workspace packages, non-editable, and stages exactly what they
#                    installed (from their RECORDs: package directories with their bytecode,
#                    *.dist-info, the console scripts in bin/) under /app/workspace-layer/ at
#                    the same paths, so a code-only change rebuilds one small layer.
FROM builder AS edge-deps
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-editable --no-dev --no-install-workspace --package bruno-edge
RUN prune-venv

FROM edge-deps AS edge-build
COPY packages/proto/src packages/proto/src
COPY packages/core/src packages/core/src
COPY packages/extract/src packages/extract/src
COPY services/edge/src services/edge/src
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-editable --no-dev --package bruno-edge
RUN stage-workspace-layer bruno_proto bruno_core bruno_extract bruno_edge

FROM builder AS embedding-deps
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-editable --no-dev --no-install-workspace --package bruno-embedding
RUN prune-venv

# The default model (all-MiniLM-L6-v2-int8-dynamic) quantized from the packaged weights at
# image build time, so a pod (read-only root file system, a small /tmp) starts without building
# it and without a writable volume. Only the quantizer's module is copied in: the ~60 MB layer
# is rebuilt when the dependencies or that module change, not with every code change.
FROM embedding-deps AS embedding-model
COPY services/embedding/src/bruno_embedding/quantized_model.py /tmp/quantize/
RUN cd /tmp/quantize \
    && /app/.venv/bin/python -c "from pathlib import Path; import quantized_model as q; q.dynamic_int8_model(Path('/opt/bruno/embedding'))" \
    && chmod -R a+rX,go-w /opt/bruno/embedding \
    && ls -l /opt/bruno/embedding

FROM embedding-deps AS embedding-build
COPY packages/proto/src packages/proto/src
COPY packages/core/src packages/core/src
COPY services/embedding/src services/embedding/src
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-editable --no-dev --package bruno-embedding
RUN stage-workspace-layer bruno_proto bruno_core bruno_embedding

FROM builder AS retrieval-deps
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-editable --no-dev --no-install-workspace --package bruno-retrieval
RUN prune-venv

FROM retrieval-deps AS retrieval-build
COPY packages/proto/src packages/proto/src
COPY packages/core/src packages/core/src
COPY packages/extract/src packages/extract/src
COPY services/retrieval/src services/retrieval/src
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-editable --no-dev --package bruno-retrieval
RUN stage-workspace-layer bruno_proto bruno_core bruno_extract bruno_retrieval

FROM builder AS generation-deps
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-editable --no-dev --no-install-workspace --package bruno-generation
RUN prune-venv

FROM generation-deps AS generation-build
COPY packages/proto/src packages/proto/src
COPY packages/core/src packages/core/src
COPY services/generation/src services/generation/src
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-editable --no-dev --package bruno-generation
RUN stage-workspace-layer bruno_proto bruno_core bruno_generation

# ---------------------------------------------------------------------------------------------
# runtime: the same Python, no uv, no compiler; each service stage adds only its venv, in
# two layers: the dependencies, then the workspace packages.
FROM ${PYTHON_IMAGE} AS runtime
ARG IMAGE_SOURCE=""
ARG IMAGE_REVISION=unknown
ARG IMAGE_VERSION=dev
LABEL org.opencontainers.image.source="${IMAGE_SOURCE}" \
      org.opencontainers.image.revision="${IMAGE_REVISION}" \
      org.opencontainers.image.version="${IMAGE_VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="Agent Bruno"
RUN groupadd --system --gid 10001 bruno \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin bruno
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /app

FROM runtime AS edge
LABEL org.opencontainers.image.title="bruno-edge" \
      org.opencontainers.image.description="Agent Bruno edge: the public REST/SSE API."
COPY --from=edge-deps /app/.venv /app/.venv
COPY --from=edge-build /app/workspace-layer/ /
# With no BRUNO_API_KEYS the edge itself still serves loopback only (see the README).
ENV BRUNO_EDGE_HOST=0.0.0.0 \
    BRUNO_EDGE_PORT=8080
EXPOSE 8080
USER 10001:10001
HEALTHCHECK --interval=15s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('BRUNO_EDGE_PORT', '8080'), timeout=4)"]
CMD ["bruno-edge"]

FROM runtime AS embedding
LABEL org.opencontainers.image.title="bruno-embedding" \
      org.opencontainers.image.description="Agent Bruno embedding service: texts to vectors."
COPY --from=embedding-deps /app/.venv /app/.venv
# Root's and read-only to the service: the model file is checked against its manifest at start
# and used as it is (a service pointed at a writable BRUNO_EMBEDDING_CACHE_DIR builds its own).
COPY --from=embedding-model /opt/bruno/embedding /opt/bruno/embedding
COPY --from=embedding-build /app/workspace-layer/ /
ENV BRUNO_EMBEDDING_LISTEN_ADDR=0.0.0.0:50051 \
    BRUNO_EMBEDDING_CACHE_DIR=/opt/bruno/embedding
EXPOSE 50051
USER 10001:10001
# The start period covers loading the ONNX model.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, sys, grpc; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; port = os.environ['BRUNO_EMBEDDING_LISTEN_ADDR'].rpartition(':')[2]; r = g.HealthStub(grpc.insecure_channel('127.0.0.1:' + port)).Check(h.HealthCheckRequest(), timeout=4); sys.exit(r.status != h.HealthCheckResponse.SERVING)"]
CMD ["bruno-embedding"]

FROM runtime AS retrieval
LABEL org.opencontainers.image.title="bruno-retrieval" \
      org.opencontainers.image.description="Agent Bruno retrieval service: chunking, LanceDB storage and search."
COPY --from=retrieval-deps /app/.venv /app/.venv
COPY --from=retrieval-build /app/workspace-layer/ /
# LanceDB lives on /data: mount a volume (a PersistentVolume in Kubernetes) there, or point
# BRUNO_LANCEDB_URI at object storage (s3://...).
RUN install -d -o 10001 -g 10001 -m 0750 /data
VOLUME ["/data"]
ENV BRUNO_RETRIEVAL_LISTEN_ADDR=0.0.0.0:50052 \
    BRUNO_LANCEDB_URI=/data/lancedb
EXPOSE 50052
USER 10001:10001
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, grpc; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; port = os.environ['BRUNO_RETRIEVAL_LISTEN_ADDR'].rpartition(':')[2]; r = g.HealthStub(grpc.insecure_channel('127.0.0.1:' + port)).Check(h.HealthCheckRequest(), timeout=4); sys.exit(r.status != h.HealthCheckResponse.SERVING)"]
CMD ["bruno-retrieval"]

FROM runtime AS generation
LABEL org.opencontainers.image.title="bruno-generation" \
      org.opencontainers.image.description="Agent Bruno generation service: streamed answers from Ollama or an extractive fallback."
COPY --from=generation-deps /app/.venv /app/.venv
COPY --from=generation-build /app/workspace-layer/ /
ENV BRUNO_GENERATION_LISTEN_ADDR=0.0.0.0:50053
EXPOSE 50053
USER 10001:10001
HEALTHCHECK --interval=15s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, sys, grpc; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; port = os.environ['BRUNO_GENERATION_LISTEN_ADDR'].rpartition(':')[2]; r = g.HealthStub(grpc.insecure_channel('127.0.0.1:' + port)).Check(h.HealthCheckRequest(), timeout=4); sys.exit(r.status != h.HealthCheckResponse.SERVING)"]
CMD ["bruno-generation"]
