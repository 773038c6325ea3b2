"""The training engine: one loop, local or distributed backends.

``train(cfg, backend)`` runs an experiment config end to end: model, data,
optimizer and schedule, mixed precision, the epoch loop with a progress bar,
validation, metrics, checkpoints and resume. What differs between one process
and a Horovod job lives in the backend (:mod:`hcnet.backend`): the contexts,
the Gluon trainer, broadcasting initial parameters, reducing metrics, and which
rank writes files.
"""
import json
import logging
import math
import os
import random
import sys
import time

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from .backend import LocalBackend
from .checkpoint import load_checkpoint, restore, save_checkpoint
from .config import ConfigError
from .model_zoo import get_model as hc_get_model, is_model

__all__ = ['train', 'evaluate', 'build_model', 'WarmupSchedule', 'scaled_lr', 'setup_logging']

log = logging.getLogger('hcnet')


# --------------------------------------------------------------------------------------
# model

def build_model(cfg, ctx, pretrained=True):
    """Build ``model.name`` (hcnet zoo or GluonCV zoo) on ``ctx``, parameters materialised.

    ``pretrained=False`` ignores ``model.pretrained`` (random initial weights).
    """
    name = cfg['model.name']
    kwargs = dict(cfg['model.kwargs'], classes=cfg['model.classes'])
    pretrained = cfg['model.pretrained'] if pretrained else None
    if is_model(name):
        net = hc_get_model(name, pretrained=pretrained or False, ctx=ctx[0], **kwargs)
    else:
        import gluoncv
        try:
            net = gluoncv.model_zoo.get_model(name, pretrained=pretrained or False, **kwargs)
        except ValueError:
            raise cfg.error('model.name', '= %r is neither an hcnet nor a GluonCV model' % name)
        if not pretrained:
            net.initialize(mx.init.MSRAPrelu(factor_type='in', slope=0.0), ctx=ctx[0])
    net.collect_params().reset_ctx(ctx)
    size = cfg['data.input_size']
    materialise(net, mx.nd.zeros((1, 3, size, size), ctx=ctx[0]))
    return net


def materialise(net, x):
    """Give deferred parameters their shapes and initial values, without running ``net``.

    Shapes come from symbolic shape inference, not from a forward pass: an inference-mode
    forward on CPU makes MXNet's oneDNN convolution and dense operators convert the weight
    arrays themselves to blocked layouts, asynchronously and in place
    (``MKLDNNDataReorderAsync``), and training on such arrays is not reproducible on the
    threaded engine (see :class:`_EvalTwin`). The initial values are the same as a forward
    pass would draw (parameters are initialised in registration order either way).
    """
    if isinstance(net, gluon.HybridBlock):
        net.infer_shape(x)
        for p in net.collect_params().values():
            if p._deferred_init:
                p._finish_deferred_init()  # what Gluon's own forward does after inferring shapes
    else:
        with autograd.pause():
            net(x)


def check_model_name(cfg):
    name = cfg['model.name']
    if is_model(name):
        return
    from gluoncv.model_zoo.model_zoo import get_model_list
    if name.lower() not in get_model_list():
        raise cfg.error('model.name', '= %r is neither an hcnet nor a GluonCV model name' % name)


# --------------------------------------------------------------------------------------
# schedule

