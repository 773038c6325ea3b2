"""Pretrained-weights store: publish, serve over real HTTP on 127.0.0.1, download, verify, cache."""
import functools
import hashlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

import mxnet as mx
import numpy as np
import pytest

import hcnet
from hcnet.commands import publish as publish_model
from hcnet.store import fetch as model_store
from hcnet.train.checkpoint import save_checkpoint
from hcnet.model_zoo import PretrainedError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PUBLISH = os.path.join(ROOT, 'scripts', 'publish_model.py')
NAME = 'hc_m10_i10'




def _x(seed=1):
    return mx.nd.array(np.random.RandomState(seed).randn(2, 3, 32, 32).astype('float32'))


def _make_checkpoint(path, seed=0, classes=10):
    """A 'trained' hc_m10_i10 for 10 classes: forward at 32x32, then perturbed parameters."""
    net = hcnet.get_model(NAME, classes=classes)
    net(_x())
    rng = np.random.RandomState(seed)
    for pname, p in sorted(net.collect_params().items()):
        v = p.data().asnumpy()
        if pname.endswith(('running_var', 'gamma')):
            v = rng.uniform(0.8, 1.2, v.shape)
        elif pname.endswith(('running_mean', 'beta', 'bias')):
            v = rng.uniform(-0.1, 0.1, v.shape)
        else:
            v = v * rng.uniform(0.8, 1.2, v.shape)
        p.set_data(mx.nd.array(v))
    config = {'model': {'name': NAME, 'classes': classes, 'kwargs': {}},
              'data': {'dataset': 'synthetic', 'input_size': 32,
                       'mean': [0.485, 0.456, 0.406], 'std': [0.229, 0.224, 0.225]}}
    save_checkpoint(path, net, None, {'epoch': 4, 'model': NAME, 'classes': classes,
                                      'top1': 31.25, 'best_top1': 31.25, 'config': config})
    return net, net(_x()).asnumpy()


@pytest.fixture(scope='module')
def published(tmp_path_factory):
    """(store dir, zip store dir, entry, expected outputs, second version entry / outputs)."""
    base = tmp_path_factory.mktemp('published')
    ckpt = str(base / 'best.ckpt')
    net, expect = _make_checkpoint(ckpt)
    store = str(base / 'store')
    entry = publish_model.publish(ckpt, store)
    zstore = str(base / 'zstore')
    zentry = publish_model.publish(ckpt, zstore, NAME, use_zip=True)
    ckpt2 = str(base / 'v2.ckpt')
    _, expect2 = _make_checkpoint(ckpt2, seed=5)
    v2store = str(base / 'v2store')
    shutil.copytree(store, v2store)
    entry2 = publish_model.publish(ckpt2, v2store)
    return dict(store=store, zstore=zstore, v2store=v2store, entry=entry, zentry=zentry,
                entry2=entry2, expect=expect, expect2=expect2, ckpt=ckpt, net=net)


class Store:
    """A real HTTP server on 127.0.0.1 (port 0) serving a directory, counting requests."""

    def __init__(self, directory):
        self.directory = directory
        self.counts = {}
        self.delay = {}          # path -> seconds before answering
        self.status = {}         # path -> list of HTTP statuses to answer first (then serve)
        self.corrupt = set()     # paths served with flipped bytes (same length)
        self.lock = threading.Lock()
        store = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):
                path = self.path.split('?')[0]
                with store.lock:
                    store.counts[path] = store.counts.get(path, 0) + 1
                    queued = store.status.get(path)
                    status = queued.pop(0) if queued else None
                time.sleep(store.delay.get(path, 0))
                if status is not None:
                    self.send_error(status)
                    return
                if path in store.corrupt:
                    with open(os.path.join(store.directory, path.lstrip('/')), 'rb') as f:
                        body = bytearray(f.read())
                    for i in range(0, len(body), 4096):
                        body[i] ^= 0xFF
                    self.send_response(200)
                    self.send_header('Content-Length', str(len(body)))
                    self.end_headers()
                    self.wfile.write(bytes(body))
                    return
                super().do_GET()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(
            ('127.0.0.1', 0), functools.partial(Handler, directory=directory))
        self.url = 'http://127.0.0.1:%d/' % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def n(self, path):
        return self.counts.get('/' + path.lstrip('/'), 0)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """No real home cache, fast retries, a fresh per-process index memo for every test."""
    monkeypatch.setenv('MXNET_HOME', str(tmp_path / 'mxnet_home'))
    monkeypatch.delenv('HCNET_REPO_URL', raising=False)
    monkeypatch.setattr(model_store, 'RETRY_BACKOFF', 0.01)
    model_store.clear_index_cache()
    yield
    model_store.clear_index_cache()


