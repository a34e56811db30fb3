"""The documentation's code stays true: snippets run, names exist, every public name is documented.

* Each ``docs/snippets/*.py`` (included into the guides with pymdownx.snippets) runs
  here at small sizes; the Lightning ones only when ``lightning`` is installed (the
  ``dev`` extra installs it, so CI runs them).
* The README's "Using a block in your own loop" block parses and uses only names
  and attributes that exist in dastc; so does its "The whole method" block.
* The knobs table of the whole-method guide lists every ``MethodConfig`` field
  with its default and help text.
* The API pages (``docs/api/*.md``) have a ``:::`` entry for every name in the
  ``__all__`` of dastc, dastc.functional, dastc.methods, dastc.metrics, dastc.data
  and dastc.typing.
* Marked slow: the strict ``mkdocs build`` (when mkdocs is installed), the
  DDP snippet under ``torchrun`` with two processes, and the figure script.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import math
import os
import re
import runpy
import subprocess
import sys
import typing
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import free_port

import dastc
import dastc.data
import dastc.functional
import dastc.methods
import dastc.metrics
import dastc.typing
from dastc.methods import DASTC, MethodConfig, StepOutput

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SNIPPETS = DOCS / "snippets"
PUBLIC_MODULES = (
    dastc,
    dastc.functional,
    dastc.methods,
    dastc.metrics,
    dastc.data,
    dastc.typing,
)


# ---------------------------------------------------------------------------- snippets
@pytest.fixture
def run_snippet(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Any]:
    """Run ``docs/snippets/<name>`` as ``__main__`` on one thread; return its stdout."""
    monkeypatch.syspath_prepend(str(SNIPPETS))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)

    def run(name: str) -> str:
        with torch.random.fork_rng(devices=[]):
            runpy.run_path(str(SNIPPETS / name), run_name="__main__")
        return capsys.readouterr().out

    yield run
    torch.set_num_threads(threads)


def _number(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    assert match is not None, f"{pattern!r} not in output:\n{text}"
    return float(match.group(1))


def test_snippet_own_loop(run_snippet: Any) -> None:
    out = run_snippet("own_loop.py")
    miou = _number(r"target mIoU of the teacher after 10 steps: ([\d.]+)", out)
    assert 0.0 <= miou <= 100.0


def test_snippet_image_recipe(run_snippet: Any) -> None:
    with pytest.warns(UserWarning, match="WarmStartGuard"):
        out = run_snippet("image_recipe.py")
    extended = _number(r"warm start extended by (\d+) steps", out)
    adapted = _number(r"adapted (\d+) steps", out)
    assert 0 <= extended <= 4 and extended + adapted == 6
    assert "'sign'" in out and "'road'" not in out  # the rarest classes are drawn, road never


_FLOAT = r"(-?[\d.]+|nan|-?inf)"


def test_snippet_method_loop(run_snippet: Any) -> None:
    out = run_snippet("method_loop.py")
    match = re.search(r"iteration (\d+): (.*)", out)
    assert match is not None, f"no 'iteration N: name value, ...' line in:\n{out}"
    assert int(match.group(1)) == 6  # every step counted (after_step or skip_step)
    logs = dict(t.rsplit(" ", 1) for t in match.group(2).split(", "))
    # past adapt_start, the last step adapted: every loss term of the whole method
    assert {"loss", "src", "s2t", "t2s", "f_s2t", "f_t2s", "align", "pl_conf"} <= set(logs)
    assert all(math.isfinite(float(v)) for v in logs.values()), logs


def test_snippet_method_lightning(run_snippet: Any) -> None:
    pytest.importorskip("lightning")
    out = run_snippet("method_lightning.py")
    match = re.search(rf"lightning: step (\d+), iteration (\d+), loss {_FLOAT}", out)
    assert match is not None, f"no 'lightning: step N, iteration N, loss X' line in:\n{out}"
    # max_steps optimiser steps, and after_step once after each of them
    assert int(match.group(1)) == int(match.group(2)) == 4
    assert math.isfinite(float(match.group(3)))


def test_snippet_image_vs_video(run_snippet: Any) -> None:
    out = run_snippet("image_vs_video.py")  # its asserts check rank handling and the draw
    assert "torch.Size([2, 3, 32, 32]) torch.Size([2, 32, 32])" in out
    assert "torch.Size([2, 4, 32, 32])" in out


def test_snippet_temporal(run_snippet: Any) -> None:
    out = run_snippet("temporal.py")
    # The synthetic clips carry exact flow: warped correct labels must mostly agree.
    assert _number(r"agree with frame 1's labels on ([\d.]+)%", out) > 90.0
    assert _number(r"([\d.]+)% where the occlusion check passes", out) > 90.0
    assert "torch.Size([2, 1, 64, 128])" in out


def test_snippet_distributed_one_process(run_snippet: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    dist = torch.distributed
    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    if dist.is_initialized():
        pytest.skip("a process group is already initialised in this process")
    if torch.cuda.is_available():
        pytest.skip("the in-process run is for the gloo (CPU) backend")
    env = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1"}
    for key, value in {**env, "MASTER_PORT": str(free_port())}.items():
        monkeypatch.setenv(key, value)
    try:
        out = run_snippet("distributed.py")
        assert not dist.is_initialized(), "the snippet must destroy its process group"
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    assert 0.0 <= _number(r"1 processes: target mIoU ([\d.]+)", out) <= 100.0


def test_snippet_lightning(run_snippet: Any) -> None:
    pytest.importorskip("lightning")
    out = run_snippet("lightning_module.py")
    assert 0.0 <= _number(r"val mIoU: ([\d.]+)", out) <= 100.0


def _pages() -> dict[Path, str]:
    return {p: p.read_text(encoding="utf-8") for p in sorted(DOCS.rglob("*.md"))}


def test_every_snippet_is_included_and_every_include_exists() -> None:
    included: set[Path] = set()
    for page, text in _pages().items():
        for ref in re.findall(r'--8<--\s+"([^"]+)"', text):
            path = ROOT / ref
            assert path.is_file(), f"{page.relative_to(ROOT)} includes missing {ref}"
            included.add(path.resolve())
    snippets = {p.resolve() for p in SNIPPETS.glob("*.py")}
    assert snippets, "no snippets found"
    assert snippets <= included, f"snippets not shown on any page: {sorted(snippets - included)}"


def test_figures_are_committed_and_shown() -> None:
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    for name in ("clips.png", "mix.png", "prototypes.png"):
        path = DOCS / "img" / name
        assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert f"(img/{name})" in index, f"index.md does not show {name}"


# ---------------------------------------------------------------------------- README
def _readme_code(heading: str) -> str:
    """The first python block under ``heading`` in the README."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(f"\n{heading}\n")
    match = re.search(r"```python\n(.*?)```", text[start:], re.DOTALL)
    assert match is not None, f"no python block under {heading!r}"
    return match.group(1)


