"""Pretrained weights: a GluonCV-style store of verified ``.params`` files.

Usage::

    net = hcnet.get_model('hc_m10_i10', pretrained=True)          # the published weights
    net = hcnet.get_model('hc_m10_i10', pretrained='1a2b3c4d')    # a given version (sha1 prefix)
    net = hcnet.get_model('hc_m10_i10', pretrained='w.params')    # a local file
    net = hcnet.get_model('hc_m10_i10', pretrained=True, classes=10,
                          pretrained_classifier=False)            # fine-tuning: fresh classifier

The store
---------
A store is a directory served over HTTP(S) (any static file server, an S3
bucket) or a ``file://`` URL. It holds ``<name>-<sha1[:8]>.params`` files (or
``.zip`` files holding one, GluonCV's layout) and an ``index.json``, both
written by ``hcnet publish`` (:mod:`hcnet.store.publish`). Its URL is ``$HCNET_REPO_URL``;
the default, :data:`DEFAULT_REPO_URL`, is a placeholder: **there is no public
store yet**, so with ``HCNET_REPO_URL`` unset only the weights listed in the
index shipped with the package (``hcnet/store/index.json``, empty for
now) are known, and nothing is fetched.

The index
---------
A JSON object ``{name: entry}``; an entry is::

    {"sha1": "<40 hex digits: sha1 of the .params file>",
     "file": "<name>-<sha1[:8]>.params",    # or .zip; relative to the store URL (or absolute)
     "file_sha1": "...", "file_size": 123,  # of "file" (when it is a .zip; size optional)
     "size": 123,                           # of the .params file
     "model": "hc_m10_i10", "dataset": "imagenet_rec", "classes": 1000, "input_size": 224,
     "top1": 75.1, "epoch": 359, "config": {... the resolved training config ...},
     "synset": [...], "class_names": [...], "class_names_long": [...],   # optional
     "published": "2024-01-01T00:00:00Z", "hcnet_version": "0.1.0",
     "previous": [older entries of the same name]}                        # optional

The shipped index is looked up first; a name (or sha1 prefix) it does not have
is looked up in the store's ``index.json``, fetched at most once per process
(a copy is kept in the cache as ``index-<sha1(url)[:8]>.json`` and used when the
store cannot be reached; a store without ``index.json`` is an empty one).

The cache
---------
Files are cached in ``root`` (``$MXNET_HOME/models``, default ``~/.mxnet/models``)
as ``<name>-<sha1[:8]>.params``. The full sha1 is checked on every load, cache
hit or not; a file that does not match (corrupt, truncated) is downloaded again.
Downloads stream into a temporary file in the cache, are checked, then renamed,
under an exclusive ``fcntl`` lock on ``<file>.lock`` (removed afterwards), so
several processes asking at once (Horovod ranks) download once. Connection
errors, timeouts and HTTP 5xx are retried with backoff; any failure raises one
:class:`PretrainedError` naming the URL and leaves no file behind.

Environment: ``HCNET_REPO_URL`` (store URL), ``MXNET_HOME`` (cache root's
parent), ``HCNET_DOWNLOAD_TIMEOUT`` (seconds per connection / read, 60),
``HCNET_DOWNLOAD_RETRIES`` (extra attempts, 3), ``HCNET_DOWNLOAD_DEADLINE`` (seconds a
download may take in all, 1800), ``HCNET_DOWNLOAD_MIN_RATE`` (bytes/s a transfer must
average after its first 10 s, 1024), ``HCNET_LOCK_TIMEOUT``
(seconds to wait for another process's download, 1800).

After loading
-------------
``net.classes`` is the list of class names when the index entry has them
(``class_names``; or ImageNet-1k's names, as GluonCV sets them, when its
``synset`` is ImageNet-1k's), otherwise it stays the number of classes (an
int, as for any :class:`~hcnet.models.HCNet`). ``net.synset`` /
``net.classes_long`` are set when the entry has them. ``net.pretrained_info``
says where the weights came from (``source``, ``path``, ``sha1``, ``url``,
``entry``).
"""
import errno
import fcntl
import hashlib
import http.client
import json
import logging
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile

from ..fileio import remove_quietly, tmp_name

