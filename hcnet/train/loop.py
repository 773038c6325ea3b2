"""The training loop, as named steps: ``train(cfg, backend)`` runs an experiment end to end.

    run = setup(cfg, backend)             # checks, outputs, model, optimizer, resume, banner
    for epoch in range(run.start_epoch, run.epochs):
        stats = train_epoch(run, epoch)   # reseed, then train_step() per batch, log_step()
        end_epoch(run, epoch, stats)      # validate, metrics.jsonl, checkpoints
    finish(run)                           # curves.png, the final line

What differs between one process and a Horovod job lives in the backend
(:mod:`hcnet.train.backend`): the contexts, the Gluon trainer, broadcasting initial
parameters, reducing metrics, and which rank writes files.

Outputs (rank 0, in ``output_dir``): ``config.yaml``, ``train.log`` (what is printed),
``metrics.jsonl`` (one record per epoch), ``steps.jsonl`` (one record per
``train.log_interval`` steps, and one for the rest of each epoch), ``curves.png``,
``last.ckpt``, ``best.ckpt`` and the ``epochNNNN.ckpt`` kept every ``checkpoint.every``
epochs. A run (fresh or resumed) first drops the records of the epochs it is about to
train from the two ``.jsonl`` files, so a redone epoch is recorded once.

Reproducibility: every generator is reseeded from ``(train.seed, epoch, rank)`` at the
start of each epoch and CPU validation runs on a copy of the weights
(:class:`~hcnet.train.evaluate.EvalTwin`), so a CPU run resumed from a checkpoint ends
with the parameters of an uninterrupted one, bit for bit.
"""
import contextlib
import dataclasses
import json
import logging
import math
import os
import random
import sys
import time
from typing import Any, List, Optional

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from ..fileio import atomic_path, write_text
from .backend import LocalBackend, running_stats
from .checkpoint import CheckpointError, load_checkpoint, restore, save_checkpoint
from .config import ConfigError
from .evaluate import EvalTwin, evaluate
from .model import build_model, check_model_name, materialise
from .preempt import EXIT_PREEMPTED, Preempted, StopSignals
from .schedule import WarmupSchedule, build_schedule, scaled_lr

__all__ = ['Diverged', 'Preempted', 'EXIT_USER', 'EXIT_DIVERGED', 'EXIT_IO', 'EXIT_INTERRUPTED',
           'EXIT_PREEMPTED', 'train', 'Run', 'EpochStats', 'setup', 'train_epoch', 'train_step',
           'log_step', 'save_position', 'end_epoch', 'finish', 'prepare', 'build_model', 'materialise', 'check_model_name',
           'check_dataset_classes', 'check_steps', 'check_labels', 'build_trainer',
           'setup_logging', 'plot_curves', 'read_jsonl', 'use_amp',
           # re-exported from their modules
           'evaluate', 'EvalTwin', 'WarmupSchedule', 'scaled_lr']

log = logging.getLogger('hcnet')


class Diverged(FloatingPointError):
    """The training loss became NaN or infinite (the message names the 1-based epoch and
    step); ``hcnet train`` exits with :data:`EXIT_DIVERGED`."""


#: exit codes of ``hcnet train``: bad input (config, checkpoint, weights) 2, a diverged run
#: 3, an output that cannot be written (disk full, read-only, ...) 74 (EX_IOERR),
#: interrupted 130
EXIT_USER, EXIT_DIVERGED, EXIT_IO, EXIT_INTERRUPTED = 2, 3, 74, 130

METRICS, STEPS, CURVES, LOG = 'metrics.jsonl', 'steps.jsonl', 'curves.png', 'train.log'


# --------------------------------------------------------------------------------------
# the state of a run

@dataclasses.dataclass
class Run:
    """Everything the steps of a run share; built by :func:`setup`."""
    cfg: Any
    backend: Any
    ctx: List[Any]
    output_dir: str
    data: Any                 # hcnet.train.data.DataBundle
    net: Any
    trainer: Any
    schedule: WarmupSchedule
    steps: int                # training steps per epoch
    epochs: int
    total_batch: int          # images per step, all processes together
    lr: float                 # peak lr (train.lr scaled to total_batch)
    in_dtype: str             # dtype of the network's inputs
    amp: Any = None           # mxnet.contrib.amp when training with AMP
    eval_twin: Optional[EvalTwin] = None
    loss_fn: Any = None
    start_epoch: int = 0      # first epoch to train (0-based): > 0 after a resume
    start_step: int = 0       # steps of start_epoch done before (a mid-epoch resume)
    partial: Optional[dict] = None   # the running totals of those steps (EpochStats fields)
    signals: Any = None       # hcnet.train.preempt.StopSignals while train() runs
    best: float = -1.0        # best validation top-1 so far
    result: dict = dataclasses.field(default_factory=dict)   # the last epoch's metrics
    lock: Any = None          # the RunLock rank 0 holds on output_dir

    def close(self):
        """Stop the data workers and release the run directory."""
        self.data.close()
        if self.lock is not None:
            self.lock.release()

    def path(self, name):
        """``name`` in the run directory."""
        return os.path.join(self.output_dir, name)