def _readme_loop_code() -> str:
    return _readme_code("## Using a block in your own loop")


def _dotted(node: ast.expr) -> list[str] | None:
    """``a.b.c`` -> ["a", "b", "c"]; None if the chain does not start at a name."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return [node.id, *reversed(parts)]


def _return_type(func: Any) -> type | None:
    """The return annotation of ``func`` if it is a dastc class."""
    try:
        hint = typing.get_type_hints(func).get("return")
    except Exception:
        return None
    if isinstance(hint, type) and hint.__module__.startswith("dastc"):
        return hint
    return None


def _call_result(call: ast.Call, env: dict[str, tuple[str, Any]]) -> tuple[str, Any] | None:
    """What a call in the block returns, when it is a dastc object: ("instance", cls)."""
    chain = _dotted(call.func)
    if chain is None or chain[0] not in env:
        return None
    kind, obj = env[chain[0]]
    if len(chain) == 1 and kind == "instance":  # calling a module instance: its forward
        forward = getattr(obj, "forward", None)
        rt = _return_type(forward) if forward is not None else None
        return ("instance", rt) if rt is not None else None
    for part in chain[1:]:
        assert hasattr(obj, part), f"README: {'.'.join(chain)} does not exist"
        obj = getattr(obj, part)
    if isinstance(obj, type) and (len(chain) > 1 or kind == "class"):
        return ("instance", obj)  # a dastc class is constructed
    rt = _return_type(obj)
    return ("instance", rt) if rt is not None else None


def test_readme_loop_uses_existing_dastc_names() -> None:
    tree = ast.parse(_readme_loop_code())
    modules = {"dastc": dastc, "dastc.functional": dastc.functional}
    # name in the block -> ("module" | "class" | "function" | "instance", the dastc object)
    env: dict[str, tuple[str, Any]] = {}
    checked = 0
    statements = [n for n in ast.walk(tree) if isinstance(n, ast.stmt)]
    statements.sort(key=lambda n: (n.lineno, n.col_offset))
    for node in statements:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules:
                    env[alias.asname or alias.name] = ("module", modules[alias.name])
        elif isinstance(node, ast.ImportFrom) and node.module in modules:
            for alias in node.names:
                module = modules[node.module]
                assert hasattr(module, alias.name), f"README: {node.module} has no {alias.name}"
                obj = getattr(module, alias.name)
                kind = "class" if isinstance(obj, type) else "function"
                env[alias.asname or alias.name] = (kind, obj)
                checked += 1
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            result = _call_result(node.value, env)
            for target in node.targets:
                if isinstance(target, ast.Name) and result is not None:
                    env[target.id] = result
    # Every attribute chain that starts at a dastc name or a dastc object must exist.
    for node in ast.walk(tree):
        chain = _dotted(node) if isinstance(node, ast.Attribute) else None
        if chain is None or chain[0] not in env:
            continue
        obj = env[chain[0]][1]
        for i, part in enumerate(chain[1:], start=1):
            assert hasattr(obj, part), f"README: {'.'.join(chain[: i + 1])} does not exist"
            obj = getattr(obj, part)
            checked += 1
    assert {"teacher", "mix", "out", "pl"} <= set(env), f"README block not understood: {env}"
    assert checked >= 10, f"the README block checked only {checked} names; parsing went wrong"


def test_readme_whole_method_uses_existing_names() -> None:
    tree = ast.parse(_readme_code("## The whole method"))
    imported = [
        (node.module, alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module is not None
        for alias in node.names
    ]
    assert ("dastc.methods", "DASTC") in imported, imported
    for module, name in imported:
        assert hasattr(importlib.import_module(module), name), f"README: {module}.{name}"
    knobs = {f.name for f in fields(MethodConfig)}
    checked = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _dotted(node.func) == ["MethodConfig"]:
            for kw in node.keywords:
                assert kw.arg in knobs, f"README: MethodConfig has no field {kw.arg}"
                checked += 1
        chain = _dotted(node) if isinstance(node, ast.Attribute) else None
        if chain is not None and chain[0] == "method":
            assert hasattr(DASTC, chain[1]), f"README: DASTC has no {chain[1]}"
            checked += 1
        if chain is not None and chain[0] == "out":
            assert chain[1] in StepOutput._fields, f"README: StepOutput has no {chain[1]}"
            checked += 1
    assert checked >= 3, f"the README block checked only {checked} names; parsing went wrong"


# ---------------------------------------------------------------------------- guides
def _knob_rows() -> dict[str, tuple[str, str, str]]:
    """``field -> (default, option, text)`` from the whole-method guide's knobs table."""
    text = (DOCS / "guides" / "whole-method.md").read_text(encoding="utf-8")
    section = text[text.index("## The knobs") :]
    rows = {}
    for line in section.splitlines():
        match = re.fullmatch(r"\| `(\w+)` \| `([^`]*)` \| (.*?) \| (.*) \|", line)
        if match is not None:
            rows[match.group(1)] = (match.group(2), match.group(3), match.group(4))
    return rows


