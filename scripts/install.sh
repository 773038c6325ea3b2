#!/usr/bin/env bash
# Install hcnet with its pinned dependencies, plus what its jobs and tests need.
#   bash scripts/install.sh               # the package (+ Debian's Fashion-MNIST, as root)
#   bash scripts/install.sh distributed   # ... and Horovod built against mxnet with Gloo
#   bash scripts/install.sh test          # ... and pytest, onnx, Horovod, sshd, ip, unshare for the tests
# Horovod has no wheel: it is compiled here (a few minutes on 2 cores) with the system
# cmake (pip's cmake 4 breaks gloo's build). For GPU clusters see docker/.
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-}"
apt_packages=()
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || apt_packages+=(dataset-fashion-mnist)
if [ "$what" = test ] || [ "$what" = distributed ]; then
    command -v cmake >/dev/null || apt_packages+=(cmake)
    command -v g++ >/dev/null || apt_packages+=(g++)
fi
if [ "$what" = test ]; then
    command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || apt_packages+=(openssh-server openssh-client)
    command -v ip >/dev/null || apt_packages+=(iproute2)
    command -v unshare >/dev/null || apt_packages+=(util-linux)
fi
if [ ${#apt_packages[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_packages[@]}" >/dev/null
    else
        echo "note: not root: install ${apt_packages[*]} with your package manager" >&2
    fi
fi
case "$what" in
    test) python -m pip install -q -e ".[test]" ;;
    *) python -m pip install -q -e . ;;
esac
if [ "$what" = test ] || [ "$what" = distributed ]; then
    if ! python -c "import horovod.mxnet" 2>/dev/null; then
        python -m pip install -q wheel
        HOROVOD_WITH_MXNET=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 \
        HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_PYTORCH=1 \
            python -m pip install -q --no-build-isolation --no-cache-dir "horovod==0.28.1"
    fi
    horovodrun --check-build | grep -q '\[X\] MXNet'
fi
