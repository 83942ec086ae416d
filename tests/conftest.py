"""Shared test set-up: every module in tests/fixtures/ is loaded as a pytest plugin."""

from __future__ import annotations

from pathlib import Path

pytest_plugins = sorted(f"tests.fixtures.{p.stem}" for p in (Path(__file__).parent / "fixtures").glob("[!_]*.py"))