@dataclasses.dataclass
class EpochStats:
    """Running totals of one epoch on this process (see :func:`train_epoch`)."""
    epoch: int
    tic: float                # when the epoch started
    seen: int = 0             # images trained on
    loss_sum: float = 0.0     # summed per-image loss
    loss_n: int = 0
    train_time: float = 0.0   # seconds of training (set at the end of the epoch)
    # the current log interval
    window_sum: float = 0.0
    window_n: int = 0
    window_tic: float = 0.0


# --------------------------------------------------------------------------------------
# checks on runtime facts (the config's own rules are hcnet.train.config.validate)

def check_dataset_classes(cfg, data):
    """``model.classes`` is the number of classes the dataset defines, where its files tell
    (``image_folder``'s class folders); ``imagenet_rec`` does not, see :func:`check_labels`."""
    if data.num_classes is not None and data.num_classes != cfg['model.classes']:
        raise cfg.error('model.classes', '= %d but %s has %d classes'
                        % (cfg['model.classes'], cfg['data.dataset'], data.num_classes))


def check_steps(cfg, data, steps):
    """At least one training step per epoch for this rank."""
    if steps < 1:
        raise cfg.error('train.batch_size', '= %d is larger than the %d training images per rank'
                        % (cfg['train.batch_size'], data.num_train))


def check_labels(cfg, label):
    """Every label of a training batch is a class of the network (``model.classes``): a
    larger one would silently get an all-zero target."""
    y = label.asnumpy()
    bad = y[(y < 0) | (y >= cfg['model.classes'])]
    if bad.size:
        raise cfg.error('model.classes', '= %d but the %s training data has label %g'
                        % (cfg['model.classes'], cfg['data.dataset'], bad[0]))


#: the files a run writes in its directory (a fresh run with overwrite=true removes them)
def _run_files(output_dir):
    try:
        names = sorted(os.listdir(output_dir))
    except OSError:
        return []
    return [f for f in names if f in ('last.ckpt', 'best.ckpt', METRICS, STEPS, CURVES, LOG)
            or (f.startswith('epoch') and f.endswith('.ckpt'))]


class RunLock:
    """An exclusive ``fcntl`` lock on ``OUTPUT_DIR/.lock`` for the life of a run, so two runs
    started at once on one directory cannot both proceed. The kernel drops the lock when its
    process dies: the file a killed run left is taken over, with a warning."""

    NAME = '.lock'

    def __init__(self, output_dir):
        self.path, self.fd = os.path.join(output_dir, self.NAME), None

    def acquire(self, cfg):
        import fcntl
        directory = os.path.dirname(self.path)
        try:
            os.makedirs(directory, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise cfg.error('output_dir', '= %s cannot be created (%s)'
                            % (directory, err.strerror or err)) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 64).decode('ascii', 'replace').strip() or '?'
            os.close(fd)
            raise cfg.error('output_dir', '= %s is in use by another run (pid %s); wait for it '
                            'or use another output_dir' % (directory, holder)) from None
        previous = os.read(fd, 64).decode('ascii', 'replace').strip()
        if previous:
            log.warning('%s was left by run %s, which ended without releasing it: taken over',
                        self.path, previous)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self.fd = fd

    def release(self):
        if self.fd is not None:
            os.ftruncate(self.fd, 0)       # an empty lock file: released cleanly
            os.close(self.fd)
            self.fd = None


def check_run_directory(cfg, output_dir):
    """One run per directory: a fresh run (no ``resume``) refuses a directory that holds a
    run's checkpoints or metrics, unless ``overwrite`` is set (then they are removed, by
    :func:`_clear_run_files`, once the other checks have passed)."""
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise cfg.error('output_dir', '= %s exists and is not a directory' % output_dir)
    if cfg['resume'] not in ('', False, None) or cfg['overwrite']:
        return
    held = [f for f in _run_files(output_dir) if f.endswith('.ckpt') or
            (f == METRICS and os.path.getsize(os.path.join(output_dir, f)) > 0)]
    if held:
        raise cfg.error('output_dir', '= %s holds a run (%s): continue it with resume=auto, '
                        'or start anew with another output_dir or overwrite=true (which removes '
                        'its checkpoints and records)' % (output_dir, ', '.join(held[:3])))


def _clear_run_files(cfg, output_dir):
    if cfg['overwrite'] and cfg['resume'] in ('', False, None):
        for f in _run_files(output_dir):
            os.remove(os.path.join(output_dir, f))


#: keys that change what a checkpoint's state means: a resume with another value is refused
RESUME_FIXED = ('model.name', 'model.classes', 'model.kwargs', 'train.optimizer',
                'train.dtype', 'data.input_size')


