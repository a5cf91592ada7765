# SPDX-License-Identifier: Apache-2.0
"""The package version, held once: pyproject.toml reads it at build time
(without importing the package), the package and the servers at run time."""

__version__ = "0.1.0"
