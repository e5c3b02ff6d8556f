"""Builds the extension module pacer._pacer with the project's CMake (the same target the test
build uses) and installs it beside the pure-Python package.

    pip install --no-build-isolation ./python     # from the repository root
"""

import os
import pathlib
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = pathlib.Path(__file__).resolve().parent.parent


class CMakeBuild(build_ext):
    def build_extension(self, ext: Extension) -> None:
        build = pathlib.Path(self.build_temp).resolve() / "cmake"
        out = pathlib.Path(self.get_ext_fullpath(ext.name)).resolve()
        subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build), "-G", "Ninja",
                        "-DCMAKE_BUILD_TYPE=Release", "-DPACER_BUILD_TESTS=OFF",
                        "-DPACER_BUILD_BENCHMARKS=OFF", "-DPACER_BUILD_BEAST=OFF",
                        "-DPACER_INSTALL=OFF", "-DPACER_BUILD_PYTHON=ON",
                        f"-DPython_EXECUTABLE={sys.executable}"], check=True)
        jobs = str(os.cpu_count() or 2)
        subprocess.run(["cmake", "--build", str(build), "--target", "pacer_python", "-j", jobs],
                       check=True)
        built = next((build / "python" / "pacer").glob("_pacer*.so"))
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built, out)


setup(ext_modules=[Extension("pacer._pacer", sources=[])], cmdclass={"build_ext": CMakeBuild})
