"""MQL4 -> C++ source rewriter for the MT4 stand-in (``mt4_ea/standin``).

Why a rewriter and not a bigger header: a handful of MQL4 constructs are not C++ at all
(``input`` variables, ``T name[]`` dynamic arrays, ``#import`` blocks, string literal
concatenation, calling a function defined further down, include-once). Everything else the EA
writes is already C++ and is compiled as is against ``mt4.hpp``. The rewriter is small and
explicit: one pass that masks comments and literals, a few regex rules applied to the masked
text, and a clear :class:`RewriteError` for what it does not handle.

Rules (each covered by ``tests/test_mt4_rewrite.py``):

* ``#property`` lines are dropped (the line stays, empty, so g++ reports MQL line numbers);
* ``#include <AIBridge/X.mqh>`` / ``"X.mqh"`` are kept and resolved against the include
  root; every rewritten file starts with ``#pragma once`` (MQL includes a file once);
* ``input`` / ``sinput`` / ``extern`` globals become
  ``T Name = mt4::input<T>("Name", default);`` (the run config may override them);
* ``T name[]``, ``T &name[]``, ``const T &name[]`` become ``MqlArr<T>`` (by reference where
  the MQL had ``&``); fixed-size arrays (``uchar b[64]``) stay C++ arrays;
* string literals become ``string("...")`` (so ``"a"+"b"`` and ``MACRO+" "`` work), also in
  ``#define`` bodies; adjacent literals are merged first;
* ``#import "x.dll" ... #import`` becomes ``namespace mqldll_x { ... } using namespace
  mqldll_x;`` (name: lower case, non-alphanumerics -> ``_``, without ``.dll``);
* a top-level function called before its definition gets a prototype just before the
  top-level item that first calls it (default arguments move to the prototype).

>>> print(rewrite_source('input int N = 3;  // n'))
#pragma once
#include "mt4.hpp"
#line 1 "<mql>"
int N = mt4::input<int>("N", 3);  // n
>>> rewrite_source('void f(int &a[]) { Print("x"); }').splitlines()[-1]
'void f(MqlArr<int> &a) { Print(string("x")); }'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["RewriteError", "Rewritten", "dll_namespace", "rewrite_source", "rewrite_tree"]


class RewriteError(ValueError):
    """An MQL construct the rewriter does not handle (message names file and line)."""


_IDENT = r"[A-Za-z_]\w*"
_KEYWORDS = {
    "if",
    "else",
    "while",
    "for",
    "do",
    "switch",
    "case",
    "return",
    "new",
    "delete",
    "class",
    "struct",
    "enum",
    "sizeof",
    "operator",
    "template",
    "typename",
    "const",
    "static",
    "virtual",
    "public",
    "private",
    "protected",
    "default",
    "break",
    "continue",
    "input",
    "sinput",
    "extern",
}


def dll_namespace(dll: str) -> str:
    """C++ namespace of an ``#import "x.dll"`` block.

    >>> dll_namespace("libzmq.dll"), dll_namespace("Kernel32.DLL"), dll_namespace("my-lib.dll")
    ('mqldll_libzmq', 'mqldll_kernel32', 'mqldll_my_lib')
    """
    name = Path(dll.replace("\\", "/")).name.lower()
    if name.endswith(".dll"):
        name = name[:-4]
    return "mqldll_" + re.sub(r"[^a-z0-9]", "_", name)


# --------------------------------------------------------------------------- masking


def _mask(src: str, where: str) -> str:
    """Same length as ``src``: comments -> spaces (newlines kept), literal contents -> 'x'.

    Quotes of string and char literals stay, so rules can find literals by position.
    """
    out = list(src)
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if c == '"' or c == "'":
            j = i + 1
            while j < n and src[j] != c:
                if src[j] == "\n":
                    raise RewriteError(
                        f"{where}:{src.count(chr(10), 0, i) + 1}: unterminated literal"
                    )
                j += 2 if src[j] == "\\" else 1
            if j >= n:
                raise RewriteError(f"{where}:{src.count(chr(10), 0, i) + 1}: unterminated literal")
            for k in range(i + 1, j):
                out[k] = "x"
            i = j + 1
        elif src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            for k in range(i, j):
                out[k] = " "
            i = j
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            if j < 0:
                raise RewriteError(f"{where}:{src.count(chr(10), 0, i) + 1}: unterminated comment")
            for k in range(i, j + 2):
                if out[k] != "\n":
                    out[k] = " "
            i = j + 2
        else:
            i += 1
    return "".join(out)


@dataclass
class _Edits:
    """Replacements on the original text, by (start, end) in the masked text's coordinates."""

    items: list[tuple[int, int, str]] = field(default_factory=list)

    def add(self, start: int, end: int, text: str) -> None:
        self.items.append((start, end, text))

    def apply(self, src: str) -> str:
        out = src
        last = len(src) + 1
        for start, end, text in sorted(self.items, key=lambda e: (e[0], e[1]), reverse=True):
            if end > last:
                raise AssertionError("overlapping rewrite edits")
            out = out[:start] + text + out[end:]
            last = start
        return out


