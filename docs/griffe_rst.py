"""Griffe extension: render the reStructuredText bits of dastc's docstrings as Markdown.

dastc's docstrings are Google style with a few reStructuredText habits that
mkdocstrings would otherwise show literally. Before the docstrings are parsed,
this extension rewrites, in every docstring of the package:

* ``Example:`` section titles to ``Examples:`` (the title griffe's Google parser
  reads as a section of doctest examples);
* ``.. math::`` blocks to ``$$ ... $$`` and ``:math:`...``` to ``$...$``
  (rendered by ``pymdownx.arithmatex`` and MathJax);
* ``:class:``, ``:func:``, ``:meth:``, ``:attr:``, ``:data:``, ``:mod:`` and
  ``:exc:`` roles to cross-references when they name a dastc object, and to
  inline code otherwise (``~`` keeps only the last name, as in Sphinx);
* a paragraph ending in ``::`` (a literal block follows) to one ending in ``:``.

It also shows the default of a dataclass field declared through one of dastc's
``field`` helpers (``_knob(default, help)`` in ``dastc.methods.config``) as that
default, not as the helper call, in the attribute and in the generated
``__init__`` signature.

The docstrings themselves are left unchanged; only their rendering is affected.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(class|func|meth|attr|data|mod|exc|obj):`(~?)([^`]+)`")
_MATH_ROLE = re.compile(r":math:`([^`]+)`")
_EXAMPLE = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)
_LITERAL = re.compile(r"(\S)::[ \t]*$", re.MULTILINE)
# helpers returning ``dataclasses.field(default=<first argument>, metadata=...)``
_FIELD_HELPERS = {"dastc.methods.config._knob"}


def _math_blocks(text: str) -> str:
    """Replace ``.. math::`` directives (and their indented body) with ``$$`` blocks."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.lstrip()
        if not stripped.startswith(".. math::"):
            out.append(line)
            i += 1
            continue
        indent = line[: len(line) - len(stripped)]
        body: list[str] = []
        rest = stripped[len(".. math::") :].strip()
        if rest:
            body.append(rest)
        i += 1
        while i < len(lines) and (
            not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > len(indent)
        ):
            body.append(lines[i])
            i += 1
        while body and not body[-1].strip():
            body.pop()
        tex = textwrap.dedent("\n".join(body)).strip("\n")
        out.append(f"{indent}$$")
        out.extend(f"{indent}{t}" if t.strip() else "" for t in tex.split("\n"))
        out.append(f"{indent}$$")
        if i < len(lines) and lines[i].strip():
            out.append("")
    return "\n".join(out)


class RstToMarkdown(griffe.Extension):
    """Rewrite reStructuredText roles and directives in dastc docstrings (see module doc)."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        """Rewrite every docstring of the package once it is loaded."""
        self._collection = loader.modules_collection
        self._walk(pkg, set())

    def _walk(self, obj: griffe.Object, seen: set[str]) -> None:
        if obj.path in seen:
            return
        seen.add(obj.path)
        if obj.docstring is not None:
            obj.docstring.value = self._convert(obj.docstring.value, obj)
        if obj.is_attribute:
            self._field_default(obj)  # type: ignore[arg-type]
        for member in obj.members.values():
            if not member.is_alias:
                self._walk(member, seen)  # type: ignore[arg-type]

    @staticmethod
    def _field_default(attr: griffe.Attribute) -> None:
        """``x: T = _knob(default, help)`` -> ``x: T = default``.

        Runs before griffe's dataclasses extension (user extensions come first),
        which then builds the ``__init__`` signature from the rewritten value.
        """
        value = attr.value
        if (
            isinstance(value, griffe.ExprCall)
            and value.canonical_path in _FIELD_HELPERS
            and value.arguments
            and not isinstance(value.arguments[0], griffe.ExprKeyword)
        ):
            attr.value = value.arguments[0]

    def _convert(self, text: str, obj: griffe.Object) -> str:
        text = _EXAMPLE.sub(r"\1Examples:", text)
        text = _math_blocks(text)
        text = _MATH_ROLE.sub(lambda m: f"${m.group(1)}$", text)
        text = _ROLE.sub(lambda m: self._ref(m.group(2) == "~", m.group(3), obj), text)
        return _LITERAL.sub(r"\1:", text)

    @staticmethod
    def _resolve(name: str, obj: griffe.Object) -> str | None:
        """The full dotted path of ``name`` seen from ``obj``, or None if not a dastc name."""
        if name.startswith("dastc.") or name == "dastc":
            return name
        first, _, rest = name.partition(".")
        try:
            path = obj.resolve(first)
        except Exception:  # griffe's NameResolutionError, or a failed alias
            return None
        full = f"{path}.{rest}" if rest else path
        return full if full.startswith("dastc") else None

    def _ref(self, short: bool, name: str, obj: griffe.Object) -> str:
        name = name.strip()
        title = name.rsplit(".", 1)[-1] if short else name
        path = self._resolve(name, obj)
        if path is None:
            return f"`{title}`"
        return f"[`{title}`][{self._documented(path)}]"

    def _documented(self, path: str) -> str:
        """``path`` if the API pages render it, else its closest rendered parent.

        Members without a docstring of their own (NamedTuple fields, attributes
        described in their class's docstring) get no entry of their own, so a
        reference to them links to the class that describes them.
        """
        target = path
        while "." in target:
            try:
                found = self._collection[target]
            except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
                found = None
            if found is not None and (found.is_module or found.docstring):
                return target
            target = target.rsplit(".", 1)[0]
        return path
