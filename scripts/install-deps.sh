#!/usr/bin/env bash
# Installs the Debian 12 packages Pacer needs to build and test. Idempotent: when everything
# is present it prints nothing and touches nothing.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git curl
  libboost-dev libboost-system-dev libssl-dev libhiredis-dev
  nlohmann-json3-dev libspdlog-dev libfmt-dev libcli11-dev
  libgtest-dev libgmock-dev librapidcheck-dev libbenchmark-dev
  redis-server redis-tools redis-sentinel openssl wrk bc python3 clang-14 libclang-rt-14-dev clang-format-14 clang-tidy-14
  libtomlplusplus-dev nginx-light
  # pacerd's Envoy rate limit service: gRPC, protobuf, the YAML configuration, a gRPC test client
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev libyaml-cpp-dev python3-grpcio
  python3-grpc-tools
  # the Python package (python/): extension build, FastAPI stack, tests, pip install test
  pybind11-dev python3-dev python3-setuptools python3-pip python3-venv
  python3-wheel patchelf  # the wheel (python/build_wheel.sh): bdist_wheel, bundled libraries' paths
  python3-fastapi python3-starlette python3-uvicorn python3-httpx python3-pytest
  python3-pytest-asyncio
  python3-redis  # redis-py: limiter.storage.redis (FastAPI Pacer's fixtures) and its tests
  python3-uvloop python3-httptools  # python/bench/run.sh: what production FastAPI runs
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
[ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian redis-server package starts a system instance on 6379, redis-sentinel one on 26379
# and nginx-light one on port 80; tests start their own on free loopback ports (own configuration
# and prefix). Sentinel tests run `redis-server <conf> --sentinel`.
