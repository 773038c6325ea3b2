"""Shared helpers for the hcnet test-suite."""
import re

import mxnet as mx
import numpy as np
import pytest

#: Zoo names: hc_[effb<K>_]m<M>_<i|isb|lr><N>[_lr]
NAME_RE = re.compile(r'hc_(?:effb\d_)?m(\d+)_(?:i|isb|lr)(\d+)(?:_lr)?')


from hcnet.nn import walk_blocks as walk  # noqa: E402,F401  (tests import it from here)


def randomize(block, seed=0):
    """Give every parameter of ``block`` (BN running stats included) random values.

    Freshly initialised BatchNorms are the identity in inference mode; random
    statistics make sure every layer actually does something in the tests.
    """
    rng = np.random.RandomState(seed)
    for name, param in sorted(block.collect_params().items()):
        if name.endswith(('running_var', 'gamma')):
            value = rng.uniform(0.5, 1.5, param.shape)
        elif name.endswith(('running_mean', 'beta', 'bias')):
            value = rng.uniform(-0.2, 0.2, param.shape)
        else:
            value = rng.normal(0, 0.3, param.shape)
        param.set_data(mx.nd.array(value))


def copy_params(src, dst):
    """Copy the parameters of ``src`` into ``dst`` (same structure, names minus prefix)."""
    sp = {k[len(src.prefix):]: v for k, v in src.collect_params().items()}
    dp = {k[len(dst.prefix):]: v for k, v in dst.collect_params().items()}
    assert sorted(sp) == sorted(dp), 'blocks differ in structure'
    for key, param in dp.items():
        param.set_data(sp[key].data().copy())


def rand(shape, seed=0):
    return mx.nd.array(np.random.RandomState(seed).randn(*shape).astype('float32'))


@pytest.fixture(autouse=True)
def _seed():
    mx.random.seed(1234)
    np.random.seed(1234)


def release_hcnet_logger():
    """An in-process run sets up the 'hcnet' logger for its run directory (handlers, no
    propagation): close its files and give it back to pytest, so caplog sees later records."""
    import logging
    logger = logging.getLogger('hcnet')
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    logger.propagate = True


@pytest.fixture(autouse=True)
def _give_back_the_hcnet_logger():
    yield
    release_hcnet_logger()


def horovod_worker_pids(marker, rank):
    """PIDs of the Horovod worker processes of ``rank`` whose command line holds ``marker``
    (a run's output directory, say)."""
    import glob
    pids = []
    for env_path in glob.glob('/proc/[0-9]*/environ'):
        try:
            env = open(env_path, 'rb').read().split(b'\0')
            cmd = open(env_path.replace('environ', 'cmdline'), 'rb').read()
        except OSError:
            continue
        if b'HOROVOD_RANK=%d' % rank in env and marker.encode() in cmd:
            pids.append(int(env_path.split('/')[2]))
    return pids