def check_resume(cfg, meta, total_batch, path):
    """What may change on resume: the recipe (schedule, lr, wd, epochs, augmentation, ...)
    is the current config's, and each changed key is logged; keys of :data:`RESUME_FIXED`
    and the total batch are the checkpoint's, and another value is a ConfigError."""
    from .config import _flatten
    old = _flatten(meta.get('config') or {})
    for key in RESUME_FIXED:
        if key in old and old[key] != cfg[key]:
            raise cfg.error(key, '= %r, but %s was trained with %r: resume with the value it '
                            'was trained with, or start a new run' % (cfg[key], path, old[key]))
    if meta.get('total_batch') not in (None, total_batch):
        raise cfg.error('train.batch_size', 'gives a total batch of %d, but %s was trained '
                        'with %d: resume with the same total batch'
                        % (total_batch, path, meta['total_batch']))
    changed = ['%s %r -> %r' % (k, old[k], cfg[k]) for k in sorted(old)
               if k in cfg and k not in ('resume', 'overwrite', 'output_dir')
               and old[k] != cfg[k]]
    if changed:
        log.info('changed on resume: %s', ', '.join(changed))


def _intact(path):
    try:
        load_checkpoint(path)
        return True
    except CheckpointError:
        return False


def _resolve_resume(cfg, output_dir):
    resume = cfg['resume']
    if resume in ('', False, None):
        return None
    if resume == 'auto' or resume is True:
        path = os.path.join(output_dir, 'last.ckpt')
        epochs = sorted((f for f in _run_files(output_dir) if f.startswith('epoch')),
                        reverse=True)
        candidates = ([path] if os.path.isfile(path) else []) + [
            os.path.join(output_dir, f) for f in epochs]
        for candidate in candidates:
            if _intact(candidate):
                if candidate != path:
                    log.warning('resume=auto: %s is %s; resuming from %s, the newest intact '
                                'checkpoint', path, 'unreadable' if os.path.isfile(path)
                                else 'missing', candidate)
                return candidate
        if candidates:              # none intact: the error of the newest one
            load_checkpoint(candidates[0])
        return None
    if not os.path.isfile(resume):
        raise cfg.error('resume', '= %s: no such checkpoint file' % resume)
    return resume


def prepare(cfg, backend):
    """The checks that need this process's facts (installed zoos, GPUs), before any work:
    returns ``(ctx, output_dir)``."""
    check_model_name(cfg)
    ctx = backend.contexts(cfg)
    output_dir = cfg['output_dir'].format(name=cfg.name)
    check_run_directory(cfg, output_dir)
    return ctx, output_dir


def pinned_device(ctx):
    """The GPU whose pinned memory this process's input batches go to: its first device's
    (under Horovod, the GPU of its local rank), or -1 on a CPU run."""
    return ctx[0].device_id if ctx[0].device_type == 'gpu' else -1


def use_amp(cfg):
    return cfg['train.dtype'] == 'bfloat16' or (cfg['train.dtype'] == 'float16' and cfg['train.amp'])


# --------------------------------------------------------------------------------------
# logging and outputs

def setup_logging(output_dir, is_root):
    log.setLevel(logging.INFO)
    for h in list(log.handlers):
        log.removeHandler(h)
        h.close()
    log.propagate = False
    if not is_root:
        log.addHandler(logging.NullHandler())
        return
    fmt = logging.Formatter('%(asctime)s %(message)s', '%H:%M:%S')
    for handler in (logging.StreamHandler(sys.stdout), logging.FileHandler(os.path.join(output_dir, LOG))):
        handler.setFormatter(fmt)
        log.addHandler(handler)


def read_jsonl(path):
    """The records of a ``.jsonl`` file; a line that does not parse (the tail a killed
    process left) is skipped. A missing file has none."""
    rows = []
    if not os.path.isfile(path):
        return rows
    with open(path) as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
    return rows


def _append_jsonl(path, record):
    with open(path, 'a') as f:
        f.write(json.dumps(record) + '\n')


def _trim_records(path, done_epochs, done_steps=0):
    """Keep the records of epochs 1..``done_epochs`` of ``path`` and those of the next
    epoch's first ``done_steps`` steps (rewritten atomically): a resumed run redoes the
    rest, a fresh run (0) starts an empty file."""
    def done(r):
        epoch = r.get('epoch', math.inf)
        return epoch <= done_epochs or (epoch == done_epochs + 1 and
                                        r.get('step', math.inf) <= done_steps)
    kept = [r for r in read_jsonl(path) if done(r)]
    write_text(path, ''.join(json.dumps(r) + '\n' for r in kept))


