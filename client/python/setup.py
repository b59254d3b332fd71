"""Builds the `strata` Python package: the C extension strata._core over libstrata and the
embedded store, plus the pure-Python layer. The C libraries come from the repository's
Makefile (position-independent archive lib/libstrata-py.a and the flags it links with); when
pip runs this directly (`pip install --no-build-isolation ./client/python`), make builds them
first. No network is needed."""
import os
import shlex
import subprocess

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def core_lib():
    lib_dir = os.environ.get("STRATA_LIB_DIR")
    if not lib_dir:
        lib_dir = os.path.join(ROOT, "lib")
        subprocess.check_call(["make", "-C", ROOT, "-j2", "lib/libstrata-py.a",
                               "lib/libstrata-py.ldflags"])
    with open(os.path.join(lib_dir, "libstrata-py.ldflags")) as f:
        ldflags = shlex.split(f.read())
    return os.path.join(lib_dir, "libstrata-py.a"), ldflags


archive, ldflags = core_lib()
cflags = ["-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Wmissing-prototypes",
          "-Wno-unused-parameter", "-Wno-missing-field-initializers"]
cflags += shlex.split(os.environ.get("STRATA_CFLAGS", "-Werror"))

setup(
    name="strata",
    version="0.1.0",
    description="Python client of the Strata feature store: DataFrames in, DataFrames out",
    packages=["strata"],
    ext_modules=[Extension(
        "strata._core",
        sources=[os.path.relpath(os.path.join(HERE, "src", f)) for f in ("py_core.c", "py_data.c")],
        include_dirs=[ROOT],
        extra_compile_args=cflags,
        extra_objects=[archive],
        extra_link_args=ldflags,
        depends=[os.path.join(HERE, "src", "py_core.h")],
    )],
    python_requires=">=3.9",
)
