# syntax=docker/dockerfile:1.7
# CAP Verifier API: multi-stage image, runs as uid 1000 on a read-only root filesystem.
# Build from the repository root:
#   docker build -f service/Dockerfile --build-arg BUILD_SHA=$(git rev-parse HEAD) -t cap-verifier .
# Writable paths at run time: /tmp (emptyDir) and /data (the SQLite registry volume).
# No secret is baked in: TLS keys, database URLs and OAuth2 settings come from mounts or env.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv PIP_DISABLE_PIP_VERSION_CHECK=1
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /src
# Dependencies first (cached layer), then the project itself, never the dev group.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project --no-editable
COPY service ./service
COPY openapi ./openapi
RUN uv sync --frozen --no-dev --no-editable

FROM ${PYTHON_IMAGE} AS runtime
ARG BUILD_SHA=""
LABEL org.opencontainers.image.title="cap-verifier" \
      org.opencontainers.image.version="0.11.0" \
      org.opencontainers.image.revision="${BUILD_SHA}"
RUN groupadd --gid 1000 cap-verifier \
 && useradd --uid 1000 --gid 1000 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin cap-verifier \
 && install -d -o 1000 -g 1000 -m 0750 /data \
 && rm -rf /var/lib/apt/lists/* /root/.cache
COPY --from=build --chown=0:0 /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TMPDIR=/tmp \
    CAP_VERIFIER_BUILD=${BUILD_SHA} \
    CAP_VERIFIER_CONFIG=/etc/cap-verifier/config.yaml \
    CAP_VERIFIER_REGISTRY__URL=sqlite:////data/registry.db
USER 1000:1000
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD ["cap-verifier", "probe"]
ENTRYPOINT ["cap-verifier"]
CMD ["serve"]
