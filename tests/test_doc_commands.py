"""Every command the README and docs/ show runs as written, so they cannot drift.

The commands are read from the ``bash`` blocks of README.md, docs/*.md and docker/README.md
and from the README's command table. Each runs in a scratch directory (``scripts/`` linked
in) in the order the pages give them, training commands first, so that
``runs/fashion_mnist/best.ckpt`` exists when ``hcnet eval`` asks for it. A suffix makes
training tiny (fewer images and steps, synthetic data where the command names ImageNet) but
never changes devices or precision: a CPU command that would fail on a CPU fails here.
Commands that need what this machine lacks are skipped, each for a reason in ``_skip``;
benchmarks that take minutes are only parsed (every option and value accepted by the
command's own parser).
"""
import argparse
import glob
import os
import re
import shlex
import shutil
import subprocess
import sys

import mxnet as mx
import pytest

from hcnet.train.config import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ['README.md', 'docker/README.md'] + sorted(
    os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, 'docs', '*.md')))
RUNNERS = ('hcnet ', 'python scripts/', 'python -m hcnet ', 'horovodrun ')
# benchmarks of minutes: parsed, not run (their own tests run them small)
PARSE_ONLY = ('bench-latency', 'profile-latency', 'bench-train')
TINY_DATA = ['data.dataset=synthetic', 'data.synthetic_samples=32', 'data.input_size=32',
             'model.classes=10']
TINY_RUN = ['train.batch_size=8', 'train.epochs=1', 'train.steps_per_epoch=2',
            'data.val_samples=16', 'data.num_workers=0']


def _blocks(text):
    """Lines of the fenced code blocks of a Markdown page (bash / sh / unlabelled)."""
    out, inside, keep = [], False, False
    for line in text.splitlines():
        fence = re.match(r'\s*```(\w*)', line)
        if fence:
            inside, keep = not inside, fence.group(1) in ('', 'bash', 'sh', 'shell')
            continue
        if inside and keep:
            out.append(line)
    return out


def _joined(lines):
    """Backslash continuations joined, comments dropped."""
    cmds, current = [], ''
    for line in lines:
        current += line.rstrip()
        if current.endswith('\\'):
            current = current[:-1] + ' '
            continue
        cmds.append(re.sub(r'\s+#.*$', '', current).strip())
        current = ''
    return cmds


def commands():
    """(page, command) for every command the pages show, in page order."""
    found = []
    for page in PAGES:
        text = open(os.path.join(ROOT, page)).read()
        cmds = _joined(_blocks(text))
        if page == 'README.md':      # the command table's examples
            cmds += re.findall(r'^\|[^|]*\|[^|]*\| `(hcnet [^`]+)` \|', text, re.M)
        for cmd in cmds:
            for part in cmd.split('&&'):
                part = part.strip()
                if part.startswith(RUNNERS) and (page, part) not in found:
                    found.append((page, part))
    return found


def _subcommand(argv):
    """The hcnet subcommand of a command line, and its arguments."""
    if argv[0] == 'horovodrun':
        argv = argv[argv.index('hcnet'):] if 'hcnet' in argv else argv[argv.index('python'):]
    if argv[:3] == ['python', '-m', 'hcnet']:
        argv = ['hcnet'] + argv[3:]
    if argv[0] == 'hcnet':
        return argv[1], argv[2:]
    script = os.path.basename(argv[1])
    names = {'train_imagenet.py': 'train', 'eval_imagenet.py': 'eval', 'tables.py': 'tables',
             'export_model.py': 'export', 'publish_model.py': 'publish',
             'irnet_data.py': 'irnet-data', 'describe.py': 'describe'}
    return names.get(script, script), argv[2:]


def _config_of(args):
    if '--config' in args:
        return args[args.index('--config') + 1]
    return None


