"""The learning-rate schedule: warmup, then decay, as a pure function of the update count.

``scaled_lr`` turns the config's ``train.lr`` (given for ``train.reference_batch``) into
the peak rate of the run's total batch; :class:`WarmupSchedule` is the per-update
schedule the Gluon trainer's optimizer follows.
"""
import math

import mxnet as mx

__all__ = ['WarmupSchedule', 'scaled_lr', 'build_schedule']


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


def build_schedule(cfg, steps_per_epoch, total_batch):
    """The run's :class:`WarmupSchedule` from the ``train.*`` keys, its peak lr and warmup lr
    scaled from ``train.reference_batch`` to ``total_batch``."""
    return WarmupSchedule(scaled_lr(cfg, total_batch), steps_per_epoch, cfg['train.epochs'],
                          cfg['train.warmup_epochs'],
                          cfg['train.warmup_lr'] * total_batch / cfg['train.reference_batch'],
                          cfg['train.lr_mode'], cfg['train.final_lr'], cfg['train.lr_steps'],
                          cfg['train.lr_factor'], cfg['train.warmup_mode'])
