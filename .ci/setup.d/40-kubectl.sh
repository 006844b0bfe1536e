#!/usr/bin/env bash
# The deploy/ manifests are rendered by `kubectl kustomize` (offline; no cluster is needed).
set -euo pipefail
if ! command -v kubectl >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends kubectl
fi
echo "kubectl ready: $(kubectl version --client 2>/dev/null | tr '\n' ' ')"
