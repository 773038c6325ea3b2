"""Experiment configs: every file loads and builds; bad input ends in exit 2 naming the key."""
import glob
import os
import re
import subprocess
import sys

import pytest
import yaml

from hcnet import get_model
from hcnet.model_zoo import HC_RECIPES, is_model
from hcnet.train.config import (CONFIG_DIR, SCHEMA, ConfigError, find_config, load_config,
                                validate)
from hcnet.paper.reference import PAPER_ROWS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(ROOT, 'scripts', 'train_imagenet.py')
CONFIGS = sorted(p for p in glob.glob(os.path.join(CONFIG_DIR, '**', '*.yaml'), recursive=True)
                 if '_base' not in p)


def test_every_schema_key_has_a_comment():
    for key, (_, _, _, comment) in SCHEMA.items():
        assert comment and len(comment) > 5, key


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: os.path.relpath(p, CONFIG_DIR))
def test_config_loads_validates_and_builds(path):
    cfg = load_config(path)
    name = cfg['model.name']
    if is_model(name):
        net = get_model(name, classes=cfg['model.classes'], **cfg['model.kwargs'])
        assert net.classes == cfg['model.classes']
    else:   # a GluonCV baseline, trained with the same recipe
        import gluoncv
        net = gluoncv.model_zoo.get_model(name, classes=cfg['model.classes'],
                                          **cfg['model.kwargs'])
        assert net is not None
    assert cfg['paper.recipe'] in ('single-node', 'distributed', 'quickstart')


def test_one_single_node_and_one_distributed_config_per_network():
    names = {os.path.basename(p)[:-5] for p in CONFIGS}
    for model in HC_RECIPES:
        assert model in names and model + '_dist' in names, model
        single, dist = load_config(model + '.yaml'), load_config(model + '_dist.yaml')
        assert single['model.name'] == dist['model.name'] == model
        assert single['train.optimizer'] == 'nag' and dist['train.optimizer'] == 'lbsgd'
        assert dist['data.shard'] == 'node'


def test_configs_name_their_row_and_the_papers_top1():
    for model in HC_RECIPES:
        for suffix, attr in (('', 'top1'), ('_dist', 'top1_dist')):
            cfg = load_config(model + suffix + '.yaml')
            row = next(r for r in PAPER_ROWS
                       if r.table == cfg['paper.table'] and r.label == cfg['paper.row'])
            assert row.model == model
            if model.startswith('hc_effb'):    # the paper's EfficientNet runs are distributed
                expected = row.top1 if suffix else None
            else:
                expected = getattr(row, attr)
            assert cfg['paper.top1'] == expected, (model, suffix)


def test_paper_recipes():
    single = load_config('hc_m10_i10.yaml')
    assert (single['train.lr'], single['train.wd'], single['train.epochs'],
            single['train.warmup_epochs'], single['train.batch_size'] * len(single['train.gpus'])
            ) == (2.6, 3e-5, 360, 5, 2048)
    dist = load_config('hc_m10_i10_dist.yaml')
    assert (dist['train.lr'], dist['train.momentum'], dist['train.epochs'],
            dist['train.batch_size']) == (0.8, 0.9, 80, 128)
    assert dist['train.mixup_alpha'] > 0


def test_bare_name_and_path_resolve_to_the_same_file():
    assert find_config('hc_m10_i10.yaml') == find_config(
        os.path.join(CONFIG_DIR, 'mobilenetv3', 'hc_m10_i10.yaml'))
    assert find_config('hc_m10_i10') == find_config('hc_m10_i10.yaml')
    with pytest.raises(ConfigError, match='not found'):
        find_config('no_such_config.yaml')


def test_inheritance_and_overrides():
    cfg = load_config('fashion_mnist', ['train.epochs=1', 'train.gpus=[]'])
    assert cfg['model.name'] == 'hc_m10_i10'            # from hc_m10_i10.yaml
    assert cfg['train.optimizer'] == 'nag'               # from _base/single_node.yaml
    assert cfg['data.dataset'] == 'fashion_mnist'        # from the quickstart file
    assert cfg['train.epochs'] == 1 and cfg.source('train.epochs') == 'command line'
    assert cfg.source('train.optimizer').endswith('single_node.yaml')


