"""Experiment configuration: one schema, YAML files with inheritance, dotted overrides.

Every key has a default, a type and a one-line comment (``SCHEMA``). A YAML file
may start with ``_base_: other.yaml`` (a path relative to the file, or a list of
them) and overrides what it inherits; ``KEY=VALUE`` pairs on the command line
override the files (values are parsed as YAML: ``train.lr=0.1``,
``data.dataset=fashion_mnist``, ``train.gpus=[0,1]``).

Validation is strict: an unknown key, a wrong type or an impossible value
raises :class:`ConfigError` naming the key and the file that set it; the
scripts turn that into one line on stderr and exit code 2, before any work.
It runs in two passes inside :func:`load_config`: each value alone against its
``SCHEMA`` entry (type and range), then :func:`validate`, every rule on list
contents and between keys. Checks that need facts outside the config (GPUs
present, files on disk, the installed model zoos) are made where those facts
are known: ``hcnet.train.backend.check_gpus_present``, ``hcnet.train.data``
(``data.root``), ``hcnet.train.model.check_model_name`` and the run checks of
``hcnet.train.loop`` (``check_dataset_classes``, ``check_steps``, ``check_labels``).
"""
import copy
import glob
import math
import os
import re

import string

import yaml

from ..fileio import atomic_write

__all__ = ['SCHEMA', 'ConfigError', 'Config', 'load_config', 'validate', 'find_config',
           'config_dirs', 'CONFIG_DIR', 'CONFIG_PATH_ENV', 'DATASETS', 'DTYPES',
           'DATASET_CLASSES']

#: the configs shipped with the package (package data: found from a wheel as well)
CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'configs')
#: directories searched before CONFIG_DIR for bare config names (os.pathsep-separated)
CONFIG_PATH_ENV = 'HCNET_CONFIG_PATH'
DATASETS = ('imagenet_rec', 'image_folder', 'fashion_mnist', 'synthetic')
DTYPES = ('float32', 'float16', 'bfloat16')
#: datasets whose number of classes is fixed (model.classes must match)
DATASET_CLASSES = {'fashion_mnist': 10}
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
    'data.val_samples': (None, (int, type(None)), _pos,
                         'evaluate on the first N validation images only (null: all)'),
    'data.shard': ('rank', str, _one_of('rank', 'node', 'none'),
                   'distributed: what one epoch is. rank = one pass of the whole job (each of '
                   'N ranks reads 1/N of the data: the usual meaning); node = one pass per node '
                   '(the ranks of a node share a pass, each node in its own order: the paper\'s '
                   '"80 epochs (equivalent to 640 epochs on single node)" with 8 nodes); none = '
                   'one pass per rank (every rank reads everything)'),
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
    'train.cpu_devices': (1, int, _pos, 'with train.gpus []: split each batch over this many '
                                        'CPU contexts (mx.cpu(0), mx.cpu(1), ...): runs the '
                                        'multi-GPU code paths on a CPU; one process only'),
    'train.fp16_allreduce': (False, bool, None, 'Horovod: send gradients as float16 '
                                                '(hvd.Compression.fp16, half the allreduce '
                                                'traffic); no effect in one process'),
    'train.gradient_predivide_factor': (1.0, _NUM, _pos, 'Horovod: gradients are divided by '
                                        'this before the allreduce sum and the sum by ranks / '
                                        'this after it (same average; keeps float16 sums over '
                                        'many ranks in range); 1 = sum, then average'),
    'train.seed': (0, int, _nonneg,
                   'seed for initialisation, data order and augmentation; all generators are '
                   'reseeded from (seed, epoch, step) every step, and CPU validation runs on a copy '
                   'of the weights (oneDNN inference reorders weights in place, which made '
                   'training irreproducible), so a CPU run is bit-reproducible and a resumed '
                   'run ends with the parameters of an uninterrupted one'),
    'train.log_interval': (50, int, _pos, 'steps between log lines in train.log and records in '
                                          'steps.jsonl (and one at the end of each epoch); the '
                                          'bar updates every step'),
    'train.steps_per_epoch': (None, (int, type(None)), _pos,
                              'cap on steps per epoch (null: the whole dataset); for time budgets and smoke runs'),
    # --- checkpoints and outputs ---------------------------------------------------
    'checkpoint.every': (10, int, _pos, 'also keep a checkpoint every N epochs'),
    'checkpoint.keep': (3, int, _pos, 'how many of the every-N checkpoints to keep'),
    'checkpoint.every_steps': (0, int, _nonneg,
                               'also write last.ckpt every N steps within an epoch (0: off), '
                               'for resume=auto to continue from; SIGTERM / SIGUSR1 write one '
                               'at the step they stop at anyway'),
    'output_dir': ('runs/{name}', str, None,
                   'run directory; {name} = the config file name without .yaml'),
    'resume': ('', (str, bool), None, "'' = fresh run, 'auto' = the run dir's last checkpoint, "
                                     'or a checkpoint path'),
    'overwrite': (False, bool, None, 'a fresh run may replace the run in output_dir (its '
                                     'checkpoints and records are removed first)'),
    # --- what the config reproduces (informational) --------------------------------
    'paper.table': (None, _OPT_NUM, None, "the paper's table this config reproduces"),
    'paper.row': (None, _OPT_STR, None, "the row's label in that table"),
    'paper.top1': (None, _OPT_NUM, None, "the paper's reported top-1 (%) for this recipe"),
    'paper.recipe': (None, _OPT_STR, None, 'single-node | distributed'),
}


