"""The numbered report notebooks, installed as the package data ``nst_lib.notebooks`` (see pyproject.toml)."""