__all__ = ['get_model_file', 'get_index', 'find_entry', 'pretrained_model_list', 'clear_index_cache',
           'repo_url', 'cache_root', 'purge', 'sha1_file', 'check_sha1', 'PretrainedError',
           'DEFAULT_REPO_URL', 'REPO_URL_ENV', 'PACKAGE_INDEX', 'TAG_RE', 'file_name']

log = logging.getLogger(__name__)

#: Default store URL -- a placeholder: no public store exists yet (set ``HCNET_REPO_URL``).
DEFAULT_REPO_URL = 'https://hcnet-models.example/'
#: Environment variable overriding the store URL (as ``MXNET_GLUON_REPO`` does for GluonCV).
REPO_URL_ENV = 'HCNET_REPO_URL'
#: The index shipped with the package.
PACKAGE_INDEX = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'index.json')
INDEX_FILE = 'index.json'

DOWNLOAD_TIMEOUT = float(os.environ.get('HCNET_DOWNLOAD_TIMEOUT', 60))
DOWNLOAD_RETRIES = int(os.environ.get('HCNET_DOWNLOAD_RETRIES', 3))
RETRY_BACKOFF = 0.5          # seconds before the first retry, doubled each time
LOCK_TIMEOUT = float(os.environ.get('HCNET_LOCK_TIMEOUT', 1800))
#: seconds one download may take in all, retries included (a drip never holds the lock for ever)
DOWNLOAD_DEADLINE = float(os.environ.get('HCNET_DOWNLOAD_DEADLINE', 1800))
#: bytes per second a transfer must average once MIN_RATE_GRACE seconds have passed
DOWNLOAD_MIN_RATE = float(os.environ.get('HCNET_DOWNLOAD_MIN_RATE', 1024))
MIN_RATE_GRACE = 10.0
#: an index larger than this is not one (names, sha1s and configs: kilobytes)
MAX_INDEX_SIZE = 64 << 20
#: what an index name or a store file name may be: a plain name, no path, no scheme
_PLAIN_NAME_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.\-]*$')
CHUNK = 1 << 20

_SHA1_RE = re.compile(r'^[0-9a-f]{40}$')
TAG_RE = re.compile(r'^[0-9a-fA-F]{8,40}$')
_MEMO_LOCK = threading.Lock()
_REMOTE_INDEX = {}           # store URL -> (index dict, note); at most one fetch per process
_PACKAGE_INDEX = None


class PretrainedError(ValueError):
    """No usable pretrained weights for the request."""


# --------------------------------------------------------------------------------------
# locations

def repo_url(url=None):
    """The store URL (``url``, else ``$HCNET_REPO_URL``, else the placeholder), ending in '/'."""
    url = url or os.environ.get(REPO_URL_ENV) or DEFAULT_REPO_URL
    return url if url.endswith('/') else url + '/'


def _is_placeholder(url):
    return url == DEFAULT_REPO_URL


def cache_root(root=None):
    """The cache directory: ``root``, else ``$MXNET_HOME/models``, else ``~/.mxnet/models``."""
    if root is None:
        home = os.environ.get('MXNET_HOME', os.path.join('~', '.mxnet'))
        root = os.path.join(home, 'models')
    return os.path.abspath(os.path.expanduser(root))


def file_name(name, sha1):
    """The store / cache file name of weights ``sha1`` for ``name``."""
    return '%s-%s.params' % (name, sha1[:8])


# --------------------------------------------------------------------------------------
# hashing and files

def sha1_file(path):
    """Hex sha1 of a file, read in chunks."""
    digest = hashlib.sha1()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(CHUNK), b''):
            digest.update(chunk)
    return digest.hexdigest()


def check_sha1(path, sha1):
    """True if ``path`` exists and its full sha1 is ``sha1``."""
    try:
        return sha1_file(path) == sha1.lower()
    except OSError:
        return False