@pytest.fixture
def serve(monkeypatch):
    servers = []

    def start(directory):
        store = Store(directory)
        servers.append(store)
        monkeypatch.setenv('HCNET_REPO_URL', store.url)
        return store
    yield start
    for store in servers:
        store.close()


def _sha1(path):
    with open(path, 'rb') as f:
        return hashlib.sha1(f.read()).hexdigest()


def _leftovers(root):
    """Files in the cache other than verified weights and index copies."""
    if not os.path.isdir(root):
        return []
    return sorted(f for f in os.listdir(root) if not (
        f.endswith('.params') or (f.startswith('index-') and f.endswith('.json'))))


def _weights(root):
    return sorted(f for f in os.listdir(root) if f.endswith(('.params', '.zip'))) \
        if os.path.isdir(root) else []


# --------------------------------------------------------------------------------------
# publishing

def test_publish_writes_store_files_and_index(published):
    entry, store = published['entry'], published['store']
    fname = '%s-%s.params' % (NAME, entry['sha1'][:8])
    assert entry['file'] == fname
    assert sorted(os.listdir(store)) == sorted([fname, 'index.json'])
    assert _sha1(os.path.join(store, fname)) == entry['sha1']
    assert entry['size'] == os.path.getsize(os.path.join(store, fname))
    with open(os.path.join(store, 'index.json')) as f:
        index = json.load(f)
    got = index[NAME]
    assert got['sha1'] == entry['sha1']
    assert (got['dataset'], got['classes'], got['input_size'], got['top1'], got['epoch']) == \
        ('synthetic', 10, 32, 31.25, 4)
    assert got['config']['model']['name'] == NAME
    assert 'previous' not in got
    # the .params file holds exactly the checkpoint's arrays
    loaded = mx.nd.load(os.path.join(store, fname))
    from hcnet.train.checkpoint import load_checkpoint
    ref = load_checkpoint(published['ckpt'])['params']
    assert sorted(loaded) == sorted(ref)
    assert all(np.array_equal(loaded[k].asnumpy(), ref[k]) for k in ref)


def test_publish_zip_and_previous_versions(published):
    zentry, zstore = published['zentry'], published['zstore']
    assert zentry['file'] == '%s-%s.zip' % (NAME, zentry['sha1'][:8])
    assert zentry['sha1'] == published['entry']['sha1']
    assert sorted(os.listdir(zstore)) == sorted([zentry['file'], 'index.json'])
    assert _sha1(os.path.join(zstore, zentry['file'])) == zentry['file_sha1']
    with open(os.path.join(published['v2store'], 'index.json')) as f:
        index = json.load(f)
    assert index[NAME]['sha1'] == published['entry2']['sha1'] != published['entry']['sha1']
    assert [v['sha1'] for v in index[NAME]['previous']] == [published['entry']['sha1']]


def _publish_cli(*args):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, PUBLISH] + list(args), capture_output=True,
                          text=True, timeout=120, env=env)


