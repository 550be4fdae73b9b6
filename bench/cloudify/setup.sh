#!/usr/bin/env bash
# Idempotent: create bench/.venv-cloudify and install Cloudify's local-mode runtime.
# Usage: bash bench/cloudify/setup.sh   (PYTHON=python3.11 to pick an interpreter)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${HERE}/../.venv-cloudify"
PYTHON="${PYTHON:-python3}"

# cloudify-common 7.0.5's "dispatcher" extra requires networkx>2,<3;
# 2.8.8 is the last 2.x release and the one pip resolves. Pin it so a bare
# "networkx" never drifts to 3.x (which the extra forbids).
CLOUDIFY_COMMON="cloudify-common[dispatcher]==7.0.5"
NETWORKX="networkx==2.8.8"
# dsl_parser/functions.py does `import pkg_resources` but cloudify-common does
# not declare setuptools. A Python 3.11 venv ships setuptools 65.5 (so this is
# a no-op here); a 3.12+ venv has none and the DSL parser would fail to import.
# <81 keeps a setuptools that still ships pkg_resources.
SETUPTOOLS="setuptools<81"

start=$(date +%s%N)
if [[ ! -x "${VENV}/bin/python" ]]; then
    "${PYTHON}" -m venv "${VENV}"
fi
"${VENV}/bin/python" -m pip install --quiet --disable-pip-version-check \
    "${CLOUDIFY_COMMON}" "${NETWORKX}" "${SETUPTOOLS}"
# Smoke test: the local workflow API and the DSL parser import.
"${VENV}/bin/python" -c 'from cloudify.workflows import local; from dsl_parser import parser; import networkx, pkg_resources'
end=$(date +%s%N)

elapsed_ms=$(( (end - start) / 1000000 ))
printf 'cloudify venv ready: %s (%d.%03d s)\n' "$(cd "${VENV}" && pwd)" $((elapsed_ms / 1000)) $((elapsed_ms % 1000))
