"""Execution backends of the training engine.

A backend answers the questions in which one process and a distributed job
differ: which devices this process drives, how the Gluon trainer aggregates
gradients, how initial parameters and metrics travel between processes, and
which process writes files. The training loop itself is the same.
"""
import mxnet as mx
import numpy as np
from mxnet import gluon

import ipaddress
import os
import socket
import warnings

__all__ = ['LocalBackend', 'HorovodBackend', 'get_backend', 'under_horovod',
           'check_gloo_hostname', 'check_gpus_present']


def check_gpus_present(cfg, gpus, available):
    """The GPU ids ``gpus`` exist on this machine, which has ``available`` GPUs (a runtime
    fact; that ``train.gpus`` holds distinct non-negative ids is a config rule)."""
    missing = [g for g in gpus if g >= available]
    if missing:
        raise cfg.error('train.gpus', '= %s: this machine has %d GPU(s)'
                        % (cfg['train.gpus'], available))


class LocalBackend:
    """One process driving the CPU or one or more GPUs (gradients aggregated on device)."""
    name = 'local'
    rank = 0
    size = 1
    local_rank = 0
    local_size = 1            # ranks on this node
    node = 0                  # this node's index (Horovod's cross_rank)
    num_nodes = 1

    @property
    def is_root(self):
        return self.rank == 0

    def contexts(self, cfg):
        """The devices of this process: ``train.gpus``, or, if it is empty, the CPU as
        ``train.cpu_devices`` contexts (several run the multi-GPU code: batch splitting,
        gradient aggregation, per-device BatchNorm statistics)."""
        gpus = cfg['train.gpus']
        if not gpus:
            return [mx.cpu(i) for i in range(cfg['train.cpu_devices'])]
        check_gpus_present(cfg, gpus, mx.context.num_gpus())
        return [mx.gpu(g) for g in gpus]

    def make_trainer(self, params, optimizer, optimizer_params, ctx, amp=False,
                     fp16_allreduce=False, gradient_predivide_factor=1.0):
        """The Gluon trainer of ``params``, which live on the run's contexts ``ctx``.

        With AMP the update runs in the trainer, not in the kvstore: with the kvstore's
        update (MXNet's default for several devices) the weights are updated inside
        ``pushpull``, before AMP's overflow check has seen the reduced gradients, so
        overflowing steps would be applied (MXNet's AMP tutorial requires
        ``update_on_kvstore=False``). ``fp16_allreduce`` and ``gradient_predivide_factor``
        concern Horovod only."""
        return gluon.Trainer(params, optimizer, optimizer_params, kvstore='device',
                             update_on_kvstore=False if amp else None)

    def broadcast_parameters(self, net):
        """Nothing to do in one process."""

    def allreduce_sum(self, array):
        return np.asarray(array, dtype=np.float64)

    def barrier(self):
        """Nothing to wait for in one process."""

    def load_checkpoint(self, path, net, trainer, load, restore):
        return restore(load(path), net, trainer)

    def agree(self, message):
        """Rank 0's ``message`` (a str) on every rank: one process decides, all act alike."""
        return message

    def any_flag(self, flag):
        """True on every rank if ``flag`` is true on any rank (all ranks call it together)."""
        return bool(flag)

    def gather(self, array):
        """Every rank's ``array`` (same shape and dtype everywhere), stacked by rank."""
        return np.asarray(array)[None]

    def average_running_stats(self, net):
        """Give every replica (device, rank) the mean of the replicas' BatchNorm running
        statistics (the parameters without gradient), as timm's ``distribute_bn`` does:
        validation and checkpoints then see the statistics of the whole batch, not those
        of the first device's share."""
        stats = [p for _, p in running_stats(net)]
        if not stats or (self.size == 1 and len(stats[0].list_ctx()) == 1):
            return
        means = [np.mean([p.data(c).asnumpy().astype(np.float64) for c in p.list_ctx()],
                         axis=0) for p in stats]
        flat = self.allreduce_sum(np.concatenate([m.ravel() for m in means])) / self.size
        offset = 0
        for p, m in zip(stats, means):
            p.set_data(mx.nd.array(flat[offset:offset + m.size].reshape(m.shape), dtype=p.dtype))
            offset += m.size


