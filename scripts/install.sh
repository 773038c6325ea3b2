#!/usr/bin/env bash
# Install hcnet with its pinned dependencies, plus Debian's Fashion-MNIST files that the
# quickstart and the tests read (when run as root on a Debian/Ubuntu machine).
#   bash scripts/install.sh          # the package
#   bash scripts/install.sh test     # the package and pytest
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
    else
        echo "note: Fashion-MNIST is not installed; as root run: apt-get install dataset-fashion-mnist" >&2
    fi
fi
python -m pip install -q -e ".${extras:+[$extras]}"
