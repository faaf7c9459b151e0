"""Django's Redis cache, with one Redis client per connection pool, and
cache errors taken as misses.

Django's backend makes a new ``redis.Redis`` for every cache call, and each
one builds its table of about a hundred response callbacks: three cache
calls of a page (session, a kept list, the layout) cost more in making
clients than in talking to Redis. A client is thread-safe and its pool
notices a fork (gunicorn's workers), so one per pool is enough.

Redis holds nothing that cannot be rebuilt (kept pages, copies of sessions
whose truth is in PostgreSQL), so when it does not answer, every read is a
miss and every write does nothing: pages render from PostgreSQL, slower.
After a failure the process leaves Redis alone for ``REDIS_RETRY_SECONDS``
(:class:`Outage`), so a page does not wait out a socket timeout per call,
and it says so in the log once per ``WARN_EVERY`` seconds, not per call.

A write that did not reach Redis may leave an older value there (a session
that was logged out, if Redis was only out of reach): the keys of such
writes are deleted first when Redis answers again, before anything is read
from it.
"""

import logging
import threading
import time

from django.conf import settings
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

# What a cache call that did not reach Redis raises: redis-py wraps socket
# errors in its own, but a pool can still let an OSError through.
ERRORS = (RedisError, OSError)
WARN_EVERY = 60.0
# Keys of writes that did not reach Redis, deleted when it answers again; a
# longer outage forgets the rest, which then live out their own timeout.
MAX_STALE_KEYS = 10_000


class Outage:
    """Whether a Redis of this process is out of reach. After a failure,
    callers skip it for ``REDIS_RETRY_SECONDS``; a warning goes to the log at
    most once per ``WARN_EVERY`` seconds."""

    def __init__(self, what: str):
        self.what = what
        self.down = False
        self._retry_at = 0.0
        self._warned_at = -WARN_EVERY

    def skipping(self) -> bool:
        return self.down and time.monotonic() < self._retry_at

    def failed(self, error: BaseException) -> None:
        now = time.monotonic()
        retry_seconds = settings.REDIS_RETRY_SECONDS
        self.down = True
        self._retry_at = now + retry_seconds
        if now - self._warned_at >= WARN_EVERY:
            self._warned_at = now
            log.warning(
                "%s does not answer (%s); going without it, trying again every %ss",
                self.what,
                type(error).__name__,
                retry_seconds,
            )

    def answered(self) -> bool:
        """Note that Redis answered; True when it had been out of reach."""
        if not self.down:
            return False
        self.down = False
        log.warning("%s answers again", self.what)
        return True


class _Client(RedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients = {}

    def get_client(self, key=None, *, write=False):
        index = self._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            pool = self._get_connection_pool(write)
            client = self._clients[index] = self._client(connection_pool=pool)
        return client


class RedisCache(DjangoRedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = _Client
        self.outage = Outage("the cache (Redis)")
        self._stale: set[str] = set()
        self._stale_lock = threading.Lock()

    # Every call goes through _attempt: a miss (``miss``) when Redis is out
    # of reach, and the keys it would have written remembered as stale.

    def _attempt(self, call, miss, written=()):
        if not self.outage.skipping():
            try:
                result = call()
            except ERRORS as error:
                self.outage.failed(error)
            else:
                if self.outage.answered() or self._stale:
                    self._forget_stale()
                return result
        if written:
            self._remember_stale(written)
        return miss

    def _remember_stale(self, keys) -> None:
        with self._stale_lock:
            room = MAX_STALE_KEYS - len(self._stale)
            self._stale.update(list(keys)[: max(room, 0)])

    def _forget_stale(self) -> None:
        with self._stale_lock:
            keys, self._stale = list(self._stale), set()
        if not keys:
            return
        try:
            self._cache.delete_many(keys)
        except ERRORS as error:
            self.outage.failed(error)
            self._remember_stale(keys)

    def _keys(self, keys, version):
        return [self.make_and_validate_key(key, version=version) for key in keys]

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._attempt(lambda: super(RedisCache, self).add(key, value, timeout, version), False)

    def get(self, key, default=None, version=None):
        return self._attempt(lambda: super(RedisCache, self).get(key, default, version), default)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        written = self._keys([key], version)
        self._attempt(lambda: super(RedisCache, self).set(key, value, timeout, version), None, written)

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        return self._attempt(lambda: super(RedisCache, self).touch(key, timeout, version), False)

    def delete(self, key, version=None):
        written = self._keys([key], version)
        return self._attempt(lambda: super(RedisCache, self).delete(key, version), False, written)

    def get_many(self, keys, version=None):
        return self._attempt(lambda: super(RedisCache, self).get_many(keys, version), {})

    def has_key(self, key, version=None):
        return self._attempt(lambda: super(RedisCache, self).has_key(key, version), False)

    def incr(self, key, delta=1, version=None):
        written = self._keys([key], version)
        found = self._attempt(lambda: super(RedisCache, self).incr(key, delta, version), None, written)
        if found is None:
            raise ValueError(f"Key '{key}' not found")  # what a miss is to incr()
        return found

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        written = self._keys(data, version)
        return self._attempt(lambda: super(RedisCache, self).set_many(data, timeout, version), list(data), written)

    def delete_many(self, keys, version=None):
        keys = list(keys)
        written = self._keys(keys, version)
        self._attempt(lambda: super(RedisCache, self).delete_many(keys, version), None, written)

    def clear(self):
        return self._attempt(super().clear, False)
