"""Experiment configuration: one schema, YAML files with inheritance, dotted overrides.

Every key has a default, a type and a one-line comment (``SCHEMA``). A YAML file
may start with ``_base_: other.yaml`` (a path relative to the file, or a list of
them) and overrides what it inherits; ``KEY=VALUE`` pairs on the command line
override the files (values are parsed as YAML: ``train.lr=0.1``,
``data.dataset=fashion_mnist``, ``train.gpus=[0,1]``).

Validation is strict: an unknown key, a wrong type or an impossible value
raises :class:`ConfigError` naming the key and the file that set it; the
scripts turn that into one line on stderr and exit code 2, before any work.
"""
import copy
import glob
import os

import yaml

__all__ = ['SCHEMA', 'ConfigError', 'Config', 'load_config', 'find_config', 'CONFIG_DIR',
           'DATASETS', 'DTYPES']

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'configs')
DATASETS = ('imagenet_rec', 'image_folder', 'fashion_mnist', 'synthetic')
DTYPES = ('float32', 'float16', 'bfloat16')
_NUM = (int, float)
_OPT_STR = (str, type(None))
_OPT_NUM = (int, float, type(None))


def _pos(v):
    return v > 0


def _nonneg(v):
    return v >= 0


def _unit(v):
    return 0 <= v < 1


def _one_of(*choices):
    def check(v):
        return v in choices
    check.__doc__ = 'one of %s' % ', '.join(map(str, choices))
    return check


_pos.__doc__, _nonneg.__doc__, _unit.__doc__ = 'positive', 'non-negative', 'in [0, 1)'

