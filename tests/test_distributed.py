"""Distributed training under horovodrun (Gloo, CPU): one engine, Horovod backend."""
import glob
import os
import signal
import socket
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from hcnet.checkpoint import load_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(ROOT, 'scripts', 'train_imagenet.py')
HOROVODRUN = shutil.which('horovodrun')

pytestmark = pytest.mark.skipif(
    HOROVODRUN is None, reason='Horovod is not installed (bash scripts/install.sh distributed)')

SMALL = ['data.dataset=synthetic', 'data.input_size=32', 'model.classes=10',
         'train.reference_batch=32', 'train.lr=0.05', 'train.warmup_epochs=0.5',
         'train.dtype=float32', 'train.gpus=[]', 'data.num_workers=0', 'checkpoint.every=1']


def horovodrun(np_, args, **kwargs):
    cmd = [HOROVODRUN, '-np', str(np_), '-H', 'localhost:%d' % np_, '--gloo', sys.executable,
           TRAIN, '--config', 'hc_m10_i10_dist.yaml'] + args
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kwargs)


def test_two_processes_train_and_only_rank0_writes(tmp_path):
    out = str(tmp_path / 'run')
    proc = horovodrun(2, SMALL + ['data.synthetic_samples=256', 'train.batch_size=16',
                                  'train.epochs=2', 'output_dir=%s' % out])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = proc.stdout + proc.stderr
    assert '2 process(es)' in text
    with open(os.path.join(out, 'metrics.jsonl')) as f:
        assert [line.count('"epoch"') for line in f] == [1, 1]    # one writer, two epochs
    assert text.count('final: epoch 2') == 1
    assert text.count('epoch 1/2  train loss') == 1
    assert sorted(os.listdir(out)) == sorted(
        ['config.yaml', 'train.log', 'metrics.jsonl', 'curves.png', 'last.ckpt', 'best.ckpt',
         'epoch0001.ckpt', 'epoch0002.ckpt'])
    assert load_checkpoint(os.path.join(out, 'last.ckpt'))['meta']['epoch'] == 1


def test_gradients_are_averaged_across_processes(tmp_path):
    """K steps of 2 processes x batch b == 1 process x batch 2b (same data, no Mixup).

    BatchNorm uses its running statistics (the per-process batch statistics would
    otherwise differ legitimately) and the lr is small, so float rounding is not
    amplified; a run whose gradients were summed instead of averaged (the same as
    doubling the lr) must differ by far more than the tolerance.
    """
    common = SMALL + ['data.synthetic_samples=192', 'data.shard_by_rank=true', 'train.epochs=1',
                      'train.steps_per_epoch=3', 'train.mixup_alpha=0', 'train.seed=3',
                      'train.warmup_epochs=0',
                      'model.kwargs={dropout: 0.0, norm_kwargs: {use_global_stats: true}}']
    runs = {}
    for key, args in (('two', None), ('one', ['train.lr=0.005']), ('summed', ['train.lr=0.01'])):
        out = str(tmp_path / key)
        if args is None:
            proc = horovodrun(2, common + ['train.lr=0.005', 'train.batch_size=16',
                                           'output_dir=%s' % out])
        else:
            proc = subprocess.run([sys.executable, TRAIN, '--config', 'hc_m10_i10_dist.yaml']
                                  + common + args + ['train.batch_size=32', 'output_dir=%s' % out],
                                  capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        runs[key] = load_checkpoint(os.path.join(out, 'last.ckpt'))['params']
    a, b, c = runs['two'], runs['one'], runs['summed']
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-7, err_msg=name)
    assert any(not np.allclose(a[n], c[n], rtol=1e-4, atol=1e-6) for n in a)


def _worker_pids(marker, rank):
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