class _FileLock:
    """Exclusive ``fcntl.flock`` on ``path``; the file is removed on release.

    A waiter that wakes up on a lock file that was removed (or replaced) in the
    meantime starts over, so removing the file under the lock is safe.
    """

    def __init__(self, path, timeout=None):
        self.path, self.fd = path, None
        self.timeout = LOCK_TIMEOUT if timeout is None else timeout

    def __enter__(self):
        deadline = time.monotonic() + self.timeout
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except OSError as err:
                        if err.errno not in (errno.EAGAIN, errno.EACCES):
                            raise
                        if time.monotonic() > deadline:
                            raise PretrainedError(
                                'timed out after %.0f s waiting for the lock %s held by another '
                                'process (set HCNET_LOCK_TIMEOUT, or remove the file if no '
                                'download is running)' % (self.timeout, self.path)) from None
                        time.sleep(0.05)
                try:
                    same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
                except FileNotFoundError:
                    same = False
            except BaseException:
                os.close(fd)
                raise
            if same:
                self.fd = fd
                return self
            os.close(fd)            # removed by its previous holder: lock the new file

    def __exit__(self, *exc):
        try:
            remove_quietly(self.path)
        finally:
            os.close(self.fd)       # closing releases the flock
            self.fd = None


# --------------------------------------------------------------------------------------
# HTTP

class _NotFound(Exception):
    pass


class _FetchError(Exception):
    pass


class _Truncated(Exception):
    pass


class _Refused(Exception):
    """The store sent what the index rules out (too many bytes): not retried."""


class _Unreachable(str):
    """Why a store's index could not be fetched (and no cached copy exists)."""


def _user_agent():
    from .. import __version__
    return 'hcnet/%s (+model_store)' % __version__


def _download(url, dest, expect_size=None, max_size=None):
    """Stream ``url`` into the new file ``dest``; return its sha1.

    Retries connection errors, timeouts, truncated bodies and HTTP 5xx / 429 with
    exponential backoff; raises ``_NotFound`` on 404 / 410 and ``_FetchError``
    (with the reason) otherwise. ``dest`` is removed on failure.
    """
    attempts = DOWNLOAD_RETRIES + 1
    last = None
    deadline = time.monotonic() + DOWNLOAD_DEADLINE
    for attempt in range(attempts):
        if attempt:
            time.sleep(min(RETRY_BACKOFF * 2 ** (attempt - 1),
                           max(0.0, deadline - time.monotonic())))
        try:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _FetchError('no complete transfer within HCNET_DOWNLOAD_DEADLINE=%g s'
                                  % DOWNLOAD_DEADLINE)
            request = urllib.request.Request(url, headers={'User-Agent': _user_agent()})
            with urllib.request.urlopen(request, timeout=min(DOWNLOAD_TIMEOUT, left)) as resp:
                length = resp.headers.get('Content-Length') if hasattr(resp, 'headers') else None
                if (expect_size is not None and length is not None and length.isdigit()
                        and int(length) != expect_size):
                    raise _Refused('the server announces %s bytes, the index says %d'
                                   % (length, expect_size))
                digest, size, start = hashlib.sha1(), 0, time.monotonic()
                read = getattr(resp, 'read1', resp.read)        # what has arrived, no more
                with open(dest, 'wb') as f:
                    for chunk in iter(lambda: read(CHUNK), b''):
                        size += len(chunk)
                        if expect_size is not None and size > expect_size:
                            raise _Refused('the body exceeds the %d bytes the index declares'
                                           % expect_size)
                        if max_size is not None and size > max_size:
                            raise _Refused('the body exceeds %d bytes' % max_size)
                        f.write(chunk)
                        digest.update(chunk)
                        now = time.monotonic()
                        if now > deadline:
                            raise _FetchError('transfer not complete within '
                                              'HCNET_DOWNLOAD_DEADLINE=%g s (%d bytes so far)'
                                              % (DOWNLOAD_DEADLINE, size))
                        if (now - start > MIN_RATE_GRACE
                                and size / (now - start) < DOWNLOAD_MIN_RATE):
                            raise _FetchError('transfer slower than HCNET_DOWNLOAD_MIN_RATE=%g '
                                              'bytes/s' % DOWNLOAD_MIN_RATE)
                    f.flush()
                    os.fsync(f.fileno())
            if length is not None and length.isdigit() and int(length) != size:
                raise _Truncated('received %d of %s bytes' % (size, length))
            if expect_size is not None and size != expect_size and length is None:
                raise _Truncated('received %d bytes, the index says %d' % (size, expect_size))
            return digest.hexdigest()
        except urllib.error.HTTPError as err:
            remove_quietly(dest)
            if err.code in (404, 410):
                raise _NotFound('HTTP %d %s' % (err.code, err.reason)) from None
            last = 'HTTP %d %s' % (err.code, err.reason)
            if not (err.code >= 500 or err.code == 429):
                break
        except urllib.error.URLError as err:
            remove_quietly(dest)
            reason = err.reason
            if isinstance(reason, FileNotFoundError) or (
                    isinstance(reason, str) and 'No such file' in reason):
                raise _NotFound(str(reason)) from None
            last = '%s' % (reason,)
        except FileNotFoundError as err:     # file:// URLs
            remove_quietly(dest)
            raise _NotFound(str(err)) from None
        except (_Refused, _FetchError) as err:     # not worth retrying
            remove_quietly(dest)
            raise _FetchError(str(err)) from None
        except (_Truncated, socket.timeout, TimeoutError, ConnectionError,
                http.client.HTTPException, OSError) as err:
            remove_quietly(dest)
            last = '%s: %s' % (type(err).__name__, err)
        if attempt + 1 < attempts:
            log.warning('download of %s failed (%s); retrying in %.1f s', url, last,
                        RETRY_BACKOFF * 2 ** attempt)
    raise _FetchError('%s (after %d attempt%s)' % (last, attempt + 1, 's' if attempt else ''))