# key: (default, allowed types, check or None, comment)
SCHEMA = {
    # --- model ---------------------------------------------------------------------
    'model.name': ('hc_m10_i10', str, None,
                   'hcnet zoo name (hc_...) or any GluonCV model-zoo name (baselines)'),
    'model.classes': (1000, int, _pos, 'number of output classes; must match the dataset'),
    'model.kwargs': ({}, dict, None,
                     'extra constructor arguments, e.g. {dropout: 0.2} or composition overrides'),
    'model.pretrained': (None, (str, bool, type(None)), None,
                         'initial weights: true (published) or a .params path; null = random'),
    # --- data ----------------------------------------------------------------------
    'data.dataset': ('imagenet_rec', str, _one_of(*DATASETS),
                     'imagenet_rec | image_folder | fashion_mnist | synthetic'),
    'data.root': ('~/.mxnet/datasets/imagenet', str, None,
                  'imagenet_rec: dir with train.rec/.idx, val.rec/.idx; image_folder: dir '
                  'with train/ and val/ class folders; fashion_mnist: dir with the IDX .gz files'),
    'data.input_size': (224, int, _pos, 'training crop / evaluation input size (pixels)'),
    'data.crop_ratio': (0.875, float, lambda v: 0 < v <= 1,
                        'evaluation: resize to input_size / crop_ratio, centre-crop input_size'),
    'data.mean': ([0.485, 0.456, 0.406], list, None, 'per-channel mean (RGB, 0-1 scale)'),
    'data.std': ([0.229, 0.224, 0.225], list, None, 'per-channel std (RGB, 0-1 scale)'),
    'data.color_jitter': (0.4, _NUM, _nonneg, 'brightness/contrast/saturation jitter (0: off)'),
    'data.pca_noise': (0.1, _NUM, _nonneg, 'AlexNet-style PCA lighting noise (0: off)'),
    'data.random_crop_scale': (0.08, _NUM, _unit, 'random-resized-crop minimum area fraction'),
    'data.num_workers': (4, int, _nonneg, 'decoding worker processes / threads'),
    'data.synthetic_samples': (1024, int, _pos, 'synthetic: number of training images'),
    'data.val_samples': (None, (int, type(None)), None,
                         'evaluate on the first N validation images only (null: all)'),
    'data.shard_by_rank': (False, bool, None,
                           'distributed: each rank reads 1/N of the data per epoch (true) or '
                           'the whole dataset in its own order (false, the paper\'s meaning)'),
    # --- training recipe -----------------------------------------------------------
    'train.epochs': (360, int, _pos, 'number of epochs'),
    'train.batch_size': (256, int, _pos, 'images per device per step'),
    'train.reference_batch': (2048, int, _pos,
                              'total batch that train.lr is given for; lr scales linearly'),
    'train.lr': (2.6, _NUM, _pos, 'peak learning rate at train.reference_batch'),
    'train.lr_mode': ('cosine', str, _one_of('cosine', 'step', 'linear', 'constant'),
                      'decay after warmup: cosine | step | linear | constant'),
    'train.lr_steps': ([], list, None, 'step mode: epochs at which lr is multiplied by lr_factor'),
    'train.lr_factor': (0.1, _NUM, _pos, 'step mode: decay factor'),
    'train.final_lr': (0.0, _NUM, _nonneg, 'lr at the end of cosine / linear decay'),
    'train.warmup_epochs': (5, _NUM, _nonneg, 'linear warmup from warmup_lr to lr (epochs)'),
    'train.warmup_lr': (0.0, _NUM, _nonneg, 'learning rate at step 0'),
    'train.warmup_mode': ('linear', str, _one_of('linear', 'power2', 'sqrt'),
                          "warmup shape (MXNet LBSGD's warmup strategies): linear | power2 | sqrt"),
    'train.optimizer': ('nag', str, _one_of('nag', 'sgd', 'lbsgd'),
                        'nag (Nesterov, the single-node recipe) | sgd | lbsgd (distributed)'),
    'train.momentum': (0.9, _NUM, _unit, 'momentum'),
    'train.lars': (False, bool, None, "lbsgd: scale each layer's lr by MXNet LBSGD's LARS ratio, "
                                      'clipped to [0.01, 100]'),
    'train.wd': (3e-5, _NUM, _nonneg, 'weight decay'),
    'train.no_wd_bn_bias': (True, bool, None, 'no weight decay on BatchNorm and bias parameters'),
    'train.label_smoothing': (0.1, _NUM, _unit, 'label smoothing epsilon (0: off)'),
    'train.mixup_alpha': (0.0, _NUM, _nonneg, 'Mixup Beta(alpha, alpha) (0: off)'),
    'train.mixup_off_epochs': (0, int, _nonneg, 'switch Mixup off for the last N epochs'),
    'train.dtype': ('float32', str, _one_of(*DTYPES),
                    'float32 | float16 (GPU only) | bfloat16 (AMP, CPU)'),
    'train.amp': (False, bool, None, 'float16 via AMP with dynamic loss scaling '
                                     '(false: the GluonCV way, net.cast + multi_precision)'),
    'train.gpus': ([], list, None, 'GPU ids, one process drives all of them; [] = CPU'),
    'train.seed': (0, int, _nonneg,
                   'seed for initialisation, data order and augmentation; all generators are '
                   'reseeded from (seed, epoch) every epoch, and CPU validation runs on a copy '
                   'of the weights (oneDNN inference reorders weights in place, which made '
                   'training irreproducible), so a CPU run is bit-reproducible and a resumed '
                   'run ends with the parameters of an uninterrupted one'),
    'train.log_interval': (50, int, _pos, 'steps between log lines (the bar updates every step)'),
    'train.steps_per_epoch': (None, (int, type(None)), None,
                              'cap on steps per epoch (null: the whole dataset); for time budgets and smoke runs'),
    # --- checkpoints and outputs ---------------------------------------------------
    'checkpoint.every': (10, int, _pos, 'also keep a checkpoint every N epochs'),
    'checkpoint.keep': (3, int, _pos, 'how many of the every-N checkpoints to keep'),
    'output_dir': ('runs/{name}', str, None,
                   'run directory; {name} = the config file name without .yaml'),
    'resume': ('', (str, bool), None, "'' = fresh run, 'auto' = the run dir's last checkpoint, "
                                     'or a checkpoint path'),
    # --- what the config reproduces (informational) --------------------------------
    'paper.table': (None, _OPT_NUM, None, "the paper's table this config reproduces"),
    'paper.row': (None, _OPT_STR, None, "the row's label in that table"),
    'paper.top1': (None, _OPT_NUM, None, "the paper's reported top-1 (%) for this recipe"),
    'paper.recipe': (None, _OPT_STR, None, 'single-node | distributed'),
}


class ConfigError(ValueError):
    """A configuration problem the user can fix; the message names the key and file."""


def _flatten(tree, prefix=''):
    flat = {}
    for key, value in tree.items():
        name = prefix + str(key)
        if isinstance(value, dict) and name not in SCHEMA:
            flat.update(_flatten(value, name + '.'))
        else:
            flat[name] = value
    return flat


def find_config(name, config_dir=CONFIG_DIR):
    """Resolve ``name``: an existing path, or a bare file name found under ``configs/``."""
    if os.path.isfile(name):
        return os.path.abspath(name)
    base = name if name.endswith(('.yaml', '.yml')) else name + '.yaml'
    if os.sep not in base:
        hits = sorted(glob.glob(os.path.join(config_dir, '**', base), recursive=True))
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise ConfigError('config name %s is ambiguous: %s' % (base, ', '.join(hits)))
    raise ConfigError('config %s not found (neither a file nor a name under %s)'
                      % (name, config_dir))


