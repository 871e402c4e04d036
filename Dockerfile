# syntax=docker/dockerfile:1
# The kalshi_pipeline image: one image for the gRPC code server (its default command), the run workers the
# run launcher starts from it, and (in deploy/compose.yaml and deploy/helm/values.yaml) the webserver and
# the daemon, so every process runs the same Dagster version. Build it from the repository root:
#
#   docker build -t kalshi-pipeline:$(git rev-parse --short HEAD) .
#
# No secret is baked in: Kalshi keys and database passwords arrive as environment variables at run time
# (Kubernetes secrets, or the compose env file); see deploy/README.md.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# ---- build: a virtualenv with the dependencies first, the project's code last --------------------------
FROM ${PYTHON_IMAGE} AS build

# Dagster, its libraries and the Helm chart are released in lockstep (1.13.N <-> 0.29.N <-> chart 1.13.N);
# deploy/helm/values.yaml targets the same chart version.
ARG DAGSTER_VERSION=1.13.27
ARG DAGSTER_LIBS_VERSION=0.29.27

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv

WORKDIR /src

# Dependency layer: only pyproject.toml, so a code change does not reinstall the dependencies. The runtime
# dependencies are read from pyproject.toml and installed together with the pinned Dagster release and the
# run launchers' libraries (dagster-k8s for Kubernetes, dagster-docker for deploy/compose.yaml).
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
        "dagster==${DAGSTER_VERSION}" \
        "dagster-webserver==${DAGSTER_VERSION}" \
        "dagster-graphql==${DAGSTER_VERSION}" \
        "dagster-postgres==${DAGSTER_LIBS_VERSION}" \
        "dagster-k8s==${DAGSTER_LIBS_VERSION}" \
        "dagster-docker==${DAGSTER_LIBS_VERSION}"

# Code layer: the package itself, without touching the dependencies installed above.
COPY README.md ./
COPY kalshi_pipeline ./kalshi_pipeline
RUN pip install --no-deps . && python -c "import kalshi_pipeline.definitions"

# ---- runtime: the virtualenv on a clean base, as an unprivileged user ----------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home

RUN groupadd --system --gid 10001 dagster \
    && useradd --system --uid 10001 --gid dagster --home-dir /opt/dagster --shell /usr/sbin/nologin dagster \
    && mkdir -p /opt/dagster/app /opt/dagster/dagster_home \
    && chown -R dagster:dagster /opt/dagster

COPY --from=build /opt/venv /opt/venv

WORKDIR /opt/dagster/app
USER 10001:10001

EXPOSE 4000

# The code location, served over gRPC to the webserver and the daemon.
CMD ["dagster", "api", "grpc", "-m", "kalshi_pipeline.definitions", "-h", "0.0.0.0", "-p", "4000"]