def _line_of(src: str, pos: int) -> int:
    return src.count("\n", 0, pos) + 1


def _directive_spans(masked: str) -> list[tuple[int, int]]:
    """(start, end) of each preprocessor directive (with backslash continuations)."""
    spans = []
    for m in re.finditer(r"(?m)^[ \t]*#", masked):
        end = m.start()
        while True:
            nl = masked.find("\n", end)
            if nl < 0:
                end = len(masked)
                break
            if masked[:nl].rstrip(" \t\r").endswith("\\"):
                end = nl + 1
                continue
            end = nl
            break
        spans.append((m.start(), end))
    return spans


def _in_spans(pos: int, spans: list[tuple[int, int]]) -> bool:
    return any(s <= pos < e for s, e in spans)


# --------------------------------------------------------------------------- rules

# C++ that g++ would accept but MetaEditor rejects: refused, so "compiles in the stand-in"
# does not quietly admit code the terminal cannot build.
_CPP_ONLY = [
    (r"\bstd::", "std:: (C++ library)"),
    (r"\bnullptr\b", "nullptr (MQL uses NULL)"),
    (r"\bauto\b", "auto"),
    (r"->", "'->' (MQL uses '.' on object pointers)"),
    (r"\b(?:static|dynamic|reinterpret|const)_cast\b", "C++ casts"),
    (r"\b(?:constexpr|decltype|noexcept|mutable|thread_local)\b", "C++ keywords"),
    (r"\b(?:throw|try|catch)\b", "exceptions"),
    (r"\bnamespace\b|\busing\s+namespace\b", "namespaces"),
    (r"\benum\s+class\b", "enum class"),
    (r"\blong\s+long\b", "long long (MQL long is 64-bit)"),
    (r"\[\s*[&=]\s*\]", "lambdas"),
    (
        r"(?m)^[ \t]*(?:const\s+)?\w+\s*&\s*\w+\s*=",
        "reference variables (MQL has reference parameters only)",
    ),
]


def _mql_only(masked: str, spans: list[tuple[int, int]], where: str) -> None:
    for pattern, what in _CPP_ONLY:
        for m in re.finditer(pattern, masked):
            if not _in_spans(m.start(), spans):
                raise RewriteError(
                    f"{where}:{_line_of(masked, m.start())}: {what} is C++, not MQL4 "
                    "(MetaEditor would reject it)"
                )
    # member initialisers in a class/struct body (`int m_n=0;`): MQL initialises in constructors
    depths = _depths(masked, spans)
    for m in re.finditer(rf"\b(?:class|struct)\s+{_IDENT}[^;{{]*\{{", masked):
        body_depth = depths[m.end() - 1] + 1
        k = m.end()
        while k < len(masked) and depths[k] >= body_depth:
            if masked[k] == "\n" and depths[k + 1] == body_depth:
                line = masked[k + 1 : masked.find("\n", k + 1)]
                if re.match(rf"\s*(?:static\s+)?(?:const\s+)?{_IDENT}\s+{_IDENT}\s*=", line):
                    raise RewriteError(
                        f"{where}:{_line_of(masked, k + 1)}: a member initialiser in a class "
                        "body is C++, not MQL4 (initialise it in the constructor)"
                    )
            k += 1


def _string_literals(src: str, masked: str, spans: list[tuple[int, int]], edits: _Edits) -> None:
    """ "..." -> string("...") outside directives (except #define bodies); merge adjacent."""
    define_spans = [(s, e) for s, e in spans if re.match(r"[ \t]*#[ \t]*define\b", masked[s:e])]
    skip = [(s, e) for s, e in spans if (s, e) not in define_spans]
    i = 0
    while True:
        i = masked.find('"', i)
        if i < 0:
            return
        j = masked.find('"', i + 1)
        if _in_spans(i, skip):
            i = j + 1
            continue
        # a run of adjacent literals separated by whitespace only
        parts = [src[i + 1 : j]]
        end = j + 1
        while True:
            m = re.match(r'\s*"', masked[end:])
            if not m:
                break
            k = end + m.end() - 1
            k2 = masked.find('"', k + 1)
            parts.append(src[k + 1 : k2])
            end = k2 + 1
        text = "".join(parts)
        edits.add(i, end, f'string("{text}")')
        i = end


