"""Builds the Cython extensions under tdetl/_native/ (metadata lives in pyproject.toml)."""

from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = [
    Extension("tdetl._native.rawblock", ["tdetl/_native/rawblock.pyx"], extra_compile_args=["-O3"]),
]

setup(ext_modules=cythonize(extensions, language_level=3, compiler_directives={"boundscheck": False}))
