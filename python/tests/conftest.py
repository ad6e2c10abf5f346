"""Shared fixtures of Kiln's Python suite."""

from __future__ import annotations

import pytest

import kiln


@pytest.fixture(scope="session")
def session(tmp_path_factory: pytest.TempPathFactory) -> kiln.Session:
    """An embedded session with 2 executors, no progress output, and its SQL model catalog
    in a temporary directory."""
    models = tmp_path_factory.mktemp("models")
    return kiln.Session.local(2, progress=None, models_dir=str(models))