_ARRAY_DECL = re.compile(
    rf"\b(?P<const>const\s+)?(?P<type>{_IDENT})(?P<ws>\s*)(?P<ref>&\s*)?(?P<name>{_IDENT})\s*\[\s*\]"
)
_MULTI_DIM = re.compile(rf"\b{_IDENT}\s*&?\s*{_IDENT}\s*\[[^\]]*\]\s*\[")


def _arrays(masked: str, where: str, region: tuple[int, int], edits: _Edits) -> None:
    start, end = region
    text = masked[start:end]
    for m in _MULTI_DIM.finditer(text):
        raise RewriteError(
            f"{where}:{_line_of(masked, start + m.start())}: multi-dimensional arrays are not "
            "supported by the stand-in"
        )
    for m in _ARRAY_DECL.finditer(text):
        typ = m.group("type")
        if typ in _KEYWORDS:
            continue
        const = m.group("const") or ""
        ref = "&" if m.group("ref") else ""
        repl = f"{const}MqlArr<{typ}> {ref}{m.group('name')}"
        edits.add(start + m.start(), start + m.end(), repl)


_INPUT = re.compile(
    rf"(?m)^(?P<indent>[ \t]*)(?P<kw>input|sinput|extern)\s+(?P<const>const\s+)?"
    rf"(?P<type>{_IDENT})\s+(?P<name>{_IDENT})\s*(?:=\s*(?P<value>[^;]*?))?\s*;"
)


def _inputs(src: str, masked: str, where: str, edits: _Edits) -> None:
    group = re.search(r"(?m)^[ \t]*s?input\s+group\b", masked)
    if group:
        raise RewriteError(f"{where}:{_line_of(masked, group.start())}: `input group` is MQL5 only")
    for m in _INPUT.finditer(masked):
        value = src[m.start("value") : m.end("value")] if m.group("value") is not None else None
        typ, name = m.group("type"), m.group("name")
        if value is None:
            value = f"{typ}()"
        # the value's own literals are rewritten by the literal rule: only replace the head
        head_end = m.start("value") if m.group("value") is not None else m.end() - 1
        edits.add(
            m.start("kw"),
            head_end,
            f'{typ} {name} = mt4::input<{typ}>("{name}", ',
        )
        edits.add(m.end() - 1, m.end() - 1, ")" if m.group("value") is not None else value + ")")


_IMPORT = re.compile(r'(?m)^[ \t]*#[ \t]*import\b[ \t]*(?:"(?P<name>[^"]*)")?[^\n]*$')


def _imports(src: str, masked: str, where: str, edits: _Edits) -> None:
    """#import "x.dll" ... #import -> namespace block."""
    opened: tuple[int, int, str] | None = None
    for m in _IMPORT.finditer(masked):
        name = src[m.start("name") : m.end("name")] if m.group("name") is not None else None
        if opened is None:
            if not name:
                raise RewriteError(f"{where}:{_line_of(masked, m.start())}: #import without a file")
            if not name.lower().endswith(".dll"):
                raise RewriteError(
                    f'{where}:{_line_of(masked, m.start())}: #import "{name}": only DLL '
                    "imports are supported by the stand-in"
                )
            opened = (m.start(), m.end(), dll_namespace(name))
            continue
        if name:
            raise RewriteError(
                f'{where}:{_line_of(masked, m.start())}: nested #import "{name}" (close the '
                "previous block with a bare #import)"
            )
        ns = opened[2]
        edits.add(opened[0], opened[1], f"namespace {ns} {{")
        edits.add(m.start(), m.end(), f"}}  using namespace {ns};  // #import")
        opened = None
    if opened is not None:
        raise RewriteError(f"{where}:{_line_of(masked, opened[0])}: #import block is not closed")


_INCLUDE = re.compile(r'(?m)^[ \t]*#[ \t]*include[ \t]*(?:<(?P<sys>[^>]+)>|"(?P<loc>[^"]+)")')


def _includes(src: str, masked: str) -> list[tuple[str, bool]]:
    out = []
    for m in _INCLUDE.finditer(masked):
        if m.group("sys") is not None:
            out.append((src[m.start("sys") : m.end("sys")], True))
        else:
            out.append((src[m.start("loc") : m.end("loc")], False))
    return out