#: keys of earlier versions, and what replaced them
RENAMED = {'data.shard_by_rank': 'use data.shard (true was data.shard=rank, false was '
                                 'data.shard=none; the distributed configs now use node)'}


class ConfigError(ValueError):
    """A configuration problem the user can fix; the message names the key and file."""


def _flatten(tree, prefix='', source=None):
    flat = {}
    for key, value in tree.items():
        name = prefix + str(key)
        if isinstance(value, dict) and name not in SCHEMA:
            part = _flatten(value, name + '.', source)
        else:
            part = {name: value}
        twice = sorted(set(part) & set(flat))
        if twice and source is not None:     # `train.lr: 1` beside `train: {lr: 2}`
            raise ConfigError('%s: %s is set twice' % (source, twice[0]))
        flat.update(part)
    return flat


def config_dirs(config_dir=None):
    """Where bare config names are looked up, in order: ``config_dir`` if given, else the
    directories of ``$HCNET_CONFIG_PATH`` (``os.pathsep``-separated), then the package's."""
    if config_dir is not None:
        return [config_dir]
    extra = [os.path.abspath(os.path.expanduser(d))
             for d in os.environ.get(CONFIG_PATH_ENV, '').split(os.pathsep) if d.strip()]
    return extra + [CONFIG_DIR]


def find_config(name, config_dir=None):
    """Resolve ``name``: an existing path, or a bare file name (``.yaml`` optional) found
    under :func:`config_dirs`; the first directory that has it wins."""
    if os.path.isfile(name):
        return os.path.abspath(name)
    base = name if name.endswith(('.yaml', '.yml')) else name + '.yaml'
    dirs = config_dirs(config_dir)
    if os.sep not in base:
        for directory in dirs:
            hits = sorted(glob.glob(os.path.join(glob.escape(directory), '**', glob.escape(base)),
                                    recursive=True))
            if len(hits) == 1:
                return hits[0]
            if len(hits) > 1:
                raise ConfigError('config name %s is ambiguous: %s' % (base, ', '.join(hits)))
    raise ConfigError('config %s not found (neither a file nor a name under %s)'
                      % (name, os.pathsep.join(dirs)))


