"""``hcnet figure2``: the paper's Figure 2 (top-1 against MAdds) from the reference numbers,
with run directories on it."""
import json
import os

import pytest
from PIL import Image

import hcnet
from hcnet.cli import run
from hcnet.paper.baselines import BASELINES
from hcnet.paper.figure2 import paper_points, read_run
from hcnet.paper.reference import PAPER_ROWS


def _no_tmp(folder):
    return not [f for f in os.listdir(folder) if f.endswith('.tmp')]


def test_paper_points_cover_tables_2_and_4():
    points = paper_points()
    labels = {(p.table, p.label.split(' %dpx' % p.input_size)[0]) for p in points}
    for row in PAPER_ROWS:
        if row.table in (2, 4) and row.madds is not None and row.top1 is not None:
            assert (row.table, row.label) in labels, row
    for b in BASELINES:
        if b.table in (2, 4) and b.madds is not None and b.top1 is not None:
            assert (b.table, b.label) in labels, b
    assert len(labels) == len(points)                  # each (table, label) once
    hc = [p for p in points if p.kind == 'HC']
    assert hc and all(p.model in hcnet.list_models() for p in hc)
    assert {p.kind for p in points} == {'HC', 'human', 'searched'}


def test_reference_numbers_alone(tmp_path, capsys):
    out = tmp_path / 'fig'
    assert run('figure2', ['--out', str(out)]) == 0
    assert 'wrote' in capsys.readouterr().out
    with Image.open(str(out / 'figure2.png')) as img:
        assert img.format == 'PNG' and img.size[0] > 800
    md = (out / 'figure2.md').read_text()
    rows = [line for line in md.splitlines() if line.startswith('| ') and '---' not in line]
    assert len(rows) == 1 + len(paper_points())        # the header, one row per point
    assert '## Runs' not in md
    assert _no_tmp(str(out))


def _run_dir(path, model, dataset, classes, size, top1s, kwargs=None):
    path.mkdir(parents=True)
    cfg = {'model': {'name': model, 'classes': classes, 'kwargs': kwargs or {}},
           'data': {'dataset': dataset, 'input_size': size}}
    (path / 'config.yaml').write_text(json.dumps(cfg))          # JSON is YAML
    lines = [json.dumps({'epoch': i + 1, 'val_top1': t, 'val_top5': 99.0})
             for i, t in enumerate(top1s)]
    (path / 'metrics.jsonl').write_text('\n'.join(lines) + '\n{"epoch": 9, "val_t')  # torn tail
    return str(path)


def test_with_run_directories(tmp_path, capsys):
    hc = _run_dir(tmp_path / 'runs' / 'hc', 'hc_m5_i10', 'imagenet_rec', 1000, 224,
                  [10.0, 30.5, 20.25])
    gcv = _run_dir(tmp_path / 'runs' / 'mbv1', 'mobilenet0.25', 'fashion_mnist', 10, 32, [71.5])
    out = tmp_path / 'fig'
    assert run('figure2', [hc, gcv, '--out', str(out)]) == 0
    printed = capsys.readouterr().out
    assert hc in printed and gcv in printed

    # what is drawn: the best top-1, MAdds measured with hcnet.count (paper convention for
    # an HC network, standard for the GluonCV one)
    net = hcnet.get_model('hc_m5_i10')
    paper_madds = hcnet.count(net, 224).paper_for(net.base)[0]
    point = read_run(hc)
    assert point.top1 == 30.5 and point.best_epoch == 2 and point.epochs == 3
    assert point.convention == 'paper' and point.madds == pytest.approx(paper_madds)
    from hcnet.model_zoo import create_model
    std = hcnet.count(create_model('mobilenet0.25', classes=10), 32).standard()
    point = read_run(gcv)
    assert point.convention == 'standard' and point.madds == pytest.approx(std[0])
    assert point.std_params == pytest.approx(std[1]) and point.top1 == 71.5

    md = (out / 'figure2.md').read_text()
    assert '## Runs' in md and '`%s`' % hc in md and '`%s`' % gcv in md
    assert '| %.2f | paper |' % paper_madds in md and '| 30.50 | 2 | 3 |' in md
    assert 'not comparable' in md and '`%s`' % gcv in md.split('not comparable')[0].splitlines()[-1]
    with Image.open(str(out / 'figure2.png')) as img:
        assert img.format == 'PNG'
    assert _no_tmp(str(out))


@pytest.mark.parametrize('damage,needle', [
    ('missing', 'does not exist'),
    ('no_config', 'lacks config.yaml'),
    ('no_metrics', 'lacks metrics.jsonl'),
    ('empty_metrics', 'has no epoch with a val_top1'),
    ('bad_model', 'no_such_model'),
])
def test_bad_run_directory_is_one_line(tmp_path, capsys, damage, needle):
    good = _run_dir(tmp_path / 'good', 'hc_m5_i10', 'imagenet_rec', 1000, 224, [1.0])
    bad = tmp_path / 'bad'
    if damage != 'missing':
        _run_dir(bad, 'no_such_model' if damage == 'bad_model' else 'hc_m5_i10',
                 'imagenet_rec', 1000, 224, [1.0])
        if damage == 'no_config':
            os.remove(str(bad / 'config.yaml'))
        elif damage == 'no_metrics':
            os.remove(str(bad / 'metrics.jsonl'))
        elif damage == 'empty_metrics':
            (bad / 'metrics.jsonl').write_text('')
    out = tmp_path / 'fig'
    assert run('figure2', [good, str(bad), '--out', str(out)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith('error: ') and needle in err[0], err
    assert str(bad) in err[0]
    assert not out.exists()                             # nothing drawn