class WarmupSchedule(mx.lr_scheduler.LRScheduler):
    """Linear warmup, then cosine / linear / step / constant decay, per update.

    Stateless: the lr is a function of the update count alone, so a resumed
    optimizer (whose ``num_update`` is restored) continues the same schedule.
    """

    def __init__(self, base_lr, steps_per_epoch, epochs, warmup_epochs=0, warmup_lr=0.0,
                 mode='cosine', final_lr=0.0, step_epochs=(), step_factor=0.1,
                 warmup_mode='linear'):
        super().__init__(base_lr)
        self.base_lr = base_lr
        self.total = max(1, int(steps_per_epoch * epochs))
        self.warmup = int(steps_per_epoch * warmup_epochs)
        self.warmup_lr, self.mode, self.final_lr = warmup_lr, mode, final_lr
        self.steps = [int(steps_per_epoch * e) for e in step_epochs]
        self.step_factor = step_factor
        self.warmup_mode = warmup_mode

    def __call__(self, num_update):
        t = num_update
        if t < self.warmup:
            frac = t / self.warmup
            frac = {'linear': frac, 'power2': frac * frac, 'sqrt': math.sqrt(frac)}[self.warmup_mode]
            return self.warmup_lr + (self.base_lr - self.warmup_lr) * frac
        span = max(1, self.total - self.warmup)
        frac = min(1.0, (t - self.warmup) / span)
        if self.mode == 'cosine':
            return self.final_lr + (self.base_lr - self.final_lr) * (1 + math.cos(math.pi * frac)) / 2
        if self.mode == 'linear':
            return self.base_lr + (self.final_lr - self.base_lr) * frac
        if self.mode == 'step':
            return self.base_lr * self.step_factor ** sum(t >= s for s in self.steps)
        return self.base_lr


def scaled_lr(cfg, total_batch):
    """``train.lr`` scaled linearly from ``train.reference_batch`` to ``total_batch``."""
    return cfg['train.lr'] * total_batch / cfg['train.reference_batch']


# --------------------------------------------------------------------------------------
# precision

def check_precision(cfg, ctx):
    dtype = cfg['train.dtype']
    on_gpu = ctx[0].device_type == 'gpu'
    if dtype == 'float16' and not on_gpu:
        raise cfg.error('train.dtype', '= float16 needs a GPU (MXNet has no fp16 GEMM on CPU); '
                                       'use bfloat16 or float32 on CPU')
    if dtype == 'bfloat16' and on_gpu:
        raise cfg.error('train.dtype', '= bfloat16 is the CPU mixed-precision path; '
                                       'use float16 on GPUs')
    if cfg['train.amp'] and dtype == 'float32':
        raise cfg.error('train.amp', 'needs train.dtype float16 or bfloat16')


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
    for handler in (logging.StreamHandler(sys.stdout), logging.FileHandler(os.path.join(output_dir, 'train.log'))):
        handler.setFormatter(fmt)
        log.addHandler(handler)


