"""RedisClusterStorage: nothing in FastAPI Pacer v0.2.0 constructs it; kept importable.

Pacer's engine speaks Redis Cluster itself: give the Limiter a `redis+cluster://host:port,...`
URL (or `cluster_mode=True`)."""

from __future__ import annotations

from .storage_simple import SimpleRedisStorage


class RedisClusterStorage(SimpleRedisStorage):
    def __init__(self, redis_url: str = "redis+cluster://localhost:7000", **kwargs) -> None:
        if redis_url.startswith(("redis://", "rediss://")):
            redis_url = redis_url.replace("redis", "redis+cluster", 1).replace(
                "redis+clusters://", "rediss+cluster://", 1)
        super().__init__(redis_url, **kwargs)