def _skip(cmd, sub, args):
    """Why a command cannot run on this machine, or None."""
    if re.search(r'-np (?!2 )\d+|--hostfile|host1:|node1:', cmd):
        return 'needs a cluster of hosts'
    if sub == 'gpu_smoke.py' and '--dry-run' not in args:
        return 'needs GPUs (its --dry-run is tests/test_gpu_smoke.py)'
    if sub == 'irnet-data' and '/data/imagenet' in cmd:
        return 'needs an ImageNet directory'
    if sub == 'train':
        overrides = [a for a in args if '=' in a and not a.startswith('-')]
        cfg = load_config(_config_of(args), overrides)
        if cfg['train.gpus'] and mx.context.num_gpus() == 0:
            return 'its config trains on GPUs (train.gpus=%s)' % cfg['train.gpus']
    return None


def _suffix(sub, args):
    if sub != 'train' and sub != 'eval':
        return []
    overrides = [a for a in args if '=' in a and not a.startswith('-')]
    cfg = load_config(_config_of(args), overrides)
    # fashion_mnist is small enough to keep; anything else becomes tiny synthetic data
    data = [] if cfg['data.dataset'] == 'fashion_mnist' else TINY_DATA
    return data + (TINY_RUN if sub == 'train' else ['data.val_samples=16'])


def _order(found):
    """Training first (in page order), then the rest in page order."""
    def is_train(item):
        return _subcommand(shlex.split(item[1]))[0] == 'train'
    return [c for c in found if is_train(c)] + [c for c in found if not is_train(c)]


class _Parsed(Exception):
    pass


def _parse_only(sub, args, monkeypatch):
    from hcnet import cli
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, *a, **kw):
        original(self, *a, **kw)          # exits 2 on a bad option or value
        raise _Parsed()
    monkeypatch.setattr(argparse.ArgumentParser, 'parse_args', parse_then_stop)
    with pytest.raises(_Parsed):
        cli.run(sub, args)
    monkeypatch.undo()


def test_the_pages_show_commands():
    found = commands()
    subs = {_subcommand(shlex.split(c))[0] for _, c in found}
    # the quick start, and every subcommand the README's table lists
    assert ('README.md', 'python scripts/train_imagenet.py --config fashion_mnist') in found
    assert {'train', 'eval', 'export', 'publish', 'describe', 'tables', 'bench-latency'} <= subs


def test_every_documented_command_runs_as_written(tmp_path, monkeypatch):
    work = tmp_path / 'work'
    work.mkdir()
    os.symlink(os.path.join(ROOT, 'scripts'), str(work / 'scripts'))
    # the placeholder weights of `hcnet export hc_m10_i10 --pretrained w.params`
    import hcnet
    net = hcnet.get_model('hc_m10_i10')
    net(mx.nd.zeros((1, 3, 32, 32)))
    net.save_parameters(str(work / 'w.params'))
    env = dict(os.environ, OMP_NUM_THREADS='1',
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get('PATH', ''))
    ran, skipped, failures = [], [], []
    for page, cmd in _order(commands()):
        argv = shlex.split(cmd)
        sub, args = _subcommand(argv)
        reason = _skip(cmd, sub, args)
        if reason:
            skipped.append('%s: %s (%s)' % (page, cmd, reason))
            continue
        if sub in PARSE_ONLY:
            _parse_only(sub, args, monkeypatch)
            ran.append(cmd)
            continue
        full = cmd + ' ' + ' '.join(shlex.quote(a) for a in _suffix(sub, args))
        if sub == 'train' and '--resume' not in args and 'resume=' not in cmd:
            full += ' overwrite=true'    # two pages may train the same config
        proc = subprocess.run(['bash', '-c', full], cwd=str(work), env=env,
                              capture_output=True, text=True, timeout=600)
        ran.append(cmd)
        if proc.returncode != 0:
            failures.append('%s: `%s` exited %d: %s' % (page, full, proc.returncode,
                                                        (proc.stderr or proc.stdout)[-600:]))
    print('\nran %d documented commands; skipped %d:\n  %s'
          % (len(ran), len(skipped), '\n  '.join(skipped)))
    assert not failures, '\n'.join(failures)
    assert len(ran) >= 20