def plot_curves(metrics_path, png_path, steps_path=None):
    """Training curves to a PNG (written atomically): training loss and lr per log interval
    (``steps.jsonl``, x = fractional epoch) with the per-epoch values (``metrics.jsonl``)
    as markers, beside the per-epoch validation accuracy."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    rows = read_jsonl(metrics_path)
    points = read_jsonl(steps_path) if steps_path else []
    if not rows and not points:
        return
    x = [p['epoch'] - 1 + p['step'] / p['steps'] for p in points]
    epochs = [r['epoch'] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    if points:
        axes[0].plot(x, [p['loss'] for p in points], lw=1, marker='.', label='per log interval')
    axes[0].plot([e - 0.5 for e in epochs], [r['train_loss'] for r in rows], 'o',
                 label='epoch mean (mid-epoch)')
    axes[0].set_title('training loss')
    axes[0].legend()
    axes[1].plot(epochs, [r['val_top1'] for r in rows], marker='o', label='top-1')
    axes[1].plot(epochs, [r['val_top5'] for r in rows], marker='o', label='top-5')
    axes[1].set_title('validation accuracy (%)')
    axes[1].legend()
    if points:
        axes[2].plot(x, [p['lr'] for p in points], lw=1, marker='.', label='per log interval')
    axes[2].plot(epochs, [r['lr'] for r in rows], 'o', label='end of epoch')
    axes[2].set_title('learning rate')
    axes[2].legend()
    for ax in axes:
        ax.set_xlabel('epoch')
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, dpi=100, format='png')
    plt.close(fig)


# --------------------------------------------------------------------------------------
# setup

def _seed_all(seed):
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    mx.random.seed(seed % 2 ** 31)


def _no_weight_decay(net):
    for name, p in net.collect_params().items():
        if name.endswith(('_bias', '_gamma', '_beta')):
            p.wd_mult = 0.0


def build_trainer(cfg, net, backend, ctx, lr, schedule):
    """The backend's Gluon trainer with ``train.optimizer`` and its options.

    LB-SGD's LARS ratios are computed from the gradient of the loss summed over the
    step's images of all devices and processes (``lars_batch``, see
    :mod:`hcnet.train.optim`): not from gradients that still carry AMP's loss scale or
    Horovod's deferred averaging."""
    opt_params = {'learning_rate': lr, 'wd': cfg['train.wd'], 'lr_scheduler': schedule}
    opt_params['momentum'] = cfg['train.momentum']
    if cfg['train.optimizer'] == 'lbsgd':
        from . import optim  # noqa: F401  (registers hcnet's lbsgd)
        opt_params['lars'] = cfg['train.lars']
        opt_params['lars_batch'] = cfg['train.batch_size'] * len(ctx) * backend.size
    if cfg['train.dtype'] == 'float16':
        opt_params['multi_precision'] = True
    return backend.make_trainer(net.collect_params(), cfg['train.optimizer'], opt_params, ctx,
                                amp=use_amp(cfg), fp16_allreduce=cfg['train.fp16_allreduce'],
                                gradient_predivide_factor=cfg['train.gradient_predivide_factor'])


def setup(cfg, backend=None):
    """Checks, the run directory, logging, data, model, optimizer, resume: a :class:`Run`.

    Nothing is written before the checks that can fail on user input have passed. The
    order of random draws is part of the contract (initial weights come from
    ``train.seed``).
    """
    from .data import build_data

    backend = backend or LocalBackend()
    ctx, output_dir = prepare(cfg, backend)
    per_process = cfg['train.batch_size'] * len(ctx)
    lock = RunLock(output_dir) if backend.is_root else None
    data = build_data(cfg, batch_size=per_process, rank=backend.rank, num_ranks=backend.size,
                      local_rank=backend.local_rank, local_size=backend.local_size,
                      node=backend.node, pinned_device=pinned_device(ctx))
    try:
        if lock is not None:
            lock.acquire(cfg)
        run = _setup(cfg, backend, ctx, output_dir, per_process, data)
        run.lock = lock
        return run
    except BaseException:
        data.close()
        if lock is not None:
            lock.release()
        raise