def _depths(masked: str, spans: list[tuple[int, int]]) -> list[int]:
    """Brace depth before each character (directives ignored)."""
    depth = 0
    out = [0] * (len(masked) + 1)
    skip = sorted(spans)
    si = 0
    i = 0
    n = len(masked)
    while i < n:
        if si < len(skip) and i == skip[si][0]:
            for k in range(skip[si][0], skip[si][1]):
                out[k] = depth
            i = skip[si][1]
            si += 1
            continue
        out[i] = depth
        c = masked[i]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        i += 1
    out[n] = depth
    return out


_FUNC_HEAD = re.compile(
    rf"(?m)^[ \t]*(?P<ret>(?:(?:static|const|virtual)\s+)*{_IDENT}(?:\s*[*&])?)\s+"
    rf"(?P<ref>[*&]\s*)?(?P<name>{_IDENT})\s*\("
)


def _match_paren(masked: str, open_pos: int) -> int:
    depth = 0
    for k in range(open_pos, len(masked)):
        if masked[k] == "(":
            depth += 1
        elif masked[k] == ")":
            depth -= 1
            if depth == 0:
                return k
    return -1


def _split_params(text: str) -> list[tuple[int, int]]:
    """(start, end) of each top-level comma-separated parameter of ``text``."""
    out, depth, start = [], 0, 0
    for k, c in enumerate(text):
        if c in "(<[":
            depth += 1
        elif c in ")>]":
            depth -= 1
        elif c == "," and depth == 0:
            out.append((start, k))
            start = k + 1
    if text.strip():
        out.append((start, len(text)))
    return out


def _item_start(masked: str, depths: list[int], pos: int) -> int:
    """Line start of the top-level item containing ``pos``."""
    k = pos
    while k > 0:
        c = masked[k - 1]
        if depths[k - 1] == 0 and c in ";}":
            break
        if c == "}" and depths[k - 1] == 1:
            break
        k -= 1
    # skip whitespace/blank lines to the item's first line
    while k < len(masked) and masked[k] in " \t\r\n":
        k += 1
    return masked.rfind("\n", 0, k) + 1


def _prototypes(src: str, path_label: str) -> str:
    """Second pass (on the already rewritten text): prototypes for functions used early."""
    masked = _mask(src, path_label)
    spans = _directive_spans(masked)
    depths = _depths(masked, spans)
    edits = _Edits()
    protos: dict[int, list[str]] = {}
    for m in _FUNC_HEAD.finditer(masked):
        if depths[m.start()] != 0 or _in_spans(m.start(), spans):
            continue
        ret = m.group("ret").split()[-1].rstrip("*&")
        if m.group("name") in _KEYWORDS or ret in ("return", "else", "new", "delete", "case"):
            continue
        close = _match_paren(masked, m.end() - 1)
        if close < 0 or not masked[close + 1 :].lstrip().startswith("{"):
            continue  # a declaration or a call, not a definition
        if masked[: m.start()].rstrip().rsplit("\n", 1)[-1].strip().startswith("template"):
            continue
        name = m.group("name")
        first_use = None
        for u in re.finditer(rf"(?<![\w.:>]){name}\s*\(", masked[: m.start()]):
            if not _in_spans(u.start(), spans):
                first_use = u.start()
                break
        if first_use is None:
            continue
        pmask = masked[m.end() : close]
        for s, e in _split_params(pmask):
            eq = pmask.find("=", s, e)
            if eq >= 0:  # default arguments belong to the prototype only
                edits.add(m.end() + eq, m.end() + e, "")
        head = src[m.start() : m.end()].strip()
        proto = f"{head}{src[m.end() : close]});"
        protos.setdefault(_item_start(masked, depths, first_use), []).append(proto)
    for at, lines in protos.items():
        block = "\n".join(lines)
        edits.add(at, at, f'{block}\n#line {_line_of(masked, at)} "{path_label}"\n')
    return edits.apply(src)


def _objects_by_reference(masked_texts: dict[Path, str]) -> None:
    """MQL passes structs and class objects by reference only; g++ would copy them."""
    types = set()
    for masked in masked_texts.values():
        types |= set(re.findall(rf"\b(?:struct|class)\s+({_IDENT})", masked))
    if not types:
        return
    names = "|".join(sorted(types))
    by_value = re.compile(rf"[(,]\s*(?:const\s+)?({names})\s+({_IDENT})\s*(?:=[^,()]*)?(?=[,)])")
    for path, masked in masked_texts.items():
        for m in by_value.finditer(masked):
            raise RewriteError(
                f"{path.name}:{_line_of(masked, m.start())}: parameter {m.group(2)} passes "
                f"{m.group(1)} by value; MQL passes structs and objects by reference only "
                f"({m.group(1)} &{m.group(2)})"
            )


# --------------------------------------------------------------------------- entry points