def test_bad_values_name_the_key_and_file(tmp_path):
    bad = tmp_path / 'bad.yaml'
    bad.write_text('_base_: %s\ntrain:\n  lr: -0.1\n' % find_config('fashion_mnist'))
    with pytest.raises(ConfigError) as err:
        load_config(str(bad))
    assert 'train.lr' in str(err.value) and str(bad) in str(err.value)
    bad.write_text('train:\n  lerning_rate: 0.1\n')
    with pytest.raises(ConfigError, match='unknown config key train.lerning_rate'):
        load_config(str(bad))
    bad.write_text('train: [1, 2\n')
    with pytest.raises(ConfigError, match='not valid YAML'):
        load_config(str(bad))


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config('fashion_mnist', ['train.lr=0.05'])
    out = tmp_path / 'config.yaml'
    cfg.dump(str(out))
    tree = yaml.safe_load(out.read_text())
    assert tree['train']['lr'] == 0.05 and tree['model']['name'] == 'hc_m10_i10'
    again = load_config(str(out))
    assert dict(again) == dict(cfg)


@pytest.mark.parametrize('override,key', [
    ('train.bogus=1', 'train.bogus'),
    ('train.epochs=many', 'train.epochs'),
    ('train.lr=-1', 'train.lr'),
    ('train.batch_size=0', 'train.batch_size'),
    ('model.name=resnet_nope', 'model.name'),
    ('data.root=/nonexistent/fashion', 'data.root'),
    ('train.dtype=float16', 'train.dtype'),
    ('model.classes=5', 'model.classes'),      # fashion_mnist has 10
])
def test_train_script_rejects_bad_config_with_exit_2(tmp_path, override, key):
    out = tmp_path / 'run'
    proc = subprocess.run([sys.executable, TRAIN, '--config', 'fashion_mnist', override,
                           'output_dir=%s' % out], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [l for l in proc.stderr.strip().splitlines() if l.startswith('error:')]
    assert len(lines) == 1 and key in lines[0], proc.stderr
    assert 'Traceback' not in proc.stderr
    assert not out.exists()      # nothing written before the config is known to be good


# ----------------------------------------------------------------------------- validate()
# Rules on list contents and between keys: one pass (hcnet.train.config.validate), run by
# load_config, each error naming the key and where it was set.

@pytest.mark.parametrize('overrides,key,message', [
    (['train.dtype=float16'], 'train.dtype', 'needs GPUs'),
    (['train.dtype=bfloat16', 'train.gpus=[0]'], 'train.dtype', 'CPU mixed-precision'),
    (['train.amp=true'], 'train.amp', 'needs train.dtype float16 or bfloat16'),
    (['data.mean=[0.5, 0.5]'], 'data.mean', 'list of 3 numbers'),
    (['data.std=[0.3, 0, 0.3]'], 'data.std', 'must be positive'),
    (['train.gpus=[0, 0]'], 'train.gpus', 'lists a GPU twice'),
    (['train.gpus=[-1]'], 'train.gpus', 'non-negative integers'),
    (['train.lr_steps=[10, soon]'], 'train.lr_steps', 'list of epochs'),
    (['train.lars=true'], 'train.lars', 'lbsgd only'),
    (['model.classes=5'], 'model.classes', 'fashion_mnist has 10 classes'),
    (['output_dir=runs/{nam}'], 'output_dir', 'only placeholder is {name}'),
    (['output_dir=runs/{name'], 'output_dir', 'not a valid template'),
    (['data.val_samples=0'], 'data.val_samples', 'must be positive'),
    (['train.steps_per_epoch=0'], 'train.steps_per_epoch', 'must be positive'),
])
def test_cross_key_rules_name_the_key(overrides, key, message):
    with pytest.raises(ConfigError) as err:
        load_config('fashion_mnist', ['train.gpus=[]'] + overrides)
    text = str(err.value)
    assert key in text and message in text, text
    assert text.startswith('command line: ' + key), text


def test_validate_names_the_file_that_set_the_key(tmp_path):
    bad = tmp_path / 'gpu_recipe_on_cpu.yaml'
    bad.write_text('_base_: %s\ntrain:\n  dtype: float16\n' % find_config('fashion_mnist'))
    with pytest.raises(ConfigError, match=r'%s: train.dtype = float16 needs GPUs'
                       % re.escape(str(bad))):
        load_config(str(bad))
    assert load_config(str(bad), ['train.gpus=[0]'])['train.dtype'] == 'float16'


def test_validate_runs_on_a_loaded_config():
    cfg = load_config('fashion_mnist', ['train.lr=0.05'])
    validate(cfg)                             # a loaded config is valid
    cfg['train.amp'] = True
    with pytest.raises(ConfigError, match='train.amp needs train.dtype'):
        validate(cfg)


def test_shipped_configs_are_consistent_for_a_cpu_run():
    # the GPU recipes on a CPU take train.dtype=float32 too (fp16 has no CPU GEMM)
    assert load_config('hc_m10_i10.yaml', ['train.gpus=[]', 'train.dtype=float32'])
    with pytest.raises(ConfigError, match='train.dtype = float16 needs GPUs'):
        load_config('hc_m10_i10.yaml', ['train.gpus=[]'])