def _setup(cfg, backend, ctx, output_dir, per_process, data):
    check_dataset_classes(cfg, data)
    # every rank runs the same number of steps: the smallest share's
    steps = int(backend.gather(np.array([len(data.train)])).min())
    if cfg['train.steps_per_epoch']:
        steps = min(steps, cfg['train.steps_per_epoch'])
    check_steps(cfg, data, steps)
    if backend.is_root:
        try:
            os.makedirs(output_dir, exist_ok=True)
        except OSError as err:
            raise cfg.error('output_dir', '= %s cannot be created (%s)'
                            % (output_dir, err.strerror or err)) from None
        _clear_run_files(cfg, output_dir)
    backend.barrier()
    setup_logging(output_dir, backend.is_root)

    # what the checkpoint allows, before anything process-wide (AMP patches MXNet's operators)
    resume_path = _resolve_resume(cfg, output_dir)
    total_batch = per_process * backend.size
    error = ''
    if resume_path and backend.is_root:
        try:
            check_resume(cfg, load_checkpoint(resume_path).get('meta') or {}, total_batch,
                         resume_path)
        except (ConfigError, CheckpointError) as err:
            error = str(err)
    error = backend.agree(error)
    if error:
        raise ConfigError(error)

    _seed_all(cfg['train.seed'])
    amp = None
    if use_amp(cfg):
        from mxnet.contrib import amp
        amp.init(target_dtype=cfg['train.dtype'])
    net = build_model(cfg, ctx)
    if cfg['train.dtype'] == 'float16' and not cfg['train.amp']:
        net.cast('float16')
    if cfg['train.no_wd_bn_bias']:
        _no_weight_decay(net)
    net.hybridize(static_alloc=True, static_shape=True)
    backend.broadcast_parameters(net)

    lr = scaled_lr(cfg, total_batch)
    schedule = build_schedule(cfg, steps, total_batch)
    trainer = build_trainer(cfg, net, backend, ctx, lr, schedule)
    if amp is not None:
        amp.init_trainer(trainer)
    in_dtype = 'float16' if cfg['train.dtype'] == 'float16' and not cfg['train.amp'] else 'float32'
    run = Run(cfg=cfg, backend=backend, ctx=ctx, output_dir=output_dir, data=data, net=net,
              trainer=trainer, schedule=schedule, steps=steps, epochs=cfg['train.epochs'],
              total_batch=total_batch, lr=lr, in_dtype=in_dtype, amp=amp)

    if resume_path:
        meta = backend.load_checkpoint(resume_path, net, trainer, load_checkpoint, restore)
        _resume_position(run, meta, resume_path)
    if backend.is_root:
        # the records of the epochs (and steps) still to come are redone (or, in a fresh
        # run, all)
        _trim_records(run.path(METRICS), run.start_epoch)
        _trim_records(run.path(STEPS), run.start_epoch, run.start_step)
        # every resolved config the run ran with: config.yaml, then one per resume
        fresh = not resume_path or not os.path.isfile(run.path('config.yaml'))
        cfg.dump(run.path('config.yaml' if fresh else
                          'config.resume%04d.yaml' % (run.start_epoch + 1)))

    log.info('model %s | %s on %s | %d process(es) x %d device(s) x %d images = batch %d | '
             'lr %.4g (train.lr %.4g x %d / %d) | %d steps/epoch, %d epochs | dtype %s%s',
             cfg['model.name'], cfg['data.dataset'], ctx[0].device_type, backend.size, len(ctx),
             cfg['train.batch_size'], total_batch, lr, cfg['train.lr'], total_batch,
             cfg['train.reference_batch'], steps, run.epochs, cfg['train.dtype'],
             ' (AMP)' if amp is not None else '')
    n = getattr(data.train, 'dataset_size', None)
    if n:
        log.info('1 epoch = %.4g passes over the %d training images (data.shard=%s: %d node(s) '
                 'x %d rank(s)/node; %d steps x %d images)', steps * total_batch / n, n,
                 cfg['data.shard'], backend.num_nodes, backend.local_size, steps, total_batch)

    run.loss_fn = gluon.loss.SoftmaxCrossEntropyLoss(sparse_label=False)
    # On CPU, validation runs on a copy of the parameters (see EvalTwin). Building it draws
    # random numbers; every epoch reseeds all generators first.
    if ctx[0].device_type == 'cpu':
        run.eval_twin = EvalTwin(cfg, ctx, net, in_dtype)
    return run


def _resume_position(run, meta, path):
    """Where a resumed run starts: after epoch ``meta['epoch']`` (0-based; -1 = none),
    ``meta['step']`` steps into the next one (a checkpoint written mid-epoch)."""
    run.start_epoch, run.best = meta['epoch'] + 1, meta.get('best_top1', -1.0)
    run.start_step = int(meta.get('step') or 0)
    run.partial = meta.get('partial') if run.start_step else None
    if run.start_step > run.steps:
        raise ConfigError('%s stopped at step %d of epoch %d, but this config trains %d '
                          'steps per epoch: resume with the data and train.steps_per_epoch '
                          'it was trained with' % (path, run.start_step, run.start_epoch + 1,
                                                   run.steps))
    scaler = getattr(run.trainer, '_amp_loss_scaler', None)
    if scaler is not None and meta.get('amp_loss_scale') is not None:
        scaler.loss_scale = float(meta['amp_loss_scale'])
        scaler._unskipped = int(meta.get('amp_unskipped', 0))  # pylint: disable=protected-access
    log.info('resumed from %s at epoch %d%s (update %d)', path, run.start_epoch + 1,
             ' step %d' % (run.start_step + 1) if run.start_step else '',
             run.trainer.optimizer.num_update)


# --------------------------------------------------------------------------------------
# one step, one epoch

def _logits(out):
    """The main output as float32 (networks with auxiliary heads return a list)."""
    if isinstance(out, (list, tuple)):
        out = out[0]
    return out.astype('float32')


def _targets(label, classes, smoothing, mixup_lam=None, perm=None):
    onehot = mx.nd.one_hot(label, classes)
    if smoothing:
        onehot = onehot * (1 - smoothing) + smoothing / classes
    if mixup_lam is not None:
        onehot = mixup_lam * onehot + (1 - mixup_lam) * onehot.take(perm)
    return onehot


def _draw_mixup(rng, alpha, batch):
    """Mixup's ``(lambda, permutation)`` for one batch, from the epoch's generator."""
    lam = float(rng.beta(alpha, alpha))
    return lam, mx.nd.array(rng.permutation(batch))


