"""Setuptools shim: the metadata and dependencies live in setup.cfg; the packages are listed here.

The bundled default model stays in the repository's top-level `saved_models/` folder and is
shipped as package data under `cin_style/saved_models/` (the sub-package `cin_style.saved_models`
is mapped onto that folder), so a wheel (non-editable) install has it too. `cin_style.bundled`
finds it there, or beside the package in a source checkout or an editable install.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["cin_style", "cin_style.*"]) + ["cin_style.saved_models"],
    package_dir={"cin_style.saved_models": "saved_models"},
    package_data={"cin_style.saved_models": ["README.md", "cin_style_default/**/*", "cin_style_slim/**/*"]},
)