def test_publish_bad_input_exits_2_and_writes_nothing(tmp_path, published):
    out = tmp_path / 'out'
    proc = _publish_cli(str(tmp_path / 'missing.ckpt'), '--name', NAME, '--out', str(out))
    assert proc.returncode == 2
    assert proc.stderr.strip().count('\n') == 0 and 'missing.ckpt' in proc.stderr
    assert not out.exists()
    bad = tmp_path / 'bad.ckpt'
    with open(published['ckpt'], 'rb') as f:
        bad.write_bytes(f.read()[:5000])            # truncated
    proc = _publish_cli(str(bad), '--out', str(out))
    assert proc.returncode == 2 and proc.stderr.startswith('error:')
    assert 'bad.ckpt' in proc.stderr and proc.stderr.strip().count('\n') == 0
    assert not out.exists()
    # parameters that do not fit the named network
    proc = _publish_cli(published['ckpt'], '--name', 'hc_m10_i5', '--out', str(out))
    assert proc.returncode == 2 and 'hc_m10_i5' in proc.stderr and not out.exists()
    # a broken index.json is reported and left alone, no weights file added
    out.mkdir()
    (out / 'index.json').write_text('{"broken": ')
    proc = _publish_cli(published['ckpt'], '--out', str(out))
    assert proc.returncode == 2 and 'index.json' in proc.stderr
    assert sorted(os.listdir(out)) == ['index.json']
    assert (out / 'index.json').read_text() == '{"broken": '


def test_publish_class_names(tmp_path, published):
    names = tmp_path / 'names.txt'
    names.write_text('\n'.join('class%d' % i for i in range(10)) + '\n')
    entry = publish_model.publish(published['ckpt'], str(tmp_path / 's'), class_names=str(names))
    assert entry['class_names'] == ['class%d' % i for i in range(10)]
    names.write_text('a\nb\n')
    with pytest.raises(publish_model.PublishError, match='2 classes'):
        publish_model.publish(published['ckpt'], str(tmp_path / 's2'), class_names=str(names))
    assert not (tmp_path / 's2').exists()


# --------------------------------------------------------------------------------------
# downloading

def test_download_verifies_caches_and_reproduces_outputs(tmp_path, published, serve):
    store = serve(published['store'])
    entry = published['entry']
    root = str(tmp_path / 'cache')
    net = hcnet.get_model(NAME, pretrained=True, classes=10, root=root)
    np.testing.assert_array_equal(net(_x()).asnumpy(), published['expect'])
    fname = '%s-%s.params' % (NAME, entry['sha1'][:8])
    assert store.n(fname) == 1 and store.n('index.json') == 1
    assert _weights(root) == [fname] and _leftovers(root) == []
    assert _sha1(os.path.join(root, fname)) == entry['sha1']
    assert net.pretrained_info['sha1'] == entry['sha1']
    assert net.pretrained_info['url'] == store.url + fname
    assert net.classes == 10                  # no class names in the index: the int stays
    before = dict(store.counts)
    again = hcnet.get_model(NAME, pretrained=True, classes=10, root=root)
    assert store.counts == before             # the second call does not touch the network
    np.testing.assert_array_equal(again(_x()).asnumpy(), published['expect'])
    # a new process would fetch the index once more, never the cached weights
    model_store.clear_index_cache()
    hcnet.get_model(NAME, pretrained=True, classes=10, root=root)
    assert store.n(fname) == 1 and store.n('index.json') == 2


def test_default_cache_is_mxnet_home(tmp_path, published, serve, monkeypatch):
    serve(published['store'])
    monkeypatch.setenv('MXNET_HOME', str(tmp_path / 'home'))
    hcnet.get_model(NAME, pretrained=True, classes=10)
    assert _weights(str(tmp_path / 'home' / 'models')) == [
        '%s-%s.params' % (NAME, published['entry']['sha1'][:8])]


def test_zip_store(tmp_path, published, serve):
    store = serve(published['zstore'])
    root = str(tmp_path / 'cache')
    net = hcnet.get_model(NAME, pretrained=True, classes=10, root=root)
    np.testing.assert_array_equal(net(_x()).asnumpy(), published['expect'])
    assert store.n(published['zentry']['file']) == 1
    assert _weights(root) == ['%s-%s.params' % (NAME, published['entry']['sha1'][:8])]
    assert _leftovers(root) == []