class HorovodBackend(LocalBackend):
    """One process per device under ``horovodrun``; gradients averaged by allreduce.

    The training loop is unchanged: Horovod's ``DistributedTrainer`` sums gradients
    across ranks and divides by the number of ranks (with ``trainer.step(batch)``
    per process, the update uses the gradient averaged over the global batch);
    rank 0's initial (and resumed) parameters are broadcast; metrics are summed
    across ranks; only rank 0 writes.
    """
    name = 'horovod'

    def __init__(self):
        import horovod.mxnet as hvd
        gloo_hostname_problem = check_gloo_hostname()
        if gloo_hostname_problem:
            warnings.warn(gloo_hostname_problem, RuntimeWarning)
        hvd.init()
        self.hvd = hvd
        self.rank, self.size, self.local_rank = hvd.rank(), hvd.size(), hvd.local_rank()
        self.local_size, self.node, self.num_nodes = (hvd.local_size(), hvd.cross_rank(),
                                                      hvd.cross_size())
        self._calls = 0

    def contexts(self, cfg):
        """The CPU if ``train.gpus`` is empty, else the GPU of this process's local rank."""
        if cfg['train.cpu_devices'] != 1:
            raise cfg.error('train.cpu_devices', '= %d: under horovodrun each process drives '
                            'one device (start more processes instead)' % cfg['train.cpu_devices'])
        if not cfg['train.gpus']:
            return [mx.cpu()]
        available = mx.context.num_gpus()
        if available <= self.local_rank:
            raise cfg.error('train.gpus', ': local rank %d has no GPU of its own (%d GPUs)'
                            % (self.local_rank, available))
        return [mx.gpu(self.local_rank)]

    def make_trainer(self, params, optimizer, optimizer_params, ctx, amp=False,
                     fp16_allreduce=False, gradient_predivide_factor=1.0):
        """Horovod's ``DistributedTrainer``. ``fp16_allreduce``: gradients travel as
        float16 (``Compression.fp16``, half the allreduce traffic).
        ``gradient_predivide_factor`` f (Horovod's option of the same name, as its
        ``examples/mxnet/mxnet_imagenet_resnet50.py`` offers it): each rank's gradients
        are multiplied by 1/f before the sum and the sum by f/ranks after it, so that a
        sum of float16 gradients over many ranks stays in range; the average is the same
        (f = ranks: average first, then sum). With NCCL < 2.10 (the GPU image's 2.8) and
        on Gloo Horovod applies f/ranks through the trainer's ``rescale_grad``."""
        # What the run trains on decides, not what the host has: a CPU run on a GPU host
        # has CPU (oneDNN) gradients and needs the plain-layout copies.
        if ctx[0].device_type == 'gpu':
            cls = self.hvd.DistributedTrainer
        else:
            cls = _plain_layout_trainer(self.hvd)
        compression = (self.hvd.Compression.fp16 if fp16_allreduce
                       else self.hvd.Compression.none)
        kwargs = {}
        if gradient_predivide_factor != 1.0:   # (Horovod's default; ROCm builds refuse others)
            kwargs['gradient_predivide_factor'] = float(gradient_predivide_factor)
        return cls(params, optimizer, optimizer_params, compression=compression, **kwargs)

    def _name(self, what):
        self._calls += 1
        return '%s.%d' % (what, self._calls)

    def broadcast_parameters(self, net):
        # plain-layout copies: oneDNN may have reordered weights in place (see below)
        params = net.collect_params()
        plain = {name: mx.nd.array(p.data().asnumpy(), dtype=p.dtype)
                 for name, p in sorted(params.items())}
        self.hvd.broadcast_parameters(plain, root_rank=0)
        for name, p in params.items():
            p.set_data(plain[name])

    def allreduce_sum(self, array):
        value = mx.nd.array(np.asarray(array, dtype=np.float64), dtype='float64')
        out = self.hvd.allreduce(value, average=False, name=self._name('allreduce'))
        return out.asnumpy()

    def barrier(self):
        self.allreduce_sum(np.zeros(1))

    def broadcast_bytes(self, data):
        """Rank 0's ``data`` (bytes) on every rank."""
        size = self.hvd.broadcast(mx.nd.array([len(data) if self.rank == 0 else 0],
                                              dtype='int64'), 0, name=self._name('size'))
        n = int(size.asscalar())
        if n == 0:                       # every rank knows: nothing more to send
            return b''
        buf = np.frombuffer(data, dtype=np.uint8) if self.rank == 0 else np.zeros(n, np.uint8)
        out = self.hvd.broadcast(mx.nd.array(buf, dtype='uint8'), 0, name=self._name('bytes'))
        return out.asnumpy().tobytes()

    def agree(self, message):
        return self.broadcast_bytes(message.encode()).decode()

    def gather(self, array):
        array = np.asarray(array)
        out = self.hvd.allgather(mx.nd.array(array[None], dtype=array.dtype),
                                 name=self._name('gather'))
        return out.asnumpy()

    def any_flag(self, flag):
        # one fixed name: asked every step, in the same order on every rank
        value = mx.nd.array([1.0 if flag else 0.0], dtype='float32')
        out = self.hvd.allreduce(value, average=False, name='hcnet.stop_flag')
        return bool(out.asscalar() > 0)

    def load_checkpoint(self, path, net, trainer, load, restore):
        """Rank 0 reads and checks the checkpoint file; every rank parses rank 0's bytes
        with the same loader (arrays and JSON, never pickle) and restores them."""
        from .checkpoint import CheckpointError, load_checkpoint_bytes
        error, blob = b'', b''
        if self.rank == 0:
            try:
                with open(path, 'rb') as f:
                    blob = f.read()
                load_checkpoint_bytes(blob, path)            # the checks, one error line
            except OSError as err:
                error = ('cannot read checkpoint %s (%s)' % (path, err.strerror)).encode()
            except CheckpointError as err:
                error = str(err).encode()
        error = self.broadcast_bytes(error)
        if error:
            raise CheckpointError(error.decode())
        ckpt = load_checkpoint_bytes(self.broadcast_bytes(blob), path)
        return restore(ckpt, net, trainer, rank=self.rank)