def _device_perms(perm, sizes):
    """Mixup's partner permutation for each device's share of the batch (``sizes``
    images each, in order), from the batch's permutation ``perm``: the share's own
    positions ranked by their values in ``perm``, a uniformly random permutation of the
    share when ``perm`` is one of the batch. With one device it is ``perm`` itself."""
    if len(sizes) == 1:
        return [perm]
    values = perm.asnumpy()
    out, start = [], 0
    for n in sizes:
        out.append(np.argsort(np.argsort(values[start:start + n], kind='stable'),
                              kind='stable'))
        start += n
    return out


def train_step(run, data, label, mixup=None):
    """One optimizer update on the batch ``(data, label)`` (NDArrays on the CPU, sparse
    labels); ``mixup`` is ``(lambda, permutation)`` or None.

    The batch is split over the devices first, as GluonCV's and Horovod's ImageNet
    scripts do; each device then mixes its share (Mixup pairs images of the same
    device, as under Horovod each rank mixes its own batch: see :func:`_device_perms`),
    casts it to the network's dtype and builds its targets. On one device this is the
    computation of mixing and casting the whole batch before splitting, operation for
    operation.

    Returns the batch's loss summed over its images (a float; it waits for the step,
    with one read from the device).
    """
    cfg = run.cfg
    classes, smoothing = cfg['model.classes'], cfg['train.label_smoothing']
    lam, perm = mixup if mixup is not None else (None, None)
    xs = gluon.utils.split_and_load(data, run.ctx)
    ys = gluon.utils.split_and_load(label, run.ctx)
    perms = (_device_perms(perm, [x.shape[0] for x in xs]) if mixup is not None
             else [None] * len(xs))
    inputs, targets = [], []
    for x, y, p in zip(xs, ys, perms):
        if p is not None:
            p = mx.nd.array(p, ctx=x.context) if isinstance(p, np.ndarray) else \
                p.as_in_context(x.context)
            x = lam * x + (1 - lam) * x.take(p)
        inputs.append(x.astype(run.in_dtype, copy=False))
        targets.append(_targets(y, classes, smoothing, lam, p))
    with autograd.record():
        losses = [run.loss_fn(_logits(run.net(x)), t) for x, t in zip(inputs, targets)]
        if run.amp is not None:
            with run.amp.scale_loss(losses, run.trainer) as scaled:
                autograd.backward(scaled)
        else:
            autograd.backward(losses)
    run.trainer.step(data.shape[0])
    # each device's sum gathered on the first device and read at once: one host sync per
    # step, not one per device; added up on the host as before (float32 values, in device
    # order)
    sums = [l.sum().reshape((1,)) for l in losses]
    if len(sums) > 1:
        sums = [mx.nd.concat(*[s.as_in_context(run.ctx[0]) for s in sums], dim=0)]
    return sum(sums[0].asnumpy())


def _seed_step(run, epoch, step):
    """Reseed every generator for ``step`` (0-based) of ``epoch``, so that a step draws
    the same numbers (Dropout, drop-path, Mixup) whether the run got there uninterrupted
    or resumed mid-epoch; returns the step's Mixup generator."""
    seed, rank = run.cfg['train.seed'], run.backend.rank
    key = (seed * 100003 + epoch * 1009 + rank) * 1000003 + step
    _seed_all(key)
    return np.random.RandomState(key % 2 ** 32)


def log_step(run, stats, step):
    """The log line and the ``steps.jsonl`` record of the interval ending at ``step``
    (0-based) of ``stats.epoch``; starts the next interval. Loss: this process's mean
    over the interval; img/s: all processes."""
    now = time.time()
    loss = float(stats.window_sum / max(1, stats.window_n))
    speed = float(stats.window_n * run.backend.size / max(now - stats.window_tic, 1e-9))
    lr = float(run.trainer.learning_rate)
    epoch = stats.epoch
    log.info('epoch %d/%d  step %d/%d  loss %.4f  lr %.4g  %.0f img/s', epoch + 1, run.epochs,
             step + 1, run.steps, loss, lr, speed)
    if run.backend.is_root:
        _append_jsonl(run.path(STEPS), {
            'epoch': epoch + 1, 'step': step + 1, 'steps': run.steps,
            'global_step': epoch * run.steps + step + 1, 'loss': round(loss, 6), 'lr': lr,
            'img_per_s': round(speed, 1), 'time': round(now, 3)})
    stats.window_sum, stats.window_n, stats.window_tic = 0.0, 0, now


