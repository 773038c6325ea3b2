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


# --------------------------------------------------------------------------------------
# the GPU image's build order and pins (Horovod's docker/horovod/Dockerfile is the model)

def _instructions(text):
    """The Dockerfile's instructions as (KEYWORD, arguments) with continuations joined and
    comments dropped."""
    out, current = [], ''
    for line in text.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith('#')):
            continue
        if line.rstrip().endswith('\\'):
            current += line.rstrip()[:-1] + ' '
            continue
        current += line
        keyword, _, args = current.strip().partition(' ')
        out.append((keyword.upper(), ' '.join(args.split())))
        current = ''
    return out


def _commands(text):
    """Every shell command of the RUN instructions, in build order: (run index, command)."""
    cmds = []
    for i, (keyword, args) in enumerate(_instructions(text)):
        if keyword == 'RUN':
            cmds.extend((i, c.strip(' ()')) for c in args.split('&&'))
    return cmds


def _first(cmds, pattern, after=-1):
    for k, (_, c) in enumerate(cmds):
        if k > after and re.search(pattern, c):
            return k
    raise AssertionError('no command matches %r' % pattern)


def test_gpu_image_imports_mxnet_only_between_linking_and_unlinking_the_cuda_stubs():
    cmds = _commands(_read('docker', 'Dockerfile.gpu'))
    stubs = _first(cmds, r'^ldconfig /usr/local/cuda/targets/x86_64-linux/lib/stubs$')
    unlink = _first(cmds, r'^ldconfig$', after=stubs)
    # what loads libmxnet.so (which links libcuda.so.1): inside the window, in one RUN
    # (a layer ends the window only by an ldconfig without the stubs)
    users = [k for k, (_, c) in enumerate(cmds)
             if re.search(r'import mxnet|pip install .*(-e \.|horovod==)|horovodrun', c)]
    assert users, cmds
    for k in users:
        assert stubs < k < unlink, cmds[k]
        assert cmds[k][0] == cmds[stubs][0] == cmds[unlink][0], 'the stubs window spans layers'
    # --check-build exits 0 with "[ ] MXNet": its output must be checked, inside the window
    check = _first(cmds, r'horovodrun --check-build')
    for what in ('MXNet', 'NCCL', 'MPI', 'Gloo'):
        k = _first(cmds, r"grep -q '\\\[X\\\] %s'" % what, after=check)
        assert k < unlink, what


def test_gpu_image_pins_the_nccl_the_base_image_holds():
    text = _read('docker', 'Dockerfile.gpu')
    base = re.search(r'^FROM nvidia/cuda:(\d+)\.(\d+)\.\d+-\S+$', text, re.M)
    assert base, 'FROM nvidia/cuda:X.Y.Z-...'
    nccl = _arg(text, 'NCCL_VERSION')
    # the held package's version is built for the base image's CUDA
    assert nccl.endswith('+cuda%s.%s' % base.groups()), (nccl, base.groups())
    apt = [c for _, c in _commands(text) if c.startswith('apt-get install')]
    assert len(apt) == 1, apt
    words = apt[0].split()
    for pkg in ('libnccl2', 'libnccl-dev'):
        assert '%s=${NCCL_VERSION}' % pkg in words, pkg           # pinned, never bare
        assert pkg not in words
    assert '--allow-change-held-packages' in words


def test_gpu_image_python_has_distutils_and_its_own_pip():
    text = _read('docker', 'Dockerfile.gpu')
    version = _arg(text, 'PYTHON_VERSION')
    assert re.match(r'^3\.\d+$', version)
    cmds = [c for _, c in _commands(text)]
    apt = next(c for c in cmds if c.startswith('apt-get install')).split()
    for pkg in ('python${PYTHON_VERSION}', 'python${PYTHON_VERSION}-dev',
                'python${PYTHON_VERSION}-distutils'):
        assert pkg in apt, pkg
    assert 'python3-pip' not in apt          # Ubuntu 20.04's is built for its Python 3.8
    link = _first([(0, c) for c in cmds], r'^ln -sf /usr/bin/python\$\{PYTHON_VERSION\} '
                                          r'/usr/local/bin/python$')
    get_pip = _first([(0, c) for c in cmds], r'^python /tmp/get-pip\.py', after=link)
    first_pip = _first([(0, c) for c in cmds], r'pip install')
    assert link < get_pip < first_pip
    # every later pip is this Python's
    for c in cmds[get_pip + 1:]:
        if re.search(r'\bpip\b', c) and 'get-pip' not in c:
            assert c.startswith('python -m pip') or 'HOROVOD_' in c, c
            assert 'python -m pip' in c, c


def test_cpu_image_fails_without_mxnet_in_horovod():
    cmds = _commands(_read('docker', 'Dockerfile.cpu'))
    check = _first(cmds, r'horovodrun --check-build')
    _first(cmds, r"grep -q '\\\[X\\\] MXNet'", after=check)