# --------------------------------------------------------------------------------------
# index

def _read_index_file(path):
    with open(path, encoding='utf-8') as f:
        index = json.load(f)
    if not isinstance(index, dict):
        raise ValueError('%s: the index must be a JSON object {name: entry}' % path)
    return index


def _plain_file(value):
    """``file`` of an index entry: absent, or a plain name inside the store."""
    if value is None:
        return True
    return (isinstance(value, str) and bool(_PLAIN_NAME_RE.match(value)) and '..' not in value
            and not urllib.parse.urlsplit(value).scheme)


def _inside(root, path):
    """True if ``path`` resolves to a location inside the directory ``root``."""
    root = os.path.realpath(root)
    return os.path.realpath(path).startswith(root + os.sep)


def _valid_entries(index, source):
    out = {}
    for name, entry in index.items():
        if name.startswith('_'):
            continue
        if not isinstance(name, str) or not _PLAIN_NAME_RE.match(name) or '..' in name:
            log.warning('ignoring the entry %r of %s: not a plain model name', name, source)
            continue
        previous = entry.get('previous', []) if isinstance(entry, dict) else []
        versions = [entry] + list(previous) if isinstance(previous, list) else []
        if not versions or not all(isinstance(v, dict) and _SHA1_RE.match(str(v.get('sha1', '')))
                                   for v in versions):
            log.warning('ignoring the malformed entry %r of %s', name, source)
            continue
        bad = [v.get('file') for v in versions if not _plain_file(v.get('file'))]
        if bad:
            log.warning('ignoring the entry %r of %s: its file %r is not a plain file name of '
                        'the store (no path, no "..", no scheme)', name, source, bad[0])
            continue
        bad = [v.get('kwargs') for v in versions if not _plain_kwargs(v.get('kwargs'))]
        if bad:
            log.warning('ignoring the entry %r of %s: its kwargs %r are not constructor '
                        'arguments (a mapping of names to numbers, strings, booleans, lists '
                        'and mappings of them)', name, source, bad[0])
            continue
        out[name.lower()] = entry
    return out


#: build keywords an entry's kwargs may not set (they are the caller's)
RESERVED_KWARGS = ('pretrained', 'ctx', 'root', 'pretrained_classifier', 'default_cfg',
                   'classes')


def _plain_kwargs(value, depth=0):
    """An entry's constructor arguments (``kwargs``): absent, or a mapping of identifier
    keys (not :data:`RESERVED_KWARGS`) to JSON-plain data a few levels deep: nothing a
    constructor could take for code."""
    if depth == 0 and value is None:
        return True
    if isinstance(value, dict):
        return depth < 4 and all(
            isinstance(k, str) and k.isidentifier() and (depth or k not in RESERVED_KWARGS)
            and _plain_kwargs(v, depth + 1) for k, v in value.items())
    if depth == 0:
        return False
    if isinstance(value, list):
        return depth < 4 and len(value) <= 64 and all(_plain_kwargs(v, depth + 1)
                                                      for v in value)
    return value is None or isinstance(value, (bool, int, float)) or (
        isinstance(value, str) and len(value) <= 256)


