# The operator's image: the wheel and its dependencies in a virtual environment, on a slim
# Python with nothing else to run, install or compile with.
#
# What the final image is made for, and how each point is met:
#
# 1. It runs as uid/gid 1001 (the user `hardening-operator`), never as root. The user has a
#    passwd entry because Kopf names its peering identity after the user when no POD_ID is
#    set, and Python cannot look up a uid that has none.
# 2. It runs with a read-only root filesystem and only /tmp writable (an emptyDir in the
#    cluster). Every module is compiled when it is installed and PYTHONDONTWRITEBYTECODE
#    stops Python from trying to write more; HOME and TMPDIR point at /tmp, where the
#    Kubernetes client puts the certificates of a kubeconfig it reads.
# 3. It holds no package manager, no package cache and no compiler: pip, setuptools and
#    wheel are uninstalled, ensurepip (which bundles pip) and apt/dpkg are removed. The
#    dpkg status database stays, so that image scanners can still list what is installed.
#
# The base is pinned by version and by the digest of its multi-platform index, so that both
# stages build from the same bytes. Renovating it means changing both together.

FROM python:3.11.15-slim-bookworm@sha256:d29f48a31a8b408ed19272ca1e7b10ebae13b240a27e862d3d4217c528e2e0c3 AS runtime

# ------------------------------------------------------------------------------------------
# Build: install the project into /opt/hardening-operator, a venv that never gets pip.
FROM runtime AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
# The base image's pip installs into the venv from outside it (`--python`), so the venv
# needs no pip of its own. The dependencies are the ranges pyproject.toml declares.
RUN python -m venv --without-pip /opt/hardening-operator \
    && python -m pip --python /opt/hardening-operator/bin/python install --no-cache-dir .

# ------------------------------------------------------------------------------------------
# Final: the runtime, the venv, and the user; nothing to install anything with.
FROM runtime
LABEL org.opencontainers.image.title="hardening-operator" \
      org.opencontainers.image.description="Keeps Kubernetes namespaces as a HardeningProfile declares." \
      org.opencontainers.image.licenses="Apache-2.0"

RUN python -m pip uninstall --yes --no-cache-dir pip setuptools wheel \
    && rm -rf /usr/local/lib/python3.11/ensurepip /root/.cache \
    && groupadd --gid 1001 hardening-operator \
    && useradd --uid 1001 --gid 1001 --no-create-home --home-dir /tmp \
               --shell /usr/sbin/nologin hardening-operator \
    && rm -rf /usr/bin/apt* /usr/bin/dpkg* /usr/lib/apt /usr/lib/dpkg /etc/apt \
              /var/lib/apt /var/cache/apt /var/cache/debconf /var/log/apt /var/log/dpkg.log

COPY --from=build /opt/hardening-operator /opt/hardening-operator

ENV PATH=/opt/hardening-operator/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp

WORKDIR /opt/hardening-operator
USER 1001:1001

# 8080: Kopf's liveness endpoint; 9090: Prometheus metrics.
EXPOSE 8080 9090

# For `docker run` and the like; Kubernetes ignores it and probes the same endpoint itself.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]

ENTRYPOINT ["hardening-operator", "run"]
# The default arguments serve the liveness probe that HEALTHCHECK asks; the manifests pass
# their own arguments, which replace these.
CMD ["--liveness", "http://0.0.0.0:8080/healthz"]