def train_epoch(run, epoch):
    """Train epoch ``epoch`` (0-based): reseed, then :func:`train_step` on each of its
    ``run.steps`` batches, with a progress bar, and :func:`log_step` every
    ``train.log_interval`` steps and at the epoch's last step (which closes a shorter
    interval). Returns the epoch's :class:`EpochStats`."""
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    cfg, backend = run.cfg, run.backend
    alpha = cfg['train.mixup_alpha']
    mixup = alpha > 0 and epoch < run.epochs - cfg['train.mixup_off_epochs']
    interval, every = cfg['train.log_interval'], cfg['checkpoint.every_steps']
    start = run.start_step if epoch == run.start_epoch else 0
    stats = EpochStats(epoch=epoch, tic=time.time())
    if start and run.partial:          # the totals of the steps done before a resume
        _restore_partial(run, stats)
    stats.window_tic = time.time()
    bar = tqdm(total=run.steps, initial=start, desc='epoch %d/%d' % (epoch + 1, run.epochs),
               unit='step', disable=not backend.is_root, dynamic_ncols=True, leave=False)
    # log lines while the bar is shown: printed above it (the bar is redrawn)
    redirect = logging_redirect_tqdm([log]) if backend.is_root else contextlib.nullcontext()
    try:
        with redirect:
            for step, (data, label) in enumerate(run.data.train.epoch(epoch, start=start),
                                                 start):
                if step >= run.steps:
                    break
                check_labels(cfg, label)
                rng = _seed_step(run, epoch, step)
                mix = _draw_mixup(rng, alpha, data.shape[0]) if mixup else None
                batch_loss = train_step(run, data, label, mix)
                if not math.isfinite(batch_loss):
                    message = ('training diverged: the loss became %s at epoch %d step %d (of %d); '
                               'lower train.lr, or resume from an earlier checkpoint'
                               % (batch_loss, epoch + 1, step + 1, run.steps))
                    log.error(message)
                    raise Diverged(message)
                n = data.shape[0]
                stats.loss_sum += batch_loss
                stats.loss_n += n
                stats.seen += n
                stats.window_sum += batch_loss
                stats.window_n += n
                speed = stats.seen * backend.size / max(time.time() - stats.tic, 1e-9)
                bar.set_postfix(loss='%.4f' % (stats.loss_sum / stats.loss_n),
                                lr='%.4g' % run.trainer.learning_rate, img_s='%.0f' % speed,
                                refresh=False)
                bar.update(1)
                if (step + 1) % interval == 0 or step + 1 == run.steps:
                    log_step(run, stats, step)
                stop = _stop_requested(run)
                if stop or (every and (step + 1) % every == 0 and step + 1 < run.steps):
                    stats.train_time = time.time() - stats.tic
                    save_position(run, epoch, step + 1, stats)
                if stop:
                    raise _preempted(run, epoch, step + 1)
    finally:
        bar.close()          # also on an error: its message starts a line of its own
    stats.train_time = time.time() - stats.tic
    return stats


def _stop_requested(run):
    """Whether a stop signal reached any process (every rank asks at the same step, so all
    stop together)."""
    pending = run.signals is not None and run.signals.pending
    return run.backend.any_flag(pending)


def _preempted(run, epoch, step=None):
    """The :class:`Preempted` error for a stop after ``step`` steps of ``epoch`` (None:
    after the whole epoch, validated), logged."""
    name = run.signals.received if run.signals is not None and run.signals.pending else \
        'a stop signal (on another rank)'
    where = ('after epoch %d' % (epoch + 1) if step is None else
             'at epoch %d step %d/%d' % (epoch + 1, step, run.steps))
    message = ('stopped by %s %s: %s holds this position; continue with resume=auto'
               % (name, where, run.path('last.ckpt')))
    log.warning(message)
    return Preempted(message)


def _meta(run, epoch, top1=None):
    """The metadata of a checkpoint written after epoch ``epoch`` (0-based; -1 = before
    the first)."""
    cfg = run.cfg
    meta = {'epoch': epoch, 'best_top1': run.best, 'model': cfg['model.name'],
            'total_batch': run.total_batch, 'classes': cfg['model.classes'], 'top1': top1,
            'config': cfg.nested()}
    scaler = getattr(run.trainer, '_amp_loss_scaler', None)
    if scaler is not None:                 # float16 AMP: the dynamic loss scale's state
        meta['amp_loss_scale'] = float(scaler.loss_scale)
        meta['amp_unskipped'] = int(getattr(scaler, '_unskipped', 0))
    return meta


_PARTIAL = ('seen', 'loss_sum', 'loss_n', 'train_time')


def _restore_partial(run, stats):
    """Each rank's running totals of the steps before a mid-epoch resume (with another
    number of ranks, rank 0 takes the totals of all)."""
    per_rank = [run.partial.get(key) or [] for key in _PARTIAL]
    if all(len(v) == run.backend.size for v in per_rank):
        values = [v[run.backend.rank] for v in per_rank]
    else:
        values = [sum(v) if run.backend.rank == 0 else 0 for v in per_rank]
    for key, value in zip(_PARTIAL, values):
        setattr(stats, key, type(getattr(stats, key))(value))
    stats.tic -= stats.train_time