class _Loader(yaml.SafeLoader):
    """``yaml.safe_load`` with two fixes for configs: a key given twice in one mapping is an
    error (YAML would keep the last silently), and ``3e-5`` / ``1e6`` are numbers (YAML 1.1
    wants ``3.0e-5``)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, 'duplicate key %r' % (key,), key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    'tag:yaml.org,2002:float',
    re.compile(r'^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$'),
    list('-+0123456789.'))


def _yaml(text):
    return yaml.load(text, Loader=_Loader)


def _read_yaml(path, chain=()):
    if path in chain:
        raise ConfigError('%s: _base_ cycle through %s' % (path, ' -> '.join(chain)))
    try:
        with open(path, encoding='utf-8') as f:
            tree = _yaml(f) or {}
    except OSError as err:
        raise ConfigError('cannot read config %s: %s' % (path, err.strerror)) from None
    except UnicodeDecodeError as err:
        raise ConfigError('%s is not UTF-8 text (byte %d)' % (path, err.start)) from None
    except yaml.YAMLError as err:
        raise ConfigError('%s is not valid YAML: %s'
                          % (path, ' '.join(str(err).split()))) from None
    if not isinstance(tree, dict):
        raise ConfigError('%s: a config file must be a mapping of keys' % path)
    bases = tree.pop('_base_', [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) and b for b in bases):
        raise ConfigError('%s: _base_ must be a file name or a list of file names, got %r'
                          % (path, bases))
    values, sources = {}, {}
    for base in bases:
        base_path = os.path.join(os.path.dirname(path), base)
        if not os.path.isfile(base_path):
            raise ConfigError('%s: _base_ %s does not exist' % (path, base))
        v, s = _read_yaml(os.path.abspath(base_path), chain + (path,))
        values.update(v)
        sources.update(s)
    flat = _flatten(tree, source=path)
    values.update(flat)
    sources.update({k: path for k in flat})
    return values, sources


def _parse_override(text):
    if '=' not in text:
        raise ConfigError('override %r is not KEY=VALUE' % text)
    key, raw = text.split('=', 1)
    try:
        value = _yaml(raw) if raw.strip() else ''
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
    if not _finite(value):
        raise ConfigError('%s: %s = %r: numbers must be finite' % (source, key, value))
    if check is not None and value is not None and not check(value):
        raise ConfigError('%s: %s = %r is not allowed (must be %s)'
                          % (source, key, value, check.__doc__ or 'valid'))
    return value


def _finite(value):
    """No inf / nan anywhere in ``value`` (numbers, lists and mappings of them)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return all(_finite(v) for v in value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    return True


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
        with atomic_write(path, 'w') as f:
            f.write('# resolved from %s\n' % self.path)
            yaml.safe_dump(self.nested(), f, sort_keys=False, default_flow_style=None)


def load_config(name=None, overrides=(), config_dir=None):
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
        if key in RENAMED:
            raise ConfigError('%s: %s is gone: %s' % (sources.get(key, 'default'), key,
                                                      RENAMED[key]))
        if key not in SCHEMA:
            close = [k for k in SCHEMA if k.split('.')[-1] == key.split('.')[-1]]
            hint = ' (did you mean %s?)' % ', '.join(close) if close else ''
            raise ConfigError('%s: unknown config key %s%s'
                              % (sources.get(key, 'default'), key, hint))
    for key in SCHEMA:
        values[key] = _check(key, values[key], sources.get(key, 'default'))
    run_name = os.path.splitext(os.path.basename(path))[0] if path else 'default'
    cfg = Config(values, sources, run_name, path)
    validate(cfg)
    return cfg


def _is_number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def validate(cfg):
    """Every rule that depends on config values only and that ``SCHEMA``'s per-key type and
    range checks cannot express: list contents, and rules between keys.

    Raises :class:`ConfigError` (``cfg.error``: the key and the file that set it) for the
    first rule broken. Called by :func:`load_config`; checks on runtime facts (GPUs
    present, dataset files) are made where those are known (see the module docstring).
    """
    # lists: what their entries must be
    for key in ('data.mean', 'data.std'):
        v = cfg[key]
        if len(v) != 3 or not all(_is_number(x) for x in v):
            raise cfg.error(key, 'must be a list of 3 numbers (RGB), got %r' % (v,))
    if any(x <= 0 for x in cfg['data.std']):
        raise cfg.error('data.std', 'must be positive, got %r' % (cfg['data.std'],))
    gpus = cfg['train.gpus']
    if not all(isinstance(g, int) and not isinstance(g, bool) and g >= 0 for g in gpus):
        raise cfg.error('train.gpus', '= %s: GPU ids are non-negative integers' % (gpus,))
    if len(set(gpus)) != len(gpus):
        raise cfg.error('train.gpus', '= %s lists a GPU twice' % (gpus,))
    steps = cfg['train.lr_steps']
    if not all(_is_number(e) and e >= 0 for e in steps):
        raise cfg.error('train.lr_steps', '= %r must be a list of epochs (non-negative numbers)'
                        % (steps,))

    # precision: which dtype runs on which device (train.gpus [] = the CPU)
    dtype = cfg['train.dtype']
    if dtype == 'float16' and not gpus:
        raise cfg.error('train.dtype', '= float16 needs GPUs (train.gpus is []; MXNet has no '
                                       'fp16 GEMM on CPU); use bfloat16 or float32 on CPU')
    if dtype == 'bfloat16' and gpus:
        raise cfg.error('train.dtype', '= bfloat16 is the CPU mixed-precision path '
                                       '(train.gpus is %s); use float16 on GPUs' % (gpus,))
    if cfg['train.amp'] and dtype == 'float32':
        raise cfg.error('train.amp', 'needs train.dtype float16 or bfloat16')

    # the optimizer's own options
    if cfg['train.lars'] and cfg['train.optimizer'] != 'lbsgd':
        raise cfg.error('train.lars', 'applies to train.optimizer lbsgd only (train.optimizer '
                                      'is %s)' % cfg['train.optimizer'])

    # datasets with a fixed number of classes
    fixed = DATASET_CLASSES.get(cfg['data.dataset'])
    if fixed is not None and cfg['model.classes'] != fixed:
        raise cfg.error('model.classes', '= %d but %s has %d classes'
                        % (cfg['model.classes'], cfg['data.dataset'], fixed))

    # output_dir: a str.format template whose only field is {name}
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(cfg['output_dir'])
                  if f is not None}
    except ValueError as err:
        raise cfg.error('output_dir', '= %r is not a valid template (%s)'
                        % (cfg['output_dir'], err)) from None
    unknown = sorted(fields - {'name'})
    if unknown:
        raise cfg.error('output_dir', '= %r: the only placeholder is {name}, found %s'
                        % (cfg['output_dir'], ', '.join('{%s}' % f for f in unknown)))