def _package_index():
    global _PACKAGE_INDEX
    if _PACKAGE_INDEX is None:
        try:
            _PACKAGE_INDEX = _valid_entries(_read_index_file(PACKAGE_INDEX), PACKAGE_INDEX)
        except FileNotFoundError:
            _PACKAGE_INDEX = {}
    return _PACKAGE_INDEX


def _index_copy(root, url):
    return os.path.join(root, 'index-%s.json' % hashlib.sha1(url.encode()).hexdigest()[:8])


def _remote_index(url, root):
    """(index, note) of the store at ``url``; fetched at most once per process."""
    with _MEMO_LOCK:
        if url in _REMOTE_INDEX:
            return _REMOTE_INDEX[url]
        if _is_placeholder(url):
            result = {}, ('%s is not set and there is no public store yet' % REPO_URL_ENV)
            _REMOTE_INDEX[url] = result
            return result
        index_url = urllib.parse.urljoin(url, INDEX_FILE)
        os.makedirs(root, exist_ok=True)
        copy = _index_copy(root, url)
        tmp = tmp_name(copy)
        try:
            _download(index_url, tmp, max_size=MAX_INDEX_SIZE)
            index = _valid_entries(_read_index_file(tmp), index_url)
        except _NotFound:
            result = {}, 'the store %s has no %s' % (url, INDEX_FILE)
        except (_FetchError, ValueError, UnicodeDecodeError) as err:
            remove_quietly(tmp)
            note = 'the store index %s could not be read (%s)' % (index_url, err)
            try:
                index = _valid_entries(_read_index_file(copy), copy)
                log.warning('%s; using the cached copy %s', note, copy)
                return index, note + '; used the cached copy %s' % copy   # not memoised
            except (OSError, ValueError):
                return {}, _Unreachable(note)                           # not memoised
        else:
            os.replace(tmp, copy)
            result = index, 'the store %s lists %s' % (url, ', '.join(sorted(index)) or 'nothing')
        finally:
            remove_quietly(tmp)
        _REMOTE_INDEX[url] = result
        return result


def get_index(url=None, root=None):
    """The merged index: the store's entries, then the shipped ones on top."""
    remote, _ = _remote_index(repo_url(url), cache_root(root))
    return dict(remote, **_package_index())


def clear_index_cache():
    """Forget the store indexes fetched by this process (the next lookup fetches again)."""
    with _MEMO_LOCK:
        _REMOTE_INDEX.clear()


def _versions(entry):
    return [entry] + [dict(v, previous=[]) for v in entry.get('previous', [])]


def _match(entry, tag):
    for version in _versions(entry):
        if tag is None or version['sha1'].startswith(tag.lower()):
            return version
    return None


def _how_to_publish(name):
    return ('to produce them: train with `python scripts/train_imagenet.py --config %s.yaml`, '
            'then `python scripts/publish_model.py runs/%s/best.ckpt --name %s --out STORE_DIR`, '
            'serve STORE_DIR and set %s to its URL; or pass pretrained=<path to a .params file>'
            % (name, name, name, REPO_URL_ENV))


def find_entry(name, tag=None, url=None, root=None):
    """The index entry for ``name`` (the newest, or the version whose sha1 starts with ``tag``).

    The shipped index is searched first, then the store's. Raises
    :class:`PretrainedError` if there is none.
    """
    if not name:
        raise PretrainedError('pretrained=%r needs a model-zoo name: build the network with '
                              'hcnet.get_model(name, pretrained=...)' % (tag or True,))
    key = name.lower()
    shipped = _package_index().get(key)
    if shipped is not None and _match(shipped, tag) is not None:
        return _match(shipped, tag)
    url = repo_url(url)
    remote, note = _remote_index(url, cache_root(root))
    entry = remote.get(key)
    if entry is not None and _match(entry, tag) is not None:
        return _match(entry, tag)
    known = [v['sha1'][:8] for e in (shipped, entry) if e for v in _versions(e)]
    if isinstance(note, _Unreachable):
        raise PretrainedError('cannot look up pretrained weights for %r: the index shipped with '
                              'hcnet has none and %s, with no cached copy; check the network and '
                              '%s=%s' % (name, note, REPO_URL_ENV, url))
    if known:
        raise PretrainedError('no weights for %r have a sha1 starting with %r; published: %s'
                              % (name, tag, ', '.join(known)))
    raise PretrainedError('no published weights for %r: the index shipped with hcnet has none and '
                          '%s; %s' % (name, note, _how_to_publish(name)))