def test_whole_method_guide_lists_every_knob() -> None:
    rows = _knob_rows()
    assert list(rows) == [f.name for f in fields(MethodConfig)], "knobs table: fields or order"
    for f in fields(MethodConfig):
        default, option, text = rows[f.name]
        assert default == repr(f.default), f"knobs table: {f.name} default {default}"
        flag = f.name.replace("_", "-")
        if "ablation" in f.metadata:  # a component switch: --no-<name>
            assert option == f"`--no-{flag}`", f"knobs table: {f.name} option {option}"
            assert f.metadata["ablation"] in text, f"knobs table: {f.name} text {text!r}"
        elif "help" in f.metadata:  # an example option generated from the field
            on = f"--no-{flag}" if f.default is True else f"--{flag}"
            assert option == f"`{on}`", f"knobs table: {f.name} option {option}"
            assert f.metadata["help"] in text, f"knobs table: {f.name} text {text!r}"


# ---------------------------------------------------------------------------- API pages
def _directives() -> list[tuple[str, str]]:
    """``(identifier, options text)`` of every ``::: identifier`` in docs/api/*.md."""
    found = []
    for page in sorted((DOCS / "api").glob("*.md")):
        text = page.read_text(encoding="utf-8")
        for match in re.finditer(r"^::: ([\w.]+)[ \t]*\n((?:[ \t]+.*\n)*)", text, re.MULTILINE):
            found.append((match.group(1), match.group(2)))
    return found