def save_position(run, epoch, step, stats):
    """``last.ckpt`` at ``step`` (1-based count of steps done) of ``epoch`` (0-based), with
    every rank's running totals of the epoch and every replica's BatchNorm statistics, so
    that ``resume=auto`` continues there as if uninterrupted (every rank takes part, rank 0
    writes)."""
    # the last step's BatchNorm statistics first (see end_epoch)
    mx.nd.waitall()
    backend, net = run.backend, run.net
    totals = backend.gather(np.array([float(getattr(stats, k)) for k in _PARTIAL]))
    replicas = None
    named = running_stats(net)
    if named and (backend.size > 1 or len(run.ctx) > 1):
        local = {name: np.stack([p.data(c).asnumpy() for c in p.list_ctx()])
                 for name, p in named}
        gathered = {name: backend.gather(v) for name, v in local.items()}  # (ranks, devices, ...)
        replicas = [{name: v[r, d] for name, v in gathered.items()}
                    for r in range(backend.size) for d in range(len(run.ctx))]
    if backend.is_root:
        meta = _meta(run, epoch - 1)
        meta['step'] = step
        meta['partial'] = {k: [int(v) if k in ('seen', 'loss_n') else float(v)
                               for v in totals[:, i]] for i, k in enumerate(_PARTIAL)}
        save_checkpoint(run.path('last.ckpt'), net, run.trainer, meta, replicas)
        log.info('checkpoint at epoch %d step %d/%d: %s', epoch + 1, step, run.steps,
                 run.path('last.ckpt'))
    run.backend.barrier()


# --------------------------------------------------------------------------------------
# end of an epoch, end of the run

def end_epoch(run, epoch, stats):
    """Validate, log, append the epoch's record to ``metrics.jsonl`` and write the
    checkpoints (rank 0); returns the record (every rank)."""
    backend, cfg = run.backend, run.cfg
    train_loss = float(backend.allreduce_sum(np.array([stats.loss_sum, stats.loss_n]))[0]
                       / max(1, backend.allreduce_sum(np.array([stats.loss_n]))[0]))
    # Let the last step finish first: BatchNorm's backward pass updates the running
    # statistics, which it declares to the engine as inputs only, so an engine-ordered
    # read of them could still see the previous values.
    mx.nd.waitall()
    # every replica's BatchNorm statistics become their mean: what validation and the
    # checkpoints see (and a resume restores on every replica)
    backend.average_running_stats(run.net)
    eval_net = run.eval_twin.sync() if run.eval_twin is not None else run.net
    top1, top5, n_val = evaluate(eval_net, run.data.val, run.ctx, backend, run.in_dtype)
    speed = stats.seen * backend.size / max(stats.train_time, 1e-9)
    lr = run.trainer.learning_rate
    result = {'epoch': epoch + 1, 'train_loss': round(train_loss, 6),
              'val_top1': round(top1, 4), 'val_top5': round(top5, 4), 'val_images': n_val,
              'lr': lr, 'img_per_s': round(speed, 1),
              'epoch_time_s': round(stats.train_time, 2),
              'wall_time_s': round(time.time() - stats.tic, 2),
              'skipped_images': run.data.skipped()}
    is_best = top1 > run.best
    run.best = max(run.best, top1)
    log.info('epoch %d/%d  train loss %.4f  val top-1 %.2f%%  top-5 %.2f%%  lr %.4g  '
             '%.0f img/s  %.0fs', epoch + 1, run.epochs, train_loss, top1, top5, lr, speed,
             stats.train_time)
    if backend.is_root:
        _write_checkpoints(run, _meta(run, epoch, top1), epoch, is_best)
        # the row after its checkpoint: an epoch in metrics.jsonl always has one
        _append_jsonl(run.path(METRICS), result)
    backend.barrier()
    run.result = result
    return result


def _write_checkpoints(run, meta, epoch, is_best):
    cfg, net, trainer = run.cfg, run.net, run.trainer
    save_checkpoint(run.path('last.ckpt'), net, trainer, meta)
    if is_best:
        save_checkpoint(run.path('best.ckpt'), net, None, meta)
    if (epoch + 1) % cfg['checkpoint.every'] == 0:
        save_checkpoint(run.path('epoch%04d.ckpt' % (epoch + 1)), net, trainer, meta)
        kept = sorted(f for f in os.listdir(run.output_dir)
                      if f.startswith('epoch') and f.endswith('.ckpt'))
        for old in kept[:-cfg['checkpoint.keep']]:
            os.remove(run.path(old))


def finish(run):
    """Draw ``curves.png`` and log the final line (rank 0); returns the last epoch's
    metrics on rank 0, ``{}`` elsewhere."""
    if not run.backend.is_root:
        return {}
    if os.path.isfile(run.path(METRICS)):
        plot_curves(run.path(METRICS), run.path(CURVES), run.path(STEPS))
        log.info('final val top-1 %.2f%% (best %.2f%%); outputs in %s',
                 run.result.get('val_top1', float('nan')), run.best, run.output_dir)
    return run.result


def train(cfg, backend=None):
    """Train ``cfg``; returns the final metrics dict (rank 0's view). SIGTERM and SIGUSR1
    stop it at a step boundary with a checkpoint (:class:`Preempted`, see
    :mod:`hcnet.train.preempt`)."""
    with StopSignals() as signals:
        run = setup(cfg, backend)
        run.signals = signals
        try:
            for epoch in range(run.start_epoch, run.epochs):
                stats = train_epoch(run, epoch)
                end_epoch(run, epoch, stats)
                if epoch + 1 < run.epochs and _stop_requested(run):
                    raise _preempted(run, epoch)
            return finish(run)
        finally:
            run.close()
