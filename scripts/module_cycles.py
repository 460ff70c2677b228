#!/usr/bin/env python3
"""Fails when modules of a Palaver crate import each other in a cycle.

Every `.rs` file under a crate's `src/` is a module (`src/a/b.rs` and `src/a/b/mod.rs` are
`a::b`). A module depends on another when it names it in a path: `crate::a::b::X`,
`super::X`, `self::c::X`, or `c::X` for a child module `c` it declares, in `use`
declarations and in code alike; a path that names an item resolves to the module holding
it. Uses of a module's own ancestors (`super::Error` in a child) are the normal way a child
reaches what its parent owns and are not counted; everything else is. `#[cfg(test)]`
modules are left out: a test module may use anything.

Prints each cycle found, as the modules in it, and exits 1; exits 0 and says so when
there is none. `--graph` prints every edge instead.

    python3 scripts/module_cycles.py [--graph] [crate dir ...]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CRATES = sorted(
    p.parent for p in ROOT.glob("**/Cargo.toml")
    if (p.parent / "src").is_dir() and "target" not in p.parts and ".tools" not in p.parts
)

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip_comments_and_strings(text: str) -> str:
    """Blanks comments, string and char literals, keeping line structure."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    if text[i] == "\n":
                        out.append("\n")
                    i += 1
        elif c == "r" and re.match(r'r#*"', text[i:i + 10]) and not re.match(r"\w", text[i - 1] if i else " "):
            m = re.match(r'r(#*)"', text[i:])
            end = text.find('"' + m.group(1), i + len(m.group(0)))
            end = n if end < 0 else end + 1 + len(m.group(1))
            out.append(" " + "\n" * text.count("\n", i, end))
            i = end
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j + 1
        elif c == "'" and re.match(r"'(\\.|[^\\'])'|'\\u\{[0-9a-fA-F]+\}'|'\\x..'", text[i:i + 12]):
            m = re.match(r"'(\\.|[^\\'])'|'\\u\{[0-9a-fA-F]+\}'|'\\x..'", text[i:i + 12])
            out.append("' '")
            i += len(m.group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def drop_test_modules(text: str) -> str:
    """Removes `#[cfg(test)] mod name { … }` blocks and `#[cfg(test)] mod name;` lines."""
    pattern = re.compile(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+" + IDENT + r"\s*([{;])")
    while True:
        m = pattern.search(text)
        if not m:
            return text
        if m.group(3) == ";":
            text = text[:m.start()] + text[m.end():]
            continue
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        text = text[:m.start()] + "\n" * text.count("\n", m.start(), j) + text[j:]


def test_module_files(text: str) -> set[str]:
    return set(re.findall(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(" + IDENT + r")\s*;", text))


def expand_use_tree(tree: str) -> list[str]:
    """`a::{b, c::{d, e}}` → ["a::b", "a::c::d", "a::c::e"]."""
    tree = re.sub(r"\s+", "", tree)
    depth = 0
    for k, ch in enumerate(tree):
        if ch == "{":
            if depth == 0:
                prefix, inner = tree[:k], tree[k + 1:tree.rindex("}")]
                parts, start, d = [], 0, 0
                for m, ch2 in enumerate(inner):
                    d += {"{": 1, "}": -1}.get(ch2, 0)
                    if ch2 == "," and d == 0:
                        parts.append(inner[start:m])
                        start = m + 1
                parts.append(inner[start:])
                return [prefix + p for part in parts if part for p in expand_use_tree(part)]
            depth += 1
    return [re.sub(r"\bas\w+$", "", tree)]


class Crate:
    def __init__(self, directory: Path):
        self.name = directory.relative_to(ROOT).as_posix()
        self.src = directory / "src"
        self.modules: dict[tuple[str, ...], Path] = {}
        self.skipped: set[Path] = set()
        self._discover()

    def _module_of(self, path: Path) -> tuple[str, ...]:
        parts = list(path.relative_to(self.src).with_suffix("").parts)
        if parts[-1] == "mod" or (len(parts) == 1 and parts[0] in ("lib", "main")):
            parts.pop()
        return tuple(parts)

    def _discover(self):
        for path in sorted(self.src.rglob("*.rs")):
            if path.parent == self.src and path.name not in ("lib.rs", "main.rs") and (self.src / "lib.rs").exists() \
                    and path.name == "main.rs":
                continue
            self.modules[self._module_of(path)] = path
        # Files declared as `#[cfg(test)] mod x;` are test modules.
        for module, path in list(self.modules.items()):
            for name in test_module_files(path.read_text()):
                self.skipped.add(self.modules.get(module + (name,), Path()))
        self.modules = {m: p for m, p in self.modules.items() if p not in self.skipped}
        # A crate with both lib.rs and main.rs: main.rs is another crate root using the lib.
        if (self.src / "lib.rs").exists():
            self.modules[()] = self.src / "lib.rs"

    def resolve(self, module: tuple[str, ...], path: list[str]) -> tuple[str, ...] | None:
        """The module file that `path`, written in `module`, points into."""
        if not path:
            return None
        head = path[0]
        if head == "crate":
            target = []
            rest = path[1:]
        elif head == "super" or head == "self":
            target = list(module)
            rest = path
            while rest and rest[0] in ("super", "self"):
                if rest[0] == "super":
                    target.pop()
                rest = rest[1:]
        elif module + (head,) in self.modules:
            target, rest = list(module), path
        else:
            return None
        for segment in rest:
            if tuple(target + [segment]) in self.modules:
                target.append(segment)
            else:
                break
        return tuple(target)

    def edges(self) -> dict[tuple[str, ...], set[tuple[str, ...]]]:
        graph: dict[tuple[str, ...], set[tuple[str, ...]]] = {m: set() for m in self.modules}
        path_re = re.compile(r"(?<![\w:])((?:" + IDENT + r"::)+" + IDENT + r")")
        use_re = re.compile(r"\buse\s+([^;]+);", re.S)
        for module, file in self.modules.items():
            text = drop_test_modules(strip_comments_and_strings(file.read_text()))
            paths: list[str] = []
            for m in use_re.finditer(text):
                paths.extend(expand_use_tree(m.group(1)))
            without_uses = use_re.sub(" ", text)
            paths.extend(m.group(1) for m in path_re.finditer(without_uses))
            for p in paths:
                target = self.resolve(module, [s for s in p.split("::") if s])
                if target is None or target == module:
                    continue
                if module[:len(target)] == target:
                    continue  # an ancestor: what a child reaches in its parent
                graph[module].add(target)
        return graph


def strongly_connected(graph):
    index, low, stack, on_stack, result = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return result


def name(module):
    return "::".join(("crate",) + module)


def main(argv):
    show_graph = "--graph" in argv
    dirs = [Path(a).resolve() for a in argv if not a.startswith("--")] or DEFAULT_CRATES
    cycles = 0
    for directory in dirs:
        crate = Crate(directory)
        graph = crate.edges()
        if show_graph:
            for m in sorted(graph):
                for t in sorted(graph[m]):
                    print(f"{crate.name}: {name(m)} -> {name(t)}")
        for component in strongly_connected(graph):
            cycles += 1
            members = set(component)
            print(f"{crate.name}: import cycle between " + ", ".join(name(m) for m in component))
            for m in component:
                for t in sorted(graph[m] & members):
                    print(f"    {name(m)} uses {name(t)}")
    if cycles:
        print(f"module_cycles: {cycles} import cycle(s); a module may not use one that uses it back")
        return 1
    print(f"module_cycles: no import cycles in {len(dirs)} crates")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
