"""The package's surface: docstrings on every public class and method, type stubs that
declare everything the native module exports, and the example the README shows."""

import ast
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import kiln
import kiln._kiln as native
import kiln.errors
import kiln.ml
import kiln.progress

PACKAGE = Path(kiln.__file__).parent


def public_members(obj: object) -> list[tuple[str, object]]:
    return [(n, m) for n, m in vars(obj).items() if not n.startswith("_")]


def test_every_public_class_and_method_has_a_docstring() -> None:
    missing = []
    for module in (kiln, kiln.ml, kiln.errors, kiln.progress):
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            if obj.__module__ != module.__name__:
                continue  # documented where it is defined
            if not inspect.getdoc(obj):
                missing.append(f"{module.__name__}.{name}")
            if inspect.isclass(obj):
                for member, value in public_members(obj):
                    target = value.fget if isinstance(value, property) else value
                    if callable(target) and not (target.__doc__ or "").strip():
                        missing.append(f"{module.__name__}.{name}.{member}")
    assert not missing, f"no docstring: {missing}"


def test_the_stubs_declare_every_native_class_and_method() -> None:
    tree = ast.parse((PACKAGE / "_kiln.pyi").read_text())
    stubbed: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            stubbed[node.name] = {
                n.name for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            }
        elif isinstance(node, ast.FunctionDef):
            stubbed[node.name] = set()
    missing = []
    for name in dir(native):
        if name.startswith("__"):
            continue
        obj = getattr(native, name)
        if name not in stubbed:
            missing.append(name)
            continue
        if inspect.isclass(obj):
            for member in dir(obj):
                if member.startswith("_") and member not in ("__arrow_c_stream__", "__len__"):
                    continue
                if member not in stubbed[name]:
                    missing.append(f"{name}.{member}")
    assert not missing, f"not in _kiln.pyi: {missing}"


def test_the_package_ships_its_type_information() -> None:
    assert (PACKAGE / "py.typed").is_file()
    pyproject = (PACKAGE.parent / "pyproject.toml").read_text()
    assert "kiln/py.typed" in pyproject and "kiln/*.pyi" in pyproject


def test_the_quickstart_example_runs_its_whole_pipeline(tmp_path: Path) -> None:
    example = PACKAGE.parent.parent / "examples" / "python" / "quickstart.py"
    run = subprocess.run(
        [sys.executable, str(example)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "churn_rate" in out and "loss per iteration:" in out
    # The classifier learned something: the data's churn depends on plan, tenure and spend.
    auc = float(re.search(r"roc_auc: ([0-9.]+)", out).group(1))
    assert 0.6 < auc <= 1.0, out
    assert "prediction" in out
