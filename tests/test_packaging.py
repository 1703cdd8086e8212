"""What `pip install` puts into a user's environment: gemmalab and nothing else at the top level."""

from __future__ import annotations

import tomllib

from .conftest import REPO


def test_every_installed_package_lives_inside_gemmalab():
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert all(p == "gemmalab" or p.startswith("gemmalab.") for p in setuptools["packages"])
    for package, folder in setuptools["package-dir"].items():
        assert package == "" or package.startswith("gemmalab."), package
        assert (REPO / folder / "__init__.py").exists() or folder == "src", folder
