"""Builds the extension module pacer._pacer with the project's CMake (the same target the test
build uses) and installs it beside the pure-Python package.

    pip install -v --no-build-isolation ./python   # from source (-v shows CMake's progress)
    python/build_wheel.sh                           # a wheel that installs without a compiler

Environment:
    PACER_BUILD_JOBS=N     compile jobs (default: one per CPU)
    PACER_BUNDLE_LIBS=1    make the extension self-contained, as auditwheel does: every shared
                           library it needs beyond BASE_LIBRARIES is copied into pacer.libs/
                           under a name of its own, and the extension finds it there through an
                           $ORIGIN run path (patchelf). python/build_wheel.sh sets it.
"""

import hashlib
import os
import pathlib
import re
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = pathlib.Path(__file__).resolve().parent.parent

# What every Linux with Python 3 and OpenSSL 3 has (python3 itself needs libssl and libcrypto
# for its ssl and hashlib modules); anything else goes into the wheel. python/tests/wheel_test.sh
# holds the same list and fails on a library outside it.
BASE_LIBRARIES = {
    "libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "ld-linux-x86-64.so.2",
    "libstdc++.so.6", "libgcc_s.so.1", "libssl.so.3", "libcrypto.so.3",
}


def log(message: str) -> None:
    # pip 23 shows a build's output only with -v (without it, each line turns its spinner).
    print(f"pacer: {message}", file=sys.stderr, flush=True)


class CMakeBuild(build_ext):
    def build_extension(self, ext: Extension) -> None:
        build = pathlib.Path(self.build_temp).resolve() / "cmake"
        out = pathlib.Path(self.get_ext_fullpath(ext.name)).resolve()
        jobs = os.environ.get("PACER_BUILD_JOBS") or str(os.cpu_count() or 2)
        bundle = os.environ.get("PACER_BUNDLE_LIBS") == "1"
        if bundle and shutil.which("patchelf") is None:
            raise RuntimeError("PACER_BUNDLE_LIBS=1 needs patchelf (Debian: apt install patchelf)")
        log(f"building the C++ extension with CMake in {build} (Release, {jobs} jobs; "
            "a few minutes on two cores)")
        subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build), "-G", "Ninja",
                        "-DCMAKE_BUILD_TYPE=Release", "-DPACER_BUILD_TESTS=OFF",
                        "-DPACER_BUILD_BENCHMARKS=OFF", "-DPACER_BUILD_BEAST=OFF",
                        "-DPACER_INSTALL=OFF", "-DPACER_BUILD_PYTHON=ON",
                        f"-DPython_EXECUTABLE={sys.executable}"], check=True)
        subprocess.run(["cmake", "--build", str(build), "--target", "pacer_python", "-j", jobs],
                       check=True)
        built = next((build / "python" / "pacer").glob("_pacer*.so"))
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built, out)
        libs = out.parent.parent / "pacer.libs"
        shutil.rmtree(libs, ignore_errors=True)  # a bundling build's, if one ran here before
        if bundle:
            bundle_libraries(out, libs)
        log(f"built {out.name}")


def needed(elf: pathlib.Path) -> list:
    """The library names in an ELF file's dynamic section (DT_NEEDED)."""
    dynamic = subprocess.run(["readelf", "-d", str(elf)], check=True, capture_output=True,
                             text=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[(.+)\]", dynamic)


def resolve(elf: pathlib.Path) -> dict:
    """Every library the loader would map for `elf`, name -> path (ldd walks the whole tree)."""
    listing = subprocess.run(["ldd", str(elf)], check=True, capture_output=True, text=True).stdout
    found = {}
    for name, path in re.findall(r"^\s*(\S+) => (\S+)", listing, re.MULTILINE):
        if path == "not":
            raise RuntimeError(f"{elf.name} needs {name}, which the loader cannot find")
        found[name] = pathlib.Path(path)
    return found


def bundle_libraries(extension: pathlib.Path, libs: pathlib.Path) -> None:
    """Copies the libraries outside BASE_LIBRARIES into `libs`, as auditwheel repairs a wheel.

    Each copy gets a name of its own (libfmt.so.9 -> libfmt-<hash>.so.9, its soname too) so a
    process that has the system's libfmt.so.9 loaded, or another wheel's, still maps ours; the
    extension and the copies name each other by the new names and look beside themselves
    ($ORIGIN) first."""
    foreign = {name: path for name, path in resolve(extension).items()
               if name not in BASE_LIBRARIES}
    libs.mkdir(parents=True)
    renamed = {}
    for name, path in sorted(foreign.items()):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
        stem, _, version = name.partition(".so")
        renamed[name] = f"{stem}-{digest}.so{version}"
        copy = libs / renamed[name]
        shutil.copyfile(path, copy)
        copy.chmod(0o755)
        subprocess.run(["patchelf", "--set-soname", renamed[name], str(copy)], check=True)
        log(f"bundled {path} as pacer.libs/{renamed[name]}")
    targets = [(extension, "$ORIGIN/../pacer.libs")] + \
              [(libs / new, "$ORIGIN") for new in renamed.values()]
    for elf, run_path in targets:
        for old in needed(elf):
            if old in renamed:
                subprocess.run(["patchelf", "--replace-needed", old, renamed[old], str(elf)],
                               check=True)
        subprocess.run(["patchelf", "--set-rpath", run_path, str(elf)], check=True)


setup(ext_modules=[Extension("pacer._pacer", sources=[])], cmdclass={"build_ext": CMakeBuild})
