# syntax=docker/dockerfile:1
#
# The syncer image: `syncer run` by default, reading its apps from /etc/syncer/apps.yaml.
#
#   docker build -t syncer:0.1.0 .
#   docker run --rm syncer:0.1.0 --help
#
# Probes (see charts/syncer/templates/deployment.yaml): liveness GET /healthz (the process serves
# HTTP), readiness GET /readyz (configuration loaded, API server reachable; 200 on the leader
# and on standbys alike, the body says which). Both on port 8080.

ARG PYTHON_IMAGE=python:3.11-slim
ARG GO_IMAGE=golang:1.26-bookworm

# Kustomize renders directories that hold a kustomization.yaml. Downloaded in a stage of its
# own so that curl does not end up in the final image; checked against the release checksums.
FROM ${PYTHON_IMAGE} AS kustomize
ARG KUSTOMIZE_VERSION=5.4.3
ARG TARGETARCH=amd64
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /tmp/kustomize
RUN base="https://github.com/kubernetes-sigs/kustomize/releases/download/kustomize%2Fv${KUSTOMIZE_VERSION}" \
 && file="kustomize_v${KUSTOMIZE_VERSION}_linux_${TARGETARCH}.tar.gz" \
 && curl -fsSLO "${base}/${file}" \
 && curl -fsSLO "${base}/checksums.txt" \
 && grep " ${file}\$" checksums.txt | sha256sum -c - \
 && tar -xzf "${file}" kustomize \
 && ./kustomize version

# helm renders Helm charts (`helm template` only): built from the Go module pinned in tools/helm
# (go.mod and go.sum, so every module is checked against its hash), as tools/build.sh builds it.
FROM ${GO_IMAGE} AS helm
WORKDIR /src/tools/helm
COPY tools/helm/ ./
RUN version="$(go list -m -f '{{.Version}}' helm.sh/helm/v3)" \
 && CGO_ENABLED=0 GOFLAGS="-mod=readonly -trimpath -buildvcs=false" \
    go build -ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=${version}" -o /out/helm helm.sh/helm/v3/cmd/helm \
 && /out/helm version --short

# sops decrypts SOPS-encrypted manifests (an App's spec.decryption): built the same way from
# the Go module pinned in tools/sops.
FROM ${GO_IMAGE} AS sops
WORKDIR /src/tools/sops
COPY tools/sops/ ./
RUN CGO_ENABLED=0 GOFLAGS="-mod=readonly -trimpath -buildvcs=false" \
    go build -ldflags="-s -w" -o /out/sops github.com/getsops/sops/v3/cmd/sops \
 && /out/sops --version --disable-version-check

FROM ${PYTHON_IMAGE}

# git fetches the sources; openssh-client serves ssh:// and git@host:path repositories.
RUN apt-get update \
 && apt-get install -y --no-install-recommends git openssh-client \
 && rm -rf /var/lib/apt/lists/*
COPY --from=kustomize /tmp/kustomize/kustomize /usr/local/bin/kustomize
COPY --from=helm /out/helm /usr/local/bin/helm
COPY --from=sops /out/sops /usr/local/bin/sops

# Dependencies at the versions and hashes pinned in requirements/runtime.txt (scripts/lock),
# the build backend included, so the project's own build downloads nothing unpinned.
WORKDIR /src
COPY requirements/runtime.txt ./requirements/runtime.txt
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements/runtime.txt
COPY pyproject.toml README.md ./
COPY syncer ./syncer
RUN pip install --no-cache-dir --no-deps --no-build-isolation . \
 && cd / && rm -rf /src

# A fixed numeric UID, so that `runAsNonRoot` can verify it without resolving names.
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/syncer syncer \
 && mkdir -p /var/cache/syncer \
 && chown syncer:syncer /var/cache/syncer
ENV HOME=/home/syncer \
    SYNCER_CACHE_DIR=/var/cache/syncer \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
WORKDIR /home/syncer

EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"]

ENTRYPOINT ["syncer"]
CMD ["run"]
