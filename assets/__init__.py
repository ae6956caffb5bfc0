"""The manifest of named images, installed as the package data ``nst_lib.asset_data`` (see pyproject.toml)."""
