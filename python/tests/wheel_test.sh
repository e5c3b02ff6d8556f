#!/usr/bin/env bash
# The wheel as a user gets it (CTest: python.wheel, label package). Builds it with
# python/build_wheel.sh, then:
#   1. every ELF file in it needs only base-system libraries or ones bundled in pacer.libs/
#      (readelf -d: NEEDED; RUNPATH only $ORIGIN-relative), and its tag and metadata are right;
#   2. installs it with pip --no-index into a fresh venv whose PATH reaches no compiler;
#   3. from outside the source tree: the package and its bundled libraries load from the venv
#      (not Debian's libfmt, libspdlog, libhiredis), one decision, then the examples' tests
#      (python/tests/test_examples.py) against the installed copy.
# PACER_BUILD_JOBS limits compile jobs; PACER_DEMO (pacer-demo) adds configurable_app.py's test;
# PACER_WHEEL=path checks that wheel instead of building one.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
start=$(date +%s)
python=/usr/bin/python3

if [ -n "${PACER_WHEEL:-}" ]; then
  wheel="$(cd "$(dirname "$PACER_WHEEL")" && pwd)/$(basename "$PACER_WHEEL")"
  echo "== given: $wheel"
else
  echo "== build: python/build_wheel.sh (log: the last lines on failure)"
  if ! "$repo/python/build_wheel.sh" "$work/dist" >"$work/build.log" 2>&1; then
    tail -n 60 "$work/build.log"
    echo "FAIL: the wheel did not build"
    exit 1
  fi
  wheel="$(ls "$work"/dist/pacer-*.whl)"
fi
build_seconds=$(( $(date +%s) - start ))
echo "built $(basename "$wheel") in ${build_seconds} s"

echo "== contents: tag, metadata, NEEDED of every ELF file"
"$python" - "$wheel" "$work/unpacked" <<'PY'
import pathlib, re, subprocess, sys, sysconfig, zipfile

# The base system (python/setup.py's BASE_LIBRARIES, kept apart on purpose: this is the spec).
ALLOWED = {"libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "ld-linux-x86-64.so.2",
           "libstdc++.so.6", "libgcc_s.so.1", "libssl.so.3", "libcrypto.so.3"}
wheel, unpacked = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
problems = []

python_tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
if not re.fullmatch(rf"pacer-[0-9.]+-{python_tag}-{python_tag}-linux_x86_64\.whl", wheel.name):
    problems.append(f"wheel name {wheel.name}: expected {python_tag}-{python_tag}-linux_x86_64")
zipfile.ZipFile(wheel).extractall(unpacked)
dist_info = next(unpacked.glob("pacer-*.dist-info"))
metadata = (dist_info / "METADATA").read_text()
for line in ("License: MIT", "Requires-Python: >=3.10", "Classifier: Framework :: FastAPI",
             "Classifier: License :: OSI Approved :: MIT License", "License-File: LICENSE"):
    if line not in metadata.splitlines():
        problems.append(f"METADATA lacks {line!r}")
if not (dist_info / "LICENSE").read_text().startswith("MIT License"):
    problems.append("dist-info/LICENSE is not the MIT license")
if "Root-Is-Purelib: false" not in (dist_info / "WHEEL").read_text():
    problems.append("WHEEL says the wheel is pure Python")

extensions = list((unpacked / "pacer").glob("_pacer*.so"))
if len(extensions) != 1:
    problems.append(f"expected one extension module in pacer/, found {extensions}")
bundled = {p.name for p in (unpacked / "pacer.libs").glob("*")}
for elf in sorted(p for p in unpacked.rglob("*") if p.is_file() and p.read_bytes()[:4] == b"\x7fELF"):
    name = elf.relative_to(unpacked)
    dynamic = subprocess.run(["readelf", "-d", str(elf)], check=True, capture_output=True,
                             text=True).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.+)\]", dynamic)
    run_path = re.findall(r"\((?:RUNPATH|RPATH)\)\s+Library r(?:un)?path: \[(.*)\]", dynamic)
    print(f"{name}\n  NEEDED  {' '.join(needed)}\n  RUNPATH {' '.join(run_path) or '-'}")
    for library in needed:
        if library not in ALLOWED and library not in bundled:
            problems.append(f"{name} needs {library}: neither base system nor in pacer.libs/")
    for entry in ":".join(run_path).split(":") if run_path else []:
        if not entry.startswith("$ORIGIN"):
            problems.append(f"{name} has the run path {entry} (only $ORIGIN-relative ones travel)")
    if elf in extensions and any(n in bundled for n in needed) and \
            run_path != ["$ORIGIN/../pacer.libs"]:
        problems.append(f"{name} needs pacer.libs/ but its run path is {run_path}")
for problem in problems:
    print("FAIL:", problem)
sys.exit(1 if problems else 0)
PY

echo "== install: pip --no-index into a fresh venv, no compiler on PATH"
venv="$work/venv"
"$python" -m venv --system-site-packages "$venv"
for tool in cc gcc c++ g++ clang cmake ninja make; do
  if found="$(PATH="$venv/bin" command -v "$tool")"; then
    echo "FAIL: $tool is reachable at $found"
    exit 1
  fi
done
env -i HOME="$work" LANG=C.UTF-8 PATH="$venv/bin" \
  "$venv/bin/python" -m pip install --no-index --no-deps --no-cache-dir "$wheel"

echo "== run: from $work, the installed copy"
cd "$work"
env -u PYTHONPATH PYTHONDONTWRITEBYTECODE=1 "$venv/bin/python" - "$repo" <<'PY'
import pathlib, sys

import pacer
import pacer._pacer

repo = pathlib.Path(sys.argv[1])
for module in (pacer, pacer._pacer):
    assert module.__file__.startswith(sys.prefix + "/"), f"{module.__name__} from {module.__file__}"
libs = pathlib.Path(pacer.__file__).parent.parent / "pacer.libs"
# Each bundled copy is loaded from the venv, and the system library it was copied from is not
# (libfmt-4f700944.so.9 stands for libfmt.so.9).
mapped = {pathlib.Path(line.split()[-1]) for line in open("/proc/self/maps") if "/" in line}
for copy in libs.iterdir():
    original = copy.name.split("-")[0] + copy.name[copy.name.index(".so"):]
    assert copy in mapped, f"{copy} is not loaded"
    assert not any(p.name == original for p in mapped), f"the system's {original} is loaded"
print(f"pacer {pacer.__version__} from {pathlib.Path(pacer._pacer.__file__).parent};",
      f"bundled: {' '.join(sorted(p.name for p in libs.iterdir())) or 'none'}")

limiter = pacer.Limiter(redis_url="memory://")
policy = pacer.Policy(rates=[pacer.Rate(1, "1m")], name="wheel")
first = limiter.check_blocking("user:1", policy=policy)
second = limiter.check_blocking("user:1", policy=policy)
assert first.allowed and not second.allowed and second.retry_after_ms > 0, (first, second)
print("one decision: allowed, then denied for", second.retry_after_ms, "ms")

import pytest

sys.exit(pytest.main(["-q", "-rs", "-p", "no:cacheprovider", "-c", str(repo / "python/pytest.ini"),
                      "--rootdir", str(repo / "python"), str(repo / "python/tests/test_examples.py")]))
PY
echo "wheel test passed: build ${build_seconds} s, total $(( $(date +%s) - start )) s"