def test_killing_a_worker_ends_the_job_and_the_checkpoint_resumes(tmp_path):
    out = str(tmp_path / 'run')
    cmd = [HOROVODRUN, '-np', '2', '-H', 'localhost:2', '--gloo', sys.executable, TRAIN,
           '--config', 'hc_m10_i10_dist.yaml'] + SMALL + [
        'data.synthetic_samples=256', 'train.batch_size=16', 'train.epochs=50',
        'output_dir=%s' % out]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = os.path.join(out, 'metrics.jsonl')
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if os.path.isfile(metrics) and open(metrics).read().count('\n') >= 1:
            break
        time.sleep(0.1)
    assert proc.poll() is None, 'job ended before a worker could be killed'
    victims = _worker_pids(out, 1)
    assert victims, 'rank-1 worker not found'
    os.kill(victims[0], signal.SIGKILL)
    tic = time.time()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail('job still running 60 s after a worker was killed')
    assert proc.returncode != 0
    assert time.time() - tic < 60
    for pid in _worker_pids(out, 0):           # no orphaned rank 0 left behind
        pytest.fail('rank-0 worker %d survived' % pid)
    ckpt = load_checkpoint(os.path.join(out, 'last.ckpt'))   # intact
    done = ckpt['meta']['epoch'] + 1
    resumed = subprocess.run([sys.executable, TRAIN, '--config', 'hc_m10_i10_dist.yaml'] + SMALL
                             + ['data.synthetic_samples=256', 'train.batch_size=16',
                                'train.epochs=%d' % (done + 1), 'output_dir=%s' % out,
                                'resume=auto'], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert load_checkpoint(os.path.join(out, 'last.ckpt'))['meta']['epoch'] == done


# ----------------------------------------------------------------------------- two hosts
def _netns_unavailable():
    if os.geteuid() != 0:
        return 'needs root to create network namespaces'
    if not shutil.which('ip'):
        return 'needs iproute2 (ip netns)'
    if not os.path.exists('/usr/sbin/sshd') or not shutil.which('ssh'):
        return 'needs openssh-server and openssh-client'
    probe = 'hcnetprobe%d' % os.getpid()
    if subprocess.run(['ip', 'netns', 'add', probe], capture_output=True).returncode != 0:
        return 'ip netns add is not permitted here'
    subprocess.run(['ip', 'netns', 'del', probe], capture_output=True)
    return None


def _sh(*cmd, ns=None):
    full = (['ip', 'netns', 'exec', ns] if ns else []) + list(cmd)
    proc = subprocess.run(full, capture_output=True, text=True)
    assert proc.returncode == 0, '%s: %s' % (' '.join(full), proc.stderr)
    return proc.stdout


@pytest.fixture
def two_hosts(tmp_path):
    """Two network namespaces joined by a veth pair, each running sshd (key login)."""
    reason = _netns_unavailable()
    if reason:
        print('multi-host test skipped: %s' % reason)
        pytest.skip(reason)
    tag = str(os.getpid())[-5:]
    hosts = {'hosta%s' % tag: '10.213.%d.1' % (os.getpid() % 250),
             'hostb%s' % tag: '10.213.%d.2' % (os.getpid() % 250)}
    names = list(hosts)
    key = str(tmp_path / 'id_ed25519')
    _sh('ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', key)
    _sh('ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', str(tmp_path / 'host_key'))
    shutil.copy(key + '.pub', str(tmp_path / 'authorized_keys'))
    os.makedirs('/run/sshd', exist_ok=True)
    pids = []
    try:
        for ns in names:
            _sh('ip', 'netns', 'add', ns)
        _sh('ip', 'link', 'add', 'hv%sa' % tag, 'type', 'veth', 'peer', 'name', 'hv%sb' % tag)
        for ns, end in zip(names, ('a', 'b')):
            _sh('ip', 'link', 'set', 'hv%s%s' % (tag, end), 'netns', ns)
            _sh('ip', 'link', 'set', 'hv%s%s' % (tag, end), 'name', 'hvd0', ns=ns)
            _sh('ip', 'addr', 'add', hosts[ns] + '/24', 'dev', 'hvd0', ns=ns)
            _sh('ip', 'link', 'set', 'hvd0', 'up', ns=ns)
            _sh('ip', 'link', 'set', 'lo', 'up', ns=ns)
            os.makedirs('/etc/netns/%s' % ns, exist_ok=True)
            with open('/etc/netns/%s/hosts' % ns, 'w') as f:
                # the machine's own name resolves, inside each host, to that host's address
                f.write('127.0.0.1 localhost\n%s %s\n' % (hosts[ns], socket.gethostname())
                        + ''.join('%s %s\n' % (ip, h) for h, ip in hosts.items()))
            conf = tmp_path / ('sshd_%s.conf' % ns)
            conf.write_text('Port 2222\nListenAddress %s\nHostKey %s\nAuthorizedKeysFile %s\n'
                            'PermitRootLogin yes\nPasswordAuthentication no\nStrictModes no\n'
                            'UsePAM no\nPidFile %s\n' % (hosts[ns], tmp_path / 'host_key',
                                                         tmp_path / 'authorized_keys',
                                                         tmp_path / ('%s.pid' % ns)))
            _sh('/usr/sbin/sshd', '-f', str(conf), '-E', str(tmp_path / ('%s.log' % ns)), ns=ns)
            for _ in range(50):
                if (tmp_path / ('%s.pid' % ns)).exists():
                    pids.append(int((tmp_path / ('%s.pid' % ns)).read_text()))
                    break
                time.sleep(0.1)
        yield names, key
    finally:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for ns in names:
            subprocess.run(['ip', 'netns', 'del', ns], capture_output=True)
            shutil.rmtree('/etc/netns/%s' % ns, ignore_errors=True)


@pytest.mark.skipif(
    not os.environ.get('HCNET_MULTIHOST_TEST'),
    reason='opt-in (HCNET_MULTIHOST_TEST=1): across two network namespaces this run passed '
           'only some of the time here (Gloo receive timeouts), so it is kept out of CI until '
           'that is understood')
def test_training_across_two_hosts(two_hosts, tmp_path):
    (host_a, host_b), key = two_hosts
    out = str(tmp_path / 'run')
    cmd = ['ip', 'netns', 'exec', host_a, HOROVODRUN, '-np', '2', '-H',
           '%s:1,%s:1' % (host_a, host_b), '--network-interfaces', 'hvd0', '--ssh-port', '2222',
           '--ssh-identity-file', key, '--gloo', sys.executable, TRAIN, '--config',
           'hc_m10_i10_dist.yaml'] + SMALL + ['data.synthetic_samples=128', 'train.batch_size=16',
                                              'train.epochs=1', 'output_dir=%s' % out]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = proc.stdout + proc.stderr
    assert '2 process(es)' in text and text.count('final: epoch 1') == 1
    assert load_checkpoint(os.path.join(out, 'last.ckpt'))['meta']['epoch'] == 0