def pretrained_model_list(url=None, root=None):
    """Names with published weights (shipped index and the store's)."""
    return sorted(get_index(url, root))


# --------------------------------------------------------------------------------------
# download

def get_model_file(name, tag=None, root=None, url=None, entry=None):
    """Local path of verified weights for ``name``, downloading them if needed.

    ``tag`` is a sha1 prefix (``None``: the newest published version). The file is
    ``<root>/<name>-<sha1[:8]>.params`` and its full sha1 is checked whether it
    was cached or just downloaded.
    """
    entry = entry or find_entry(name, tag, url, root)
    sha1 = entry['sha1'].lower()
    root = cache_root(root)
    os.makedirs(root, exist_ok=True)
    path = os.path.join(root, file_name(name.lower(), sha1))
    if not _inside(root, path):
        raise PretrainedError('refusing to cache weights for %r outside the cache %s'
                              % (name, root))
    if check_sha1(path, sha1):
        return path
    with _FileLock(path + '.lock'):
        for stale in os.listdir(root):          # temp files of killed downloads
            if stale.startswith(os.path.basename(path) + '.') and stale.endswith('.tmp'):
                remove_quietly(os.path.join(root, stale))
        if os.path.exists(path):
            if check_sha1(path, sha1):
                return path                      # another process downloaded it meanwhile
            log.warning('cached %s does not match its sha1 %s: downloading it again', path, sha1)
        _fetch_into(entry, repo_url(url), path, name)
    return path


def _fetch_into(entry, base, path, name):
    sha1 = entry['sha1'].lower()
    remote = entry.get('file') or os.path.basename(path)
    src = urllib.parse.urljoin(base, remote)
    is_zip = remote.lower().endswith('.zip')
    tmp = tmp_name(path)
    tmp_zip = tmp_name(path[:-len('.params')] + '.zip') if is_zip else None
    try:
        log.info('downloading %s to %s', src, path)
        try:
            got = _download(src, tmp_zip or tmp,
                            entry.get('file_size') if is_zip else entry.get('size'))
        except _NotFound as err:
            raise PretrainedError('cannot download pretrained weights for %r: %s (%s); the '
                                  'index lists it, so the store is incomplete'
                                  % (name, src, err)) from None
        except _FetchError as err:
            raise PretrainedError('cannot download pretrained weights for %r from %s: %s; check '
                                  'the network and %s=%s' % (name, src, err, REPO_URL_ENV, base)
                                  ) from None
        if is_zip:
            want = entry.get('file_sha1')
            if want and got != want.lower():
                raise PretrainedError('downloaded %s has sha1 %s, the index says %s: the store '
                                      'is corrupt or the transfer was altered; nothing was cached'
                                      % (src, got, want))
            got = _unzip_params(tmp_zip, tmp, os.path.basename(path), src)
        if got != sha1:
            raise PretrainedError('downloaded %s has sha1 %s, the index says %s: the store is '
                                  'corrupt or the transfer was altered; nothing was cached'
                                  % (src, got, sha1))
        os.replace(tmp, path)
    finally:
        remove_quietly(tmp)
        if tmp_zip:
            remove_quietly(tmp_zip)


def _unzip_params(zip_path, dest, member, src):
    try:
        with zipfile.ZipFile(zip_path) as zf:
            names = [n for n in zf.namelist() if n.endswith('.params')]
            pick = member if member in names else (names[0] if len(names) == 1 else None)
            if pick is None:
                raise PretrainedError('%s holds no %s' % (src, member))
            digest = hashlib.sha1()
            with zf.open(pick) as fin, open(dest, 'wb') as fout:
                for chunk in iter(lambda: fin.read(CHUNK), b''):
                    fout.write(chunk)
                    digest.update(chunk)
            return digest.hexdigest()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as err:
        raise PretrainedError('downloaded %s is not a valid zip file (%s); nothing was cached'
                              % (src, err)) from None


def purge(root=None):
    """Remove every cached weights file and store-index copy from ``root``."""
    root = cache_root(root)
    if not os.path.isdir(root):
        return
    for f in os.listdir(root):
        if f.endswith('.params') or (f.startswith('index-') and f.endswith('.json')):
            remove_quietly(os.path.join(root, f))
