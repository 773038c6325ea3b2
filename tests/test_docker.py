"""The Dockerfiles pin the versions setup.py pins (no Docker engine runs in CI)."""
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _read(*parts):
    with open(os.path.join(ROOT, *parts)) as f:
        return f.read()


def _arg(text, name):
    m = re.search(r'^ARG %s=(\S+)$' % name, text, re.M)
    assert m, name
    return m.group(1)


def test_dockerfile_versions_agree_with_setup_py():
    setup = _read('setup.py')
    mxnet = re.search(r"MXNET_VERSION = '([^']+)'", setup).group(1)
    horovod = re.search(r"HOROVOD_VERSION = '([^']+)'", setup).group(1)
    for name in ('Dockerfile.cpu', 'Dockerfile.gpu'):
        text = _read('docker', name)
        assert _arg(text, 'MXNET_VERSION') == mxnet, name
        assert _arg(text, 'HOROVOD_VERSION') == horovod, name
        assert 'horovod==${HOROVOD_VERSION}' in text and 'horovodrun --check-build' in text
        assert re.search(r'pip install --no-cache-dir -e "?\.', text)  # other pins: setup.py


def test_gpu_image_builds_horovod_with_nccl_and_mpi_and_cuda_mxnet():
    text = _read('docker', 'Dockerfile.gpu')
    assert 'HOROVOD_GPU_OPERATIONS=NCCL' in text and 'HOROVOD_WITH_MPI=1' in text
    assert 'HCNET_MXNET_PACKAGE=mxnet-cu112' in text and 'libnccl' in text and 'openmpi' in text
    assert "os.environ.get('HCNET_MXNET_PACKAGE', 'mxnet')" in _read('setup.py')


def test_install_script_builds_the_pinned_horovod():
    setup = _read('setup.py')
    horovod = re.search(r"HOROVOD_VERSION = '([^']+)'", setup).group(1)
    assert '"horovod==%s"' % horovod in _read('scripts', 'install.sh')