def plot_curves(metrics_path, png_path):
    """Training curves (loss, top-1, lr per epoch) from metrics.jsonl to a PNG."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    with open(metrics_path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    if not rows:
        return
    epochs = [r['epoch'] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot(epochs, [r['train_loss'] for r in rows], marker='o')
    axes[0].set_title('training loss')
    axes[1].plot(epochs, [r['val_top1'] for r in rows], marker='o', label='top-1')
    axes[1].plot(epochs, [r['val_top5'] for r in rows], marker='o', label='top-5')
    axes[1].set_title('validation accuracy (%)')
    axes[1].legend()
    axes[2].plot(epochs, [r['lr'] for r in rows], marker='o')
    axes[2].set_title('learning rate (end of epoch)')
    for ax in axes:
        ax.set_xlabel('epoch')
        ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = png_path + '.tmp.png'
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, png_path)


# --------------------------------------------------------------------------------------
# evaluation

def evaluate(net, val, ctx, backend=None, dtype='float32'):
    """Top-1 / top-5 (%) over ``val`` (each rank its part), reduced across ranks."""
    backend = backend or LocalBackend()
    counts = np.zeros(3, dtype=np.float64)  # correct@1, correct@5, images
    for data, label in val.epoch(0):
        datas = gluon.utils.split_and_load(data, ctx, even_split=False)
        labels = gluon.utils.split_and_load(label, ctx, even_split=False)
        for x, y in zip(datas, labels):
            out = net(x.astype(dtype, copy=False) if dtype == 'float16' else x).astype('float32')
            k = min(5, out.shape[1])
            top = mx.nd.topk(out, k=k, axis=1).asnumpy()
            y = y.asnumpy().reshape(-1, 1)
            counts += (float((top[:, :1] == y).sum()), float((top == y).any(axis=1).sum()),
                       float(len(y)))
    counts = backend.allreduce_sum(counts)
    images = max(counts[2], 1)
    return 100 * counts[0] / images, 100 * counts[1] / images, int(counts[2])


class _EvalTwin:
    """A second instance of the trained network that validation runs on (CPU).

    In inference mode, MXNet's oneDNN convolution and dense operators convert their weight
    arrays to oneDNN blocked layouts in place, through an operation pushed from inside the
    running operator (``NDArray::MKLDNNDataReorderAsync``); the next training-mode pass
    pushes the conversion back (``Reorder2DefaultAsync``). Training on arrays an inference
    pass has touched is not reproducible on the threaded engine: two runs with the same seed
    agree until the first validation and then diverge (and a resumed run, whose arrays are
    plain, cannot follow an uninterrupted one). With ``MXNET_ENGINE_TYPE=NaiveEngine`` the
    divergence disappears, and the parameters are those of a run that never validates --
    which is what validating on this twin gives, on the threaded engine.

    Before each validation the twin receives a copy of every parameter (BatchNorm running
    statistics included); the training arrays are only read.
    """

    def __init__(self, cfg, ctx, net, dtype):
        self.net = build_model(cfg, ctx, pretrained=False)  # the weights are copied in
        if dtype == 'float16':
            self.net.cast('float16')
        self.net.hybridize(static_alloc=True, static_shape=True)
        mine = self.net._collect_params_with_prefix()
        self._pairs = [(p, mine[name]) for name, p in net._collect_params_with_prefix().items()]

    def sync(self):
        """Copy the training parameters into the twin; returns the twin network."""
        for src, dst in self._pairs:
            for c in src.list_ctx():
                src.data(c).copyto(dst.data(c))
        return self.net


# --------------------------------------------------------------------------------------
# training

def _logits(out):
    """The main output as float32 (networks with auxiliary heads return a list)."""
    if isinstance(out, (list, tuple)):
        out = out[0]
    return out.astype('float32')


def _seed_all(seed):
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    mx.random.seed(seed % 2 ** 31)


def _targets(label, classes, smoothing, mixup_lam=None, perm=None):
    onehot = mx.nd.one_hot(label, classes)
    if smoothing:
        onehot = onehot * (1 - smoothing) + smoothing / classes
    if mixup_lam is not None:
        onehot = mixup_lam * onehot + (1 - mixup_lam) * onehot.take(perm)
    return onehot


def _no_weight_decay(net):
    for name, p in net.collect_params().items():
        if name.endswith(('_bias', '_gamma', '_beta')):
            p.wd_mult = 0.0


def _resolve_resume(cfg, output_dir):
    resume = cfg['resume']
    if resume in ('', False, None):
        return None
    if resume == 'auto' or resume is True:
        path = os.path.join(output_dir, 'last.ckpt')
        return path if os.path.isfile(path) else None
    if not os.path.isfile(resume):
        raise cfg.error('resume', '= %s: no such checkpoint file' % resume)
    return resume


def prepare(cfg, backend):
    """Everything that can fail on user input, before any work: returns the run setup."""
    check_model_name(cfg)
    ctx = backend.contexts(cfg)
    check_precision(cfg, ctx)
    output_dir = cfg['output_dir'].format(name=cfg.name)
    return ctx, output_dir


def train(cfg, backend=None):
    """Train ``cfg``; returns the final metrics dict (rank 0's view)."""
    from tqdm import tqdm
    from .data import build_data

    backend = backend or LocalBackend()
    ctx, output_dir = prepare(cfg, backend)
    per_process = cfg['train.batch_size'] * len(ctx)
    data = build_data(cfg, batch_size=per_process, rank=backend.rank, num_ranks=backend.size)
    if data.num_classes != cfg['model.classes']:
        raise cfg.error('model.classes', '= %d but %s has %d classes'
                        % (cfg['model.classes'], cfg['data.dataset'], data.num_classes))
    if backend.is_root:
        os.makedirs(output_dir, exist_ok=True)
        cfg.dump(os.path.join(output_dir, 'config.yaml'))
    backend.barrier()
    setup_logging(output_dir, backend.is_root)

    seed = cfg['train.seed']
    _seed_all(seed)
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

    steps = len(data.train)
    if cfg['train.steps_per_epoch']:
        steps = min(steps, cfg['train.steps_per_epoch'])
    if steps < 1:
        raise cfg.error('train.batch_size', '= %d is larger than the %d training images per rank'
                        % (cfg['train.batch_size'], data.num_train))
    epochs = cfg['train.epochs']
    total_batch = per_process * backend.size
    lr = scaled_lr(cfg, total_batch)
    schedule = WarmupSchedule(lr, steps, epochs, cfg['train.warmup_epochs'],
                              cfg['train.warmup_lr'] * total_batch / cfg['train.reference_batch'],
                              cfg['train.lr_mode'], cfg['train.final_lr'], cfg['train.lr_steps'],
                              cfg['train.lr_factor'], cfg['train.warmup_mode'])
    opt_params = {'learning_rate': lr, 'wd': cfg['train.wd'], 'lr_scheduler': schedule}
    opt_params['momentum'] = cfg['train.momentum']
    if cfg['train.optimizer'] == 'lbsgd':
        from . import optim  # noqa: F401  (registers hcnet's lbsgd)
        opt_params['lars'] = cfg['train.lars']
    if cfg['train.dtype'] == 'float16':
        opt_params['multi_precision'] = True
    trainer = backend.make_trainer(net.collect_params(), cfg['train.optimizer'], opt_params)
    if use_amp(cfg):
        amp.init_trainer(trainer)

    start_epoch, best, history = 0, -1.0, []
    resume_path = _resolve_resume(cfg, output_dir)
    if resume_path:
        meta = backend.load_checkpoint(resume_path, net, trainer, load_checkpoint, restore)
        start_epoch, best = meta['epoch'] + 1, meta.get('best_top1', -1.0)
        log.info('resumed from %s at epoch %d (update %d)', resume_path, start_epoch,
                 trainer.optimizer.num_update)

    log.info('model %s | %s on %s | %d process(es) x %d device(s) x %d images = batch %d | '
             'lr %.4g (train.lr %.4g x %d / %d) | %d steps/epoch, %d epochs | dtype %s%s',
             cfg['model.name'], cfg['data.dataset'], ctx[0].device_type, backend.size, len(ctx),
             cfg['train.batch_size'], total_batch, lr, cfg['train.lr'], total_batch,
             cfg['train.reference_batch'], steps, epochs, cfg['train.dtype'],
             ' (AMP)' if use_amp(cfg) else '')

    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss(sparse_label=False)
    classes = cfg['model.classes']
    smoothing = cfg['train.label_smoothing']
    alpha = cfg['train.mixup_alpha']
    metrics_path = os.path.join(output_dir, 'metrics.jsonl')
    in_dtype = 'float16' if cfg['train.dtype'] == 'float16' and not cfg['train.amp'] else 'float32'
    result = {}
    # On CPU, validation runs on a copy of the parameters (see _EvalTwin). Building it draws
    # random numbers; every epoch below reseeds all generators first.
    eval_twin = _EvalTwin(cfg, ctx, net, in_dtype) if ctx[0].device_type == 'cpu' else None

    for epoch in range(start_epoch, epochs):
        _seed_all(seed * 100003 + epoch * 1009 + backend.rank)
        mix_rng = np.random.RandomState((seed * 7919 + epoch * 31 + backend.rank) % 2 ** 32)
        mixup = alpha > 0 and epoch < epochs - cfg['train.mixup_off_epochs']
        tic = time.time()
        seen, loss_sum, loss_n = 0, 0.0, 0
        bar = tqdm(total=steps, desc='epoch %d/%d' % (epoch + 1, epochs), unit='step',
                   disable=not backend.is_root, dynamic_ncols=True, leave=False)
        for step, (data_b, label_b) in enumerate(data.train.epoch(epoch)):
            if step >= steps:
                break
            lam, perm = None, None
            if mixup:
                lam = float(mix_rng.beta(alpha, alpha))
                perm = mx.nd.array(mix_rng.permutation(data_b.shape[0]))
                data_b = lam * data_b + (1 - lam) * data_b.take(perm)
            target = _targets(label_b, classes, smoothing, lam, perm)
            xs = gluon.utils.split_and_load(data_b.astype(in_dtype, copy=False), ctx)
            ts = gluon.utils.split_and_load(target, ctx)
            with autograd.record():
                losses = [loss_fn(_logits(net(x)), t) for x, t in zip(xs, ts)]
                if use_amp(cfg):
                    with amp.scale_loss(losses, trainer) as scaled:
                        autograd.backward(scaled)
                else:
                    autograd.backward(losses)
            trainer.step(data_b.shape[0])
            batch_loss = sum(l.sum().asscalar() for l in losses)
            if not math.isfinite(batch_loss):
                raise FloatingPointError('loss became %s at epoch %d step %d; lower train.lr'
                                         % (batch_loss, epoch, step))
            loss_sum += batch_loss
            loss_n += data_b.shape[0]
            seen += data_b.shape[0]
            speed = seen * backend.size / max(time.time() - tic, 1e-9)
            bar.set_postfix(loss='%.4f' % (loss_sum / loss_n), lr='%.4g' % trainer.learning_rate,
                            img_s='%.0f' % speed, refresh=False)
            bar.update(1)
            if (step + 1) % cfg['train.log_interval'] == 0:
                log.debug('epoch %d step %d loss %.4f', epoch + 1, step + 1, loss_sum / loss_n)
        bar.close()
        train_time = time.time() - tic
        train_loss = float(backend.allreduce_sum(np.array([loss_sum, loss_n]))[0]
                           / max(1, backend.allreduce_sum(np.array([loss_n]))[0]))
        # Let the last step finish first: BatchNorm's backward pass updates the running
        # statistics, which it declares to the engine as inputs only, so an engine-ordered
        # read of them could still see the previous values.
        mx.nd.waitall()
        eval_net = eval_twin.sync() if eval_twin is not None else net
        top1, top5, n_val = evaluate(eval_net, data.val, ctx, backend, in_dtype)
        speed = seen * backend.size / max(train_time, 1e-9)
        result = {'epoch': epoch + 1, 'train_loss': round(train_loss, 6),
                  'val_top1': round(top1, 4), 'val_top5': round(top5, 4), 'val_images': n_val,
                  'lr': trainer.learning_rate, 'img_per_s': round(speed, 1),
                  'epoch_time_s': round(train_time, 2), 'wall_time_s': round(time.time() - tic, 2),
                  'skipped_images': data.skipped()}
        is_best = top1 > best
        best = max(best, top1)
        log.info('epoch %d/%d  train loss %.4f  val top-1 %.2f%%  top-5 %.2f%%  lr %.4g  '
                 '%.0f img/s  %.0fs', epoch + 1, epochs, train_loss, top1, top5,
                 trainer.learning_rate, speed, train_time)
        if backend.is_root:
            with open(metrics_path, 'a') as f:
                f.write(json.dumps(result) + '\n')
            meta = {'epoch': epoch, 'best_top1': best, 'model': cfg['model.name'],
                    'classes': classes, 'top1': top1, 'config': cfg.nested()}
            _write_checkpoints(output_dir, net, trainer, meta, epoch, is_best, cfg)
        backend.barrier()
    if backend.is_root and os.path.isfile(metrics_path):
        plot_curves(metrics_path, os.path.join(output_dir, 'curves.png'))
        log.info('final val top-1 %.2f%% (best %.2f%%); outputs in %s',
                 result.get('val_top1', float('nan')), best, output_dir)
    return result if backend.is_root else {}


def _write_checkpoints(output_dir, net, trainer, meta, epoch, is_best, cfg):
    last = os.path.join(output_dir, 'last.ckpt')
    save_checkpoint(last, net, trainer, meta)
    if is_best:
        save_checkpoint(os.path.join(output_dir, 'best.ckpt'), net, None, meta)
    every = cfg['checkpoint.every']
    if (epoch + 1) % every == 0:
        save_checkpoint(os.path.join(output_dir, 'epoch%04d.ckpt' % (epoch + 1)), net, trainer,
                        meta)
        kept = sorted(f for f in os.listdir(output_dir)
                      if f.startswith('epoch') and f.endswith('.ckpt'))
        for old in kept[:-cfg['checkpoint.keep']]:
            os.remove(os.path.join(output_dir, old))
