#!/usr/bin/env bash
# `pip install --no-build-isolation ./python` into a fresh venv (system site packages for
# Debian's FastAPI), then a decision and a request through the installed package.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work" "$repo/python/build" "$repo/python/pacer.egg-info"' EXIT
/usr/bin/python3 -m venv --system-site-packages "$work/venv"
"$work/venv/bin/pip" install -q --no-build-isolation "$repo/python"
cd "$work"
"$work/venv/bin/python" - <<'PY'
import asyncio, httpx, pacer
from fastapi import FastAPI
assert pacer.__file__.startswith(__import__("sys").prefix), pacer.__file__
limiter = pacer.Limiter(redis_url="memory://")
app = FastAPI()
app.add_middleware(pacer.LimiterMiddleware, limiter=limiter, policy=pacer.Rate(1, "1m"))
@app.get("/")
async def root():
    return {"ok": True}
async def main():
    transport = httpx.ASGITransport(app=app, client=("203.0.113.5", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        assert (await c.get("/")).status_code == 200
        assert (await c.get("/")).status_code == 429
asyncio.run(main())
print("installed package works")
PY