def test_sha1_prefix_selects_a_version(tmp_path, published, serve):
    serve(published['v2store'])
    root = str(tmp_path / 'cache')
    new = hcnet.get_model(NAME, pretrained=True, classes=10, root=root)
    np.testing.assert_array_equal(new(_x()).asnumpy(), published['expect2'])
    old = hcnet.get_model(NAME, pretrained=published['entry']['sha1'][:8], classes=10, root=root)
    np.testing.assert_array_equal(old(_x()).asnumpy(), published['expect'])
    with pytest.raises(PretrainedError) as err:
        hcnet.get_model(NAME, pretrained='0123456789', classes=10, root=root)
    assert published['entry']['sha1'][:8] in str(err.value)


def test_corrupt_or_truncated_cache_is_downloaded_again(tmp_path, published, serve):
    store = serve(published['store'])
    root = str(tmp_path / 'cache')
    hcnet.get_model(NAME, pretrained=True, classes=10, root=root)
    path = os.path.join(root, _weights(root)[0])
    with open(path, 'r+b') as f:                    # flip a byte in the middle
        f.seek(os.path.getsize(path) // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))
    net = hcnet.get_model(NAME, pretrained=True, classes=10, root=root)
    np.testing.assert_array_equal(net(_x()).asnumpy(), published['expect'])
    assert store.n(os.path.basename(path)) == 2
    with open(path, 'r+b') as f:                    # truncate
        f.truncate(1000)
    net = hcnet.get_model(NAME, pretrained=True, classes=10, root=root)
    np.testing.assert_array_equal(net(_x()).asnumpy(), published['expect'])
    assert store.n(os.path.basename(path)) == 3
    assert _sha1(path) == published['entry']['sha1'] and _leftovers(root) == []


def test_wrong_bytes_from_server_raise_and_leave_nothing(tmp_path, published, serve):
    store = serve(published['store'])
    fname = published['entry']['file']
    store.corrupt.add('/' + fname)
    root = str(tmp_path / 'cache')
    with pytest.raises(PretrainedError) as err:
        hcnet.get_model(NAME, pretrained=True, classes=10, root=root)
    msg = str(err.value)
    assert store.url + fname in msg and 'sha1' in msg and published['entry']['sha1'] in msg
    assert _weights(root) == [] and _leftovers(root) == []
    assert store.n(fname) == 1                      # a mismatch is not retried


def test_404_names_the_url_and_leaves_nothing(tmp_path, published, serve):
    directory = str(tmp_path / 'incomplete')
    shutil.copytree(published['store'], directory)
    os.remove(os.path.join(directory, published['entry']['file']))
    store = serve(directory)
    root = str(tmp_path / 'cache')
    with pytest.raises(PretrainedError) as err:
        hcnet.get_model(NAME, pretrained=True, classes=10, root=root)
    assert store.url + published['entry']['file'] in str(err.value)
    assert '404' in str(err.value)
    assert _weights(root) == [] and _leftovers(root) == []


def test_5xx_is_retried(tmp_path, published, serve):
    store = serve(published['store'])
    fname = published['entry']['file']
    store.status['/' + fname] = [503, 500]
    net = hcnet.get_model(NAME, pretrained=True, classes=10, root=str(tmp_path / 'cache'))
    np.testing.assert_array_equal(net(_x()).asnumpy(), published['expect'])
    assert store.n(fname) == 3


def test_timeout_is_retried_then_reported(tmp_path, published, serve, monkeypatch):
    store = serve(published['store'])
    fname = published['entry']['file']
    store.delay['/' + fname] = 1.0
    monkeypatch.setattr(model_store, 'DOWNLOAD_TIMEOUT', 0.2)
    monkeypatch.setattr(model_store, 'DOWNLOAD_RETRIES', 1)
    root = str(tmp_path / 'cache')
    with pytest.raises(PretrainedError) as err:
        hcnet.get_model(NAME, pretrained=True, classes=10, root=root)
    assert store.url + fname in str(err.value) and 'timed out' in str(err.value)
    assert store.n(fname) == 2
    assert _weights(root) == [] and _leftovers(root) == []


def _closed_port():
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def test_connection_refused_is_a_clear_error(tmp_path, monkeypatch):
    url = 'http://127.0.0.1:%d/' % _closed_port()
    monkeypatch.setenv('HCNET_REPO_URL', url)
    root = str(tmp_path / 'cache')
    with pytest.raises(PretrainedError) as err:
        hcnet.get_model(NAME, pretrained=True, classes=10, root=root)
    msg = str(err.value)
    assert url + 'index.json' in msg and 'refused' in msg.lower() and NAME in msg
    assert _weights(root) == [] and _leftovers(root) == []


def test_store_going_away_mid_way(tmp_path, published, serve):
    """Index fetched, then the server stops: the weights download fails clearly; once the
    weights are cached, a new process works offline from the cached index copy."""
    store = serve(published['store'])
    root = str(tmp_path / 'cache')
    model_store.get_index(root=root)                # index fetched and memoised
    store.close()
    with pytest.raises(PretrainedError) as err:
        hcnet.get_model(NAME, pretrained=True, classes=10, root=root)
    assert store.url + published['entry']['file'] in str(err.value)
    assert 'refused' in str(err.value).lower()
    assert _weights(root) == [] and _leftovers(root) == []
    store2 = serve(published['store'])
    hcnet.get_model(NAME, pretrained=True, classes=10, root=root)   # same root: weights cached
    store2.close()
    model_store.clear_index_cache()                 # "a new process", store unreachable
    net = hcnet.get_model(NAME, pretrained=True, classes=10, root=root)
    np.testing.assert_array_equal(net(_x()).asnumpy(), published['expect'])


def test_store_without_index_and_unknown_name(tmp_path, published, serve):
    store = serve(str(tmp_path))                    # an empty directory: no index.json
    with pytest.raises(PretrainedError) as err:
        hcnet.get_model(NAME, pretrained=True, classes=10, root=str(tmp_path / 'cache'))
    msg = str(err.value)
    assert 'no published weights' in msg and 'publish_model.py' in msg and 'index.json' in msg
    store.close()
    serve(published['store'])
    with pytest.raises(PretrainedError) as err:
        hcnet.get_model('hc_m10_i5', pretrained=True, root=str(tmp_path / 'cache'))
    assert 'hc_m10_i5' in str(err.value) and 'train_imagenet.py' in str(err.value)


def test_classes_mismatch_and_fine_tuning(tmp_path, published, serve):
    serve(published['store'])
    root = str(tmp_path / 'cache')
    with pytest.raises(PretrainedError) as err:
        hcnet.get_model(NAME, pretrained=True, root=root)          # classes=1000
    msg = str(err.value)
    assert '10 classes' in msg and 'classes=1000' in msg and 'pretrained_classifier=False' in msg
    net = hcnet.get_model(NAME, pretrained=True, classes=3, root=root,
                          pretrained_classifier=False)
    x = _x()
    assert net(x).shape == (2, 3)
    ref = published['net']
    np.testing.assert_array_equal(net.features(x).asnumpy(), ref.features(x).asnumpy())
    # the same from a local .params file
    path = os.path.join(root, _weights(root)[0])
    with pytest.raises(PretrainedError, match='pretrained_classifier=False'):
        hcnet.get_model(NAME, pretrained=path, classes=3)
    net = hcnet.get_model(NAME, pretrained=path, classes=3, pretrained_classifier=False)
    np.testing.assert_array_equal(net.features(x).asnumpy(), ref.features(x).asnumpy())


def test_class_names_are_set(tmp_path, published, serve):
    names = tmp_path / 'names.txt'
    names.write_text('\n'.join('class%d' % i for i in range(10)) + '\n')
    store = str(tmp_path / 'named')
    publish_model.publish(published['ckpt'], store, class_names=str(names))
    serve(store)
    net = hcnet.get_model(NAME, pretrained=True, classes=10, root=str(tmp_path / 'cache'))
    assert net.classes == ['class%d' % i for i in range(10)]


def test_file_url_store(tmp_path, published, monkeypatch):
    monkeypatch.setenv('HCNET_REPO_URL', 'file://' + published['store'])
    net = hcnet.get_model(NAME, pretrained=True, classes=10, root=str(tmp_path / 'cache'))
    np.testing.assert_array_equal(net(_x()).asnumpy(), published['expect'])


_WORKER = r'''
import os, sys, time
import numpy as np, mxnet as mx
import hcnet
from hcnet.commands import publish as publish_model
go, out, root = sys.argv[1:4]
x = mx.nd.array(np.random.RandomState(1).randn(2, 3, 32, 32).astype('float32'))
while not os.path.exists(go):
    time.sleep(0.01)
net = hcnet.get_model('hc_m10_i10', pretrained=True, classes=10, root=root)
np.save(out, net(x).asnumpy())
'''


def test_two_processes_download_once(tmp_path, published, serve):
    store = serve(published['store'])
    fname = published['entry']['file']
    store.delay['/' + fname] = 1.5
    root = str(tmp_path / 'cache')
    script = tmp_path / 'worker.py'
    script.write_text(_WORKER)
    go = str(tmp_path / 'go')
    env = dict(os.environ, PYTHONPATH=ROOT, HCNET_REPO_URL=store.url)
    procs = [subprocess.Popen([sys.executable, str(script), go, str(tmp_path / ('out%d.npy' % i)),
                               root], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for i in range(2)]
    time.sleep(0.5)
    open(go, 'w').close()
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()[-2000:]
    assert store.n(fname) == 1
    for i in range(2):
        np.testing.assert_array_equal(np.load(str(tmp_path / ('out%d.npy' % i))),
                                      published['expect'])
    assert _weights(root) == [fname] and _leftovers(root) == []


def test_file_lock_serialises_and_cleans_up(tmp_path):
    path = str(tmp_path / 'x.params.lock')
    order = []

    def hold(tag):
        with model_store._FileLock(path):
            order.append(tag + '+')
            time.sleep(0.2)
            order.append(tag + '-')
    threads = [threading.Thread(target=hold, args=(t,)) for t in 'ab']
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert order in (['a+', 'a-', 'b+', 'b-'], ['b+', 'b-', 'a+', 'a-'])
    assert not os.path.exists(path)


# --------------------------------------------------------------------------------------
# constructor arguments: weights trained with model.kwargs build the network they fit

def test_entry_kwargs_build_the_network_the_weights_fit(tmp_path, serve):
    ckpt = str(tmp_path / 'nodrop.ckpt')
    # dropout 0 drops the Dropout block: the classifier's parameter names change
    net = hcnet.get_model(NAME, classes=10, dropout=0.0)
    net(_x())
    config = {'model': {'name': NAME, 'classes': 10, 'kwargs': {'dropout': 0.0}},
              'data': {'dataset': 'synthetic', 'input_size': 32}}
    save_checkpoint(ckpt, net, None, {'epoch': 0, 'model': NAME, 'classes': 10, 'top1': 10.0,
                                      'config': config})
    assert sorted(net._collect_params_with_prefix()) != sorted(
        hcnet.get_model(NAME, classes=10)._collect_params_with_prefix())
    store = str(tmp_path / 'store')
    entry = publish_model.publish(ckpt, store)
    assert entry['kwargs'] == {'dropout': 0.0}
    serve(store)
    got = hcnet.get_model(NAME, pretrained=True, classes=10, root=str(tmp_path / 'cache'))
    np.testing.assert_array_equal(got(_x()).asnumpy(), net(_x()).asnumpy())


@pytest.mark.parametrize('kwargs', [{'ctx': 'gpu'}, {'root': '/etc'}, ['dropout'],
                                    {'x': {'a': {'b': {'c': {'d': 1}}}}}, {'not-a-name': 1},
                                    {'f': 'x' * 300}])
def test_entry_kwargs_that_are_not_plain_arguments_make_the_entry_ignored(kwargs, caplog):
    """An index from someone else cannot pass the build its own ctx / root, or anything
    but plain values."""
    from hcnet.store.fetch import _plain_kwargs, _valid_entries
    assert not _plain_kwargs(kwargs)
    assert _plain_kwargs({'dropout': 0.0, 'norm_kwargs': {'epsilon': 1e-3}}) and _plain_kwargs(None)
    entry = {'sha1': 'a' * 40, 'file': 'x-aaaaaaaa.params', 'kwargs': kwargs}
    assert _valid_entries({'x': entry}, 'index.json') == {}
    assert 'its kwargs' in caplog.text
