#!/usr/bin/env python3
"""Checks that the modules of a crate import each other one way only: no import circle.

A module is one source file (`a.rs` or `a/mod.rs`). Module A imports module B when A's code
outside its test module names an item of B through a path (`use crate::b::Item`,
`crate::b::f()`, `super::Item`, `use crate::{b::X, c::Y}`). A name reached through a
re-export (`pub use` in `lib.rs` or a `mod.rs`) counts as an import of the module that
defines it, not of the one that hands it on (the `pub use` itself is no import, nor is
declaring a submodule, `mod b;`).

    python3 scripts/check_module_cycles.py [CRATE_SRC ...]   (default: engine/src)

Exits non-zero naming every circle and, for each of its arrows, the names that make it.
"""
import re
import sys
from pathlib import Path

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def module_files(src: Path) -> dict:
    """Module path (tuple of names; () for the crate root) -> file."""
    modules = {}
    for f in sorted(src.rglob("*.rs")):
        rel = f.relative_to(src)
        if rel.parts[0] == "bin":
            continue
        parts = list(rel.with_suffix("").parts)
        if parts[-1] in ("mod", "lib", "main"):
            parts = parts[:-1]
        modules[tuple(parts)] = f
    return modules


def strip_literals(text: str) -> str:
    """`text` with comments removed and every string, raw string and char literal emptied,
    read left to right so that `"//"` in a string is no comment and `//` in a comment opens
    no string."""
    out, i, n = [], 0, len(text)
    char = re.compile(r"'(?:\\(?:u\{[0-9a-fA-F]+\}|x[0-9a-fA-F]{2}|.)|[^\\'\n])'")
    while i < n:
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        if text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
            continue
        word_start = i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")
        raw = re.match(r'(?:br|r)(#*)"', text[i:]) if word_start else None
        if raw:
            close = '"' + raw.group(1)
            j = text.find(close, i + raw.end())
            i = n if j < 0 else j + len(close)
            out.append('""')
            continue
        if text[i] == '"' or (word_start and text.startswith('b"', i)):
            i += 1 if text[i] == '"' else 2
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            out.append('""')
            continue
        if text[i] == "'":
            m = char.match(text, i)
            if m:
                out.append("' '")
                i = m.end()
                continue
        out.append(text[i])
        i += 1
    return "".join(out)


def code_of(f: Path) -> str:
    """The file's code without comments, string literals and its `#[cfg(test)]` module."""
    text = strip_literals(f.read_text())
    test = re.search(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{", text)
    if test:
        text = text[: test.start()]
    return text


def use_trees(code: str):
    """Every path a `use` declaration names, as lists of segments (with `*` for globs)."""

    def expand(tree: str, prefix: list):
        tree = tree.strip()
        if not tree:
            return
        if tree.startswith("{"):
            depth, start = 0, 1
            for i, ch in enumerate(tree):
                if ch == "{":
                    depth += 1
                elif ch == "}":
                    depth -= 1
                if (ch == "," and depth == 1) or depth == 0:
                    yield from expand(tree[start:i], prefix)
                    start = i + 1
                if depth == 0:
                    return
            return
        head, sep, rest = tree.partition("::")
        head = head.split(" as ")[0].strip()
        if not sep:
            yield prefix + [head]
        else:
            yield from expand(rest, prefix + [head])

    for m in re.finditer(r"\buse\s+([^;]+);", code):
        yield from expand(m.group(1), [])


def inline_paths(code: str):
    """Paths written in code (`crate::a::f(..)`, `super::X`), outside `use` declarations."""
    code = re.sub(r"\buse\s+[^;]+;", "", code)
    for m in re.finditer(rf"\b(crate|super|self)((?:::{IDENT})+)", code):
        yield [m.group(1)] + m.group(2).split("::")[1:]


def main() -> int:
    crates = [Path(a) for a in sys.argv[1:]] or [Path("engine/src")]
    failed = False
    for src in crates:
        modules = module_files(src)
        codes = {m: code_of(f) for m, f in modules.items()}
        # Re-exports: module -> name -> absolute path of what it hands on.
        reexports = {m: {} for m in modules}
        for m, code in codes.items():
            for use in re.finditer(r"\bpub(\([^)]*\))?\s+use\s+([^;]+);", code):
                for path in use_trees("use " + use.group(2) + ";"):
                    absolute = absolute_path(m, path, modules)
                    if absolute and path[-1] not in ("*", "self"):
                        reexports[m][path[-1]] = absolute
        edges = {}
        for m, code in codes.items():
            # A re-export hands names on: who uses them imports the module defining them.
            own = re.sub(r"\bpub(\([^)]*\))?\s+use\s+[^;]+;", "", code)
            paths = list(use_trees(own)) + list(inline_paths(own))
            for path in paths:
                absolute = absolute_path(m, path, modules)
                if absolute is None:
                    continue
                target, name = resolve(absolute, modules, reexports)
                if target is None or target == m or is_ancestor(m, target) and name is None:
                    continue
                edges.setdefault(m, {}).setdefault(target, set()).add(name or "(module)")
        circles = strongly_connected(list(modules), edges)
        for circle in circles:
            failed = True
            names = ", ".join(str(modules[m].relative_to(src)) for m in circle)
            print(f"module circle in {src}: {names}", file=sys.stderr)
            members = set(circle)
            for a in circle:
                for b, used in sorted(edges.get(a, {}).items()):
                    if b in members:
                        print(
                            f"  {modules[a].relative_to(src)} -> {modules[b].relative_to(src)}: "
                            f"{', '.join(sorted(used))}",
                            file=sys.stderr,
                        )
        if not circles:
            arrows = sum(len(v) for v in edges.values())
            print(f"module circles: none in {src} ({len(modules)} modules, {arrows} arrows)")
    return 1 if failed else 0


def is_ancestor(a: tuple, b: tuple) -> bool:
    return len(a) < len(b) and b[: len(a)] == a


def absolute_path(module: tuple, path: list, modules: dict):
    """`path` as seen from `module`, from the crate root; None for other crates."""
    here = list(module)
    # A file `a/mod.rs` or `a.rs` is module `a`: `self` is `a`, `super` its parent.
    if path[0] == "crate":
        return path[1:]
    if path[0] == "self":
        return here + path[1:]
    if path[0] == "super":
        up = here
        while path and path[0] == "super":
            up = up[:-1]
            path = path[1:]
        return list(up) + path
    # A path starting at a child module of this one (`use lazy::X` in a mod.rs).
    if tuple(here + [path[0]]) in modules:
        return here + path
    return None


def resolve(path: list, modules: dict, reexports: dict, depth: int = 0):
    """The module that defines what `path` names, and the name (None: the module itself)."""
    path = [p for p in path if p != "self"]
    for cut in range(len(path), -1, -1):
        module = tuple(path[:cut])
        if module in modules:
            rest = path[cut:]
            if not rest or rest[0] == "*":
                return module, None
            name = rest[0]
            handed = reexports.get(module, {}).get(name)
            if handed and depth < 8 and handed != path:
                return resolve(handed + rest[1:], modules, reexports, depth + 1)
            return module, name
    return None, None


def strongly_connected(nodes: list, edges: dict) -> list:
    """Tarjan's algorithm: the components of more than one module."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in nodes:
        if v not in index:
            visit(v)
    return out


if __name__ == "__main__":
    sys.exit(main())
