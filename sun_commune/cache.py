"""Django's Redis cache, with one Redis client per connection pool.

Django's backend makes a new ``redis.Redis`` for every cache call, and each
one builds its table of about a hundred response callbacks: three cache
calls of a page (session, a kept list, the layout) cost more in making
clients than in talking to Redis. A client is thread-safe and its pool
notices a fork (gunicorn's workers), so one per pool is enough."""

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient


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