def _read_yaml(path, chain=()):
    if path in chain:
        raise ConfigError('%s: _base_ cycle through %s' % (path, ' -> '.join(chain)))
    try:
        with open(path) as f:
            tree = yaml.safe_load(f) or {}
    except OSError as err:
        raise ConfigError('cannot read config %s: %s' % (path, err.strerror)) from None
    except yaml.YAMLError as err:
        raise ConfigError('%s is not valid YAML: %s' % (path, err)) from None
    if not isinstance(tree, dict):
        raise ConfigError('%s: a config file must be a mapping of keys' % path)
    bases = tree.pop('_base_', [])
    values, sources = {}, {}
    for base in [bases] if isinstance(bases, str) else bases:
        base_path = os.path.join(os.path.dirname(path), base)
        if not os.path.isfile(base_path):
            raise ConfigError('%s: _base_ %s does not exist' % (path, base))
        v, s = _read_yaml(os.path.abspath(base_path), chain + (path,))
        values.update(v)
        sources.update(s)
    flat = _flatten(tree)
    values.update(flat)
    sources.update({k: path for k in flat})
    return values, sources


def _parse_override(text):
    if '=' not in text:
        raise ConfigError('override %r is not KEY=VALUE' % text)
    key, raw = text.split('=', 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ''
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def _check(key, value, source):
    _, types, check, _ = SCHEMA[key]
    allowed = types if isinstance(types, tuple) else (types,)
    if float in allowed and int not in allowed and isinstance(value, int) \
            and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
        names = ' or '.join(t.__name__ for t in allowed).replace('NoneType', 'null')
        raise ConfigError('%s: %s must be %s, got %r (%s)'
                          % (source, key, names, value, type(value).__name__))
    if check is not None and value is not None and not check(value):
        raise ConfigError('%s: %s = %r is not allowed (must be %s)'
                          % (source, key, value, check.__doc__ or 'valid'))
    return value


class Config(dict):
    """Flat mapping ``'train.lr' -> value`` with attribute-free, explicit access."""

    def __init__(self, values, sources, name, path):
        super().__init__(values)
        self.sources = sources
        self.name = name
        self.path = path

    def section(self, prefix):
        """``{'lr': ..., 'epochs': ...}`` for ``section('train')``."""
        p = prefix + '.'
        return {k[len(p):]: v for k, v in self.items() if k.startswith(p)}

    def source(self, key):
        return self.sources.get(key, 'default')

    def error(self, key, message):
        """A :class:`ConfigError` about ``key`` naming where it was set."""
        return ConfigError('%s: %s %s' % (self.source(key), key, message))

    def nested(self):
        """The config as nested dicts (what is written to the run directory)."""
        tree = {}
        for key in SCHEMA:
            node = tree
            *parents, leaf = key.split('.')
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = self[key]
        return tree

    def dump(self, path):
        """Write the fully resolved config as YAML (temporary name, then rename)."""
        tmp = path + '.tmp'
        with open(tmp, 'w') as f:
            f.write('# resolved from %s\n' % self.path)
            yaml.safe_dump(self.nested(), f, sort_keys=False, default_flow_style=None)
        os.replace(tmp, path)


def load_config(name=None, overrides=(), config_dir=CONFIG_DIR):
    """Load a config by path or bare name, apply ``KEY=VALUE`` overrides, validate."""
    values = {k: copy.deepcopy(v[0]) for k, v in SCHEMA.items()}
    sources = {}
    path = None
    if name:
        path = find_config(name, config_dir)
        file_values, file_sources = _read_yaml(path)
        values.update(file_values)
        sources.update(file_sources)
    for text in overrides:
        key, value = _parse_override(text)
        values[key] = value
        sources[key] = 'command line'
    for key in values:
        if key not in SCHEMA:
            close = [k for k in SCHEMA if k.split('.')[-1] == key.split('.')[-1]]
            hint = ' (did you mean %s?)' % ', '.join(close) if close else ''
            raise ConfigError('%s: unknown config key %s%s'
                              % (sources.get(key, 'default'), key, hint))
    for key in SCHEMA:
        values[key] = _check(key, values[key], sources.get(key, 'default'))
    run_name = os.path.splitext(os.path.basename(path))[0] if path else 'default'
    return Config(values, sources, run_name, path)