def rewrite_source(src: str, path_label: str = "<mql>", *, main: bool = False) -> str:
    """Rewrite one MQL4 source text to C++ (see the module docstring for the rules)."""
    src = src.replace("\r\n", "\n")
    masked = _mask(src, path_label)
    spans = _directive_spans(masked)
    _mql_only(masked, spans, path_label)
    edits = _Edits()
    for s, e in spans:
        if re.match(r"[ \t]*#[ \t]*property\b", masked[s:e]):
            edits.add(s, e, "")
    _imports(src, masked, path_label, edits)
    _string_literals(src, masked, spans, edits)
    cursor = 0
    for s, e in [*sorted(spans), (len(masked), len(masked))]:
        _arrays(masked, path_label, (cursor, s), edits)
        cursor = e
    _inputs(src, masked, path_label, edits)
    body = _prototypes(edits.apply(src), path_label)
    head = "" if main else "#pragma once\n"
    return f'{head}#include "mt4.hpp"\n#line 1 "{path_label}"\n{body}'


@dataclass(frozen=True)
class Rewritten:
    """Where the rewritten tree is: the main .cpp, the include root for -I, every file."""

    main: Path
    include_dir: Path
    files: dict[Path, Path]  # MQL source -> rewritten file
    handlers: tuple[str, ...]  # event handlers the EA defines (OnInit, OnTick, ...)
    dlls: tuple[str, ...]  # DLLs #imported (their C++ namespaces, e.g. mqldll_libzmq)


_HANDLERS = ("OnInit", "OnDeinit", "OnTick", "OnTimer")


def rewrite_tree(
    main_source: Path,
    include_root: Path,
    out_dir: Path,
    overrides: dict[str, Path] | None = None,
) -> Rewritten:
    """Rewrite ``main_source`` (.mq4) and every .mqh it includes into ``out_dir``.

    ``<X/Y.mqh>`` resolves against ``include_root`` (MQL4/Include), ``"Y.mqh"`` against the
    including file's folder. ``overrides`` maps an include name (``"AIBridge/Transport.mqh"``)
    to another source file (tests swap one piece). The main file becomes ``<stem>.cpp`` and
    ends with ``mt4::EaHandlers mt4_ea_handlers()`` listing the handlers it defines.
    """
    overrides = overrides or {}
    out_inc = out_dir / "Include"
    files: dict[Path, Path] = {}
    todo: list[tuple[Path, Path, str]] = [
        (main_source, out_dir / (main_source.stem + ".cpp"), main_source.name)
    ]
    main_src_text = ""
    dlls: set[str] = set()
    masked_texts: dict[Path, str] = {}
    while todo:
        source, target, label = todo.pop()
        if source in files:
            continue
        if not source.is_file():
            raise RewriteError(f"{label}: include file {source} not found")
        text = source.read_text(encoding="utf-8")
        cpp = rewrite_source(text, label, main=source == main_source)
        masked = _mask(text.replace("\r\n", "\n"), label)
        for m in _IMPORT.finditer(masked):
            if m.group("name") is not None:
                dlls.add(dll_namespace(text.replace("\r\n", "\n")[m.start("name") : m.end("name")]))
        for inc, angled in _includes(text.replace("\r\n", "\n"), masked):
            if inc in overrides:
                inc_src = overrides[inc]
            elif angled:
                inc_src = include_root / inc
            else:
                inc_src = source.parent / inc
            if not inc_src.is_file():
                raise RewriteError(f"{label}: #include {inc}: {inc_src} not found")
            if angled:
                inc_target = out_inc / inc
            else:
                rel = target.parent / inc
                inc_target = rel
            todo.append((inc_src, inc_target, inc))
        target.parent.mkdir(parents=True, exist_ok=True)
        if source == main_source:
            main_src_text = text
        target.write_text(cpp, encoding="utf-8")
        files[source] = target
        masked_texts[source] = masked
    _objects_by_reference(masked_texts)
    defined = tuple(
        h for h in _HANDLERS if re.search(rf"(?m)^\s*\w+\s+{h}\s*\(", _mask(main_src_text, ""))
    )
    main_cpp = files[main_source]
    reg = ["", "mt4::EaHandlers mt4_ea_handlers()", "  {", "   mt4::EaHandlers h;"]
    for h in defined:
        reg.append(f"   h.{h}=&{h};")
    reg += ["   return h;", "  }", ""]
    with main_cpp.open("a", encoding="utf-8") as fh:
        fh.write("\n".join(reg))
    return Rewritten(
        main=main_cpp, include_dir=out_inc, files=files, handlers=defined, dlls=tuple(sorted(dlls))
    )