def _resolve(identifier: str) -> Any:
    parts = identifier.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for part in parts[i:]:
            obj = getattr(obj, part)
        return obj
    raise ImportError(identifier)


def _documented() -> tuple[set[str], set[int]]:
    """Qualified names documented by the API pages, and ids of the classes/functions."""
    names: set[str] = set()
    ids: set[int] = set()

    def add(name: str, obj: Any) -> None:
        names.add(name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            ids.add(id(obj))

    for identifier, options in _directives():
        obj = _resolve(identifier)
        add(identifier, obj)
        if not inspect.ismodule(obj) or re.search(r"^\s*members:\s*false\s*$", options, re.M):
            continue
        listed = re.findall(r"^\s*-\s*(\w+)\s*$", options, re.MULTILINE)
        members = listed or list(getattr(obj, "__all__", []))
        for member in members:
            add(f"{identifier}.{member}", getattr(obj, member))
    return names, ids


def _public_names() -> Iterator[tuple[str, Any]]:
    for module in PUBLIC_MODULES:
        for name in module.__all__:
            obj = getattr(module, name)
            if name.startswith("__") or inspect.ismodule(obj):
                continue
            yield f"{module.__name__}.{name}", obj


def test_api_reference_covers_every_public_name() -> None:
    names, ids = _documented()
    missing = [
        name
        for name, obj in _public_names()
        if name not in names
        and not ((inspect.isclass(obj) or inspect.isfunction(obj)) and id(obj) in ids)
    ]
    assert not missing, f"public names without an entry in docs/api/*.md: {missing}"


def test_api_directives_resolve() -> None:
    for identifier, _ in _directives():
        _resolve(identifier)  # raises for a renamed or removed name


# ---------------------------------------------------------------------------- slow
@pytest.mark.slow
def test_mkdocs_build_strict(tmp_path: Path) -> None:
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", "mkdocs.yml", "-d", str(site)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    html = "".join(p.read_text(encoding="utf-8") for p in (site / "api").rglob("*.html"))
    names, _ = _documented()
    missing = [n for n in sorted(names) if f'id="{n}"' not in html]
    assert not missing, f"API entries without an anchor in the built site: {missing}"


@pytest.mark.slow
def test_snippet_distributed_two_processes() -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(SNIPPETS)}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_port", str(free_port()), str(SNIPPETS / "distributed.py"),
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=SNIPPETS, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 processes: target mIoU" in proc.stdout


@pytest.mark.slow
def test_make_figures_writes_the_pictures(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    cmd = [sys.executable, str(DOCS / "make_figures.py"), "--out", str(tmp_path), "--iters", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ("clips.png", "mix.png", "prototypes.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