def running_stats(net):
    """``(name, parameter)`` of the parameters that are not trained (BatchNorm running mean
    and variance), sorted by name: the values that differ between replicas."""
    return [(name, p) for name, p in sorted(net._collect_params_with_prefix().items())
            if p.grad_req == 'null']


def _plain_layout_trainer(hvd):
    """Horovod's DistributedTrainer, reducing plain-layout copies of CPU gradients.

    oneDNN leaves some CPU gradients in a blocked layout, which Horovod 0.28's MXNet
    ops cannot read ("We can't generate TBlob for MKLDNN data"). All gradients are
    first copied to plain arrays, reduced in one grouped allreduce per step, and
    written back.
    """
    class PlainLayoutTrainer(hvd.DistributedTrainer):
        def _allreduce_grads(self):
            if self._process_set.size() == 1 or not self._process_set.included():
                return
            grads = [(i, p.list_grad()[0]) for i, p in enumerate(self._params)
                     if p.grad_req != 'null']
            # Compression.fp16 sends float16: the copies are made in the wire type
            wire = 'float16' if self._compression is hvd.Compression.fp16 else None
            plain = [mx.nd.array(g.asnumpy(), ctx=g.context, dtype=wire or g.dtype)
                     for _, g in grads]
            hvd.grouped_allreduce_(tensors=plain, average=not self._average_in_framework,
                                   name=self._prefix + 'grads',
                                   prescale_factor=1.0 / self._gradient_predivide_factor,
                                   postscale_factor=self._postscale_factor,
                                   process_set=self._process_set)
            for (_, g), t in zip(grads, plain):
                g[:] = t.astype(g.dtype, copy=False)
    return PlainLayoutTrainer


def check_gloo_hostname(environ=None):
    """What is wrong, for a multi-host Gloo job, with this host's name; or None.

    Horovod 0.28 binds the Gloo contexts that carry the collectives (those of its process
    sets) to the address the host's name resolves to; ``--network-interfaces`` (Horovod's
    ``HOROVOD_GLOO_IFACE``) is only used for the first rendezvous. A name that does not
    resolve aborts the process ("Unable to find address for: <name>"); one that resolves to
    a loopback address (Debian's ``127.0.1.1 <name>``) is handed to the other hosts, which
    then connect to themselves ("Connection refused").
    """
    environ = os.environ if environ is None else environ
    if ('HOROVOD_GLOO_RENDEZVOUS_ADDR' not in environ
            or int(environ.get('HOROVOD_CROSS_SIZE', 1)) < 2):
        return None     # not Gloo, or all ranks on one host
    name = socket.gethostname()
    fix = ("Horovod's Gloo binds its collectives to the address of the host name: make %r "
           "resolve, on this host, to its address on the training network (/etc/hosts)" % name)
    try:     # as Gloo does: the first address getaddrinfo gives
        address = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)[0][4][0]
    except (OSError, IndexError):
        return 'host name %r does not resolve. %s' % (name, fix)
    if ipaddress.ip_address(address.split('%')[0]).is_loopback:
        return ('host name %r resolves to the loopback address %s, which the other hosts '
                'cannot reach. %s' % (name, address, fix))
    return None


def under_horovod():
    """True when this process was started by horovodrun (Gloo or MPI) or an MPI launcher:
    one of ``HOROVOD_SIZE``, ``OMPI_COMM_WORLD_SIZE``, ``PMI_SIZE`` is set, whatever its
    value -- a single-rank job included."""
    # A one-rank horovodrun job still gets the Horovod backend: the config then means the
    # same whatever -np is (train.gpus non-empty = the GPU of the local rank, not every
    # listed GPU in one process), and `horovodrun -np 1` runs the distributed code path
    # (with one rank its collectives are copies).
    for var in ('HOROVOD_SIZE', 'OMPI_COMM_WORLD_SIZE', 'PMI_SIZE'):
        if var in os.environ:
            return True
    return False


def get_backend():
    """The backend for this process: Horovod under horovodrun, else local."""
    return HorovodBackend() if under_horovod() else LocalBackend()
