"""The EA's transport (``mt4_ea/Include/AIBridge/Transport.mqh``) on the real libzmq.

Transport.mqh declares the libzmq C functions it calls in an ``#import "libzmq.dll"`` block
(and two kernel32 helpers to copy bytes from a C pointer). Without MetaTrader here, two
things are checked:

* **The declarations match the C API**, for MT4 (32-bit: pointers and size_t are MQL
  ``int``/``uint``) and MT5 (64-bit: ``long``/``ulong``): names, arity, which parameters are
  pointers, integer widths (C ``long`` is 4 bytes on Windows), and the byte layout of the
  two structs passed by reference (``zmq_msg_t``, ``zmq_pollitem_t``), against prototypes
  copied from libzmq 4.3.5's ``include/zmq.h`` (cross-checked against pyzmq's C
  declarations and the symbols pyzmq's libzmq exports) and kernel32's documented ones.
* **The code runs**: Text.mqh + Transport.mqh are rewritten to C++, compiled with
  ``mt4_ea/standin/transport_main.cpp`` and the stand-in DLLs ``dll_libzmq.cpp`` (forwards
  each imported function, with exactly the converted parameter types, to the real libzmq:
  a signature drift is a link error) and ``dll_kernel32.cpp`` (32-bit pointer table,
  bounds-checked copies), then driven against a lossy ROUTER server and the real signal
  server: round trip, lost reply recovery, dead server bounded then recovered, multipart
  reply reset, every socket/context/message closed. Built once per type set (MQL4, MQL5).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
EA_DIR = ROOT / "mt4_ea"
TRANSPORT = EA_DIR / "Include" / "AIBridge" / "Transport.mqh"
TEXT = EA_DIR / "Include" / "AIBridge" / "Text.mqh"
STANDIN = EA_DIR / "standin"
PLATFORMS = ("MQL4", "MQL5")

# --------------------------------------------------------------------------- the C API

# Verbatim from zeromq/libzmq v4.3.5 include/zmq.h (ZMQ_EXPORT dropped), and from the
# Windows SDK documentation of kernel32 (RtlMoveMemory: VOID UNALIGNED *, SIZE_T; lstrlenA:
# LPCSTR), with Windows typedefs spelled as C types.
C_API = {
    "libzmq.dll": [
        "int zmq_errno (void);",
        "const char *zmq_strerror (int errnum_);",
        "void zmq_version (int *major_, int *minor_, int *patch_);",
        "void *zmq_ctx_new (void);",
        "int zmq_ctx_term (void *context_);",
        "void *zmq_socket (void *, int type_);",
        "int zmq_close (void *s_);",
        "int zmq_connect (void *s_, const char *addr_);",
        "int zmq_setsockopt (void *s_, int option_, const void *optval_, size_t optvallen_);",
        "int zmq_send (void *s_, const void *buf_, size_t len_, int flags_);",
        "int zmq_msg_init (zmq_msg_t *msg_);",
        "int zmq_msg_recv (zmq_msg_t *msg_, void *s_, int flags_);",
        "void *zmq_msg_data (zmq_msg_t *msg_);",
        "size_t zmq_msg_size (const zmq_msg_t *msg_);",
        "int zmq_msg_more (const zmq_msg_t *msg_);",
        "int zmq_msg_close (zmq_msg_t *msg_);",
        "int zmq_poll (zmq_pollitem_t *items_, int nitems_, long timeout_);",
    ],
    "kernel32.dll": [
        "void RtlMoveMemory (void *Destination, const void *Source, size_t Length);",
        "int lstrlenA (const char *lpString);",
    ],
}
# Byte sizes of C types in the Windows ABI of each terminal (ILP32 / LLP64).
C_SIZE = {
    "MQL4": {"ptr": 4, "size_t": 4, "int": 4, "long": 4, "short": 2, "char": 1, "void": 0},
    "MQL5": {"ptr": 8, "size_t": 8, "int": 4, "long": 4, "short": 2, "char": 1, "void": 0},
}
# C structs passed by pointer: fields as C types (zmq_fd_t = SOCKET = UINT_PTR on Windows).
C_STRUCTS = {
    "zmq_msg_t": [("_", "char", 64)],
    "zmq_pollitem_t": [
        ("socket", "ptr", 1),
        ("fd", "ptr", 1),
        ("events", "short", 1),
        ("revents", "short", 1),
    ],
}
MQL_SIZE = {
    "char": 1,
    "uchar": 1,
    "bool": 1,
    "short": 2,
    "ushort": 2,
    "int": 4,
    "uint": 4,
    "color": 4,
    "long": 8,
    "ulong": 8,
    "datetime": 8,
    "double": 8,
    "float": 4,
}
MQL_INT_TYPES = {"char", "uchar", "short", "ushort", "int", "uint", "long", "ulong"}


def _c_params(proto: str) -> tuple[str, str, list[tuple[str, str]]]:
    """'int zmq_poll (zmq_pollitem_t *items_, ...)' -> (name, ret kind, [(kind, pointee)])."""
    m = re.match(r"(.+?)\s*\b(\w+)\s*\((.*)\)\s*;?$", " ".join(proto.split()))
    assert m, proto
    head, name, args = m.groups()
    ret = "ptr" if "*" in head else head.replace("const", "").strip()
    params = []
    for arg in [a.strip() for a in args.split(",")]:
        if arg in ("", "void"):
            continue
        if "*" in arg:
            pointee = arg.split("*")[0].replace("const", "").strip()
            params.append(("ptr", pointee))
        else:
            params.append((re.sub(r"\s+\w+_?$", "", arg).replace("const", "").strip(), ""))
    return name, ret, params


def _c_layout(fields: list[tuple[str, str, int]], sizes: dict[str, int]) -> tuple[list[int], int]:
    """Natural C layout (each field aligned to its size): field offsets, struct size."""
    offsets, pos, align = [], 0, 1
    for _, kind, count in fields:
        size = sizes[kind]
        pos = (pos + size - 1) // size * size
        offsets.append(pos)
        pos += size * count
        align = max(align, size)
    return offsets, (pos + align - 1) // align * align


# --------------------------------------------------------------------------- the MQL side


def _strip_comments(src: str) -> str:
    src = re.sub(r"/\*.*?\*/", "", src, flags=re.S)
    return re.sub(r"//[^\n]*", "", src)


def _preprocess(src: str, platform: str) -> str:
    """The MQL preprocessor for what Transport.mqh uses: #ifdef/#else/#endif on
    __MQL4__/__MQL5__ and object-like #defines, substituted."""
    defined = {f"__{platform}__"}
    macros: dict[str, str] = {}
    out, stack = [], [True]
    for line in _strip_comments(src).splitlines():
        s = line.strip()
        if m := re.match(r"#(ifdef|ifndef)\s+(\w+)", s):
            hit = (m.group(2) in defined) == (m.group(1) == "ifdef")
            stack.append(stack[-1] and hit)
            continue
        if s.startswith("#else"):
            stack[-1] = not stack[-1] and stack[-2]
            continue
        if s.startswith("#endif"):
            stack.pop()
            continue
        if not stack[-1]:
            continue
        if m := re.match(r"#define\s+(\w+)\s+(.+)$", s):
            macros[m.group(1)] = m.group(2).strip()
            continue
        for name, value in macros.items():
            line = re.sub(rf"\b{name}\b", value, line)
        out.append(line)
    assert stack == [True], "unbalanced #ifdef"
    return "\n".join(out)


def _mql_structs(src: str) -> dict[str, list[tuple[str, str, int]]]:
    """struct Name {type member; type arr[N];} -> [(member, type, count)]."""
    structs = {}
    for m in re.finditer(r"\bstruct\s+(\w+)\s*\{(.*?)\}\s*;", src, re.S):
        fields = []
        for decl in [d.strip() for d in m.group(2).split(";") if d.strip()]:
            f = re.fullmatch(r"(\w+)\s+(\w+)\s*(?:\[\s*(\d+)\s*\])?", decl)
            assert f, f"struct {m.group(1)}: cannot read member {decl!r}"
            fields.append((f.group(2), f.group(1), int(f.group(3) or 1)))
        structs[m.group(1)] = fields
    return structs


def _mql_imports(src: str) -> dict[str, list[str]]:
    """#import "x.dll" ... #import blocks -> {dll: [declaration, ...]}."""
    blocks = {}
    for m in re.finditer(r'#import\s+"([^"]+)"(.*?)#import\b', src, re.S):
        blocks[m.group(1)] = [" ".join(d.split()) for d in m.group(2).split(";") if d.strip()]
    return blocks


def _mql_params(decl: str) -> tuple[str, str, list[dict[str, Any]]]:
    m = re.fullmatch(r"(\w+)\s+(\w+)\s*\((.*)\)", decl)
    assert m, decl
    ret, name, args = m.groups()
    params = []
    for arg in [a.strip() for a in args.split(",") if a.strip()]:
        p = re.fullmatch(r"(const\s+)?(\w+)\s*(&)?\s*(\w+)\s*(\[\s*\])?", arg)
        assert p, f"{name}: cannot read parameter {arg!r}"
        params.append({"type": p.group(2), "ref": bool(p.group(3)), "array": bool(p.group(5))})
    return name, ret, params


def _mql_size(type_: str, structs: dict[str, list[tuple[str, str, int]]]) -> int:
    if type_ in structs:  # MQL packs structs to 1 byte by default
        return sum(MQL_SIZE[t] * n for _, t, n in structs[type_])
    return MQL_SIZE[type_]


def _struct_mismatches(
    at: str, pointee: str, mql_type: str, structs: dict[str, list[tuple[str, str, int]]], c_size
) -> list[str]:
    """A C struct passed by pointer as an MQL struct by reference: same size, same offsets."""
    if mql_type not in structs:
        return [f"{at}: {pointee}* as {mql_type}&"]
    errors = []
    offs, size = _c_layout(C_STRUCTS[pointee], c_size)
    got_size = _mql_size(mql_type, structs)
    if got_size != size:
        errors.append(f"{at}: {mql_type} is {got_size} bytes, {pointee} {size}")
    mql_offs, pos = [], 0
    for _, t, n in structs[mql_type]:
        mql_offs.append(pos)
        pos += MQL_SIZE[t] * n
    if mql_offs[: len(offs)] != offs:
        errors.append(f"{at}: {mql_type} offsets {mql_offs}, C {offs}")
    return errors


def _param_mismatches(
    at: str, kind: str, pointee: str, p: dict[str, Any], structs, c_size
) -> list[str]:
    """One C parameter (``kind``: a C type, or ``ptr`` to ``pointee``) against its MQL one."""
    if kind != "ptr":
        if p["ref"] or p["array"] or p["type"] not in MQL_INT_TYPES:
            return [f"{at}: C {kind} by value, MQL {p}"]
        if MQL_SIZE[p["type"]] != c_size[kind]:
            return [f"{at}: C {kind} is {c_size[kind]} bytes, MQL {p['type']}"]
        return []
    if not (p["ref"] or p["array"]):  # an address as an integer of pointer size
        if p["type"] not in MQL_INT_TYPES or MQL_SIZE[p["type"]] != c_size["ptr"]:
            return [f"{at}: C pointer, MQL {p['type']} by value"]
        return []
    # passed by reference / as an array: the terminal passes a pointer to it
    if p["array"]:
        if pointee in ("char", "void") and MQL_SIZE.get(p["type"]) != 1:
            return [f"{at}: byte buffer as {p['type']}[]"]
        return []
    if pointee in C_STRUCTS:
        return _struct_mismatches(at, pointee, p["type"], structs, c_size)
    if pointee not in ("void", "char") and _mql_size(p["type"], structs) != c_size[pointee]:
        return [f"{at}: {pointee}* as {p['type']}&"]
    return []


def _import_mismatches(platform: str) -> list[str]:
    src = _preprocess(TRANSPORT.read_text(encoding="utf-8"), platform)
    structs, imports = _mql_structs(src), _mql_imports(src)
    c_size = C_SIZE[platform]
    errors = []
    assert set(imports) == set(C_API), f"#import blocks: {sorted(imports)}"
    for dll, protos in C_API.items():
        want = {n: (r, p) for n, r, p in map(_c_params, protos)}
        got = {n: (r, p) for n, r, p in map(_mql_params, imports[dll])}
        if set(got) != set(want):
            errors.append(f"{dll}: imports {sorted(got)}, expected {sorted(want)}")
            continue
        for name, (c_ret, c_params) in want.items():
            ret, params = got[name]
            where = f"{platform} {dll} {name}"
            if c_ret == "void":
                if ret != "void":
                    errors.append(f"{where}: returns {ret}, C returns void")
            elif ret not in MQL_INT_TYPES or MQL_SIZE[ret] != c_size[c_ret]:
                errors.append(f"{where}: returns {ret}, C returns {c_ret} ({c_size[c_ret]} bytes)")
            if len(params) != len(c_params):
                errors.append(f"{where}: {len(params)} parameters, C has {len(c_params)}")
                continue
            for i, ((kind, pointee), p) in enumerate(zip(c_params, params, strict=True)):
                at = f"{where} parameter {i + 1}"
                errors += _param_mismatches(at, kind, pointee, p, structs, c_size)
    return errors


@pytest.mark.parametrize("platform", PLATFORMS)
def test_import_declarations_match_the_c_api(platform: str) -> None:
    errors = _import_mismatches(platform)
    assert not errors, "\n".join(errors)


def test_the_import_check_catches_drift(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A 64-bit pointer on MT4, a C long as MQL long, a 20-byte MT5 pollitem: all caught."""
    src = TRANSPORT.read_text(encoding="utf-8")
    cases = [
        (src.replace("#define AIB_PTR    int", "#define AIB_PTR    long"), "MQL4", "pointer"),
        (src.replace("int nitems,int timeout)", "int nitems,long timeout)"), "MQL5", "long is 4"),
        (src.replace("   int               padding;\n", ""), "MQL5", "AibZmqPollItem is 20"),
        (
            src.replace(
                "void       zmq_version(int &major,int &minor,int &patch);",
                "void       zmq_version(int &major,int &minor);",
            ),
            "MQL4",
            "2 parameters",
        ),
    ]
    for text, platform, needle in cases:
        assert text != src, needle
        bad = tmp_path / "Transport.mqh"
        bad.write_text(text, encoding="utf-8")
        monkeypatch.setattr(f"{__name__}.TRANSPORT", bad)
        errors = _import_mismatches(platform)
        assert any(needle in e for e in errors), (needle, errors)


# zmq.h 4.3.5's Windows typedefs, verbatim, compiled by a Windows cross compiler.
_WIN_ABI_PROBE = r"""
#include <stddef.h>
#include <winsock2.h>
#if defined _WIN64
typedef unsigned __int64 zmq_fd_t;
#else
typedef unsigned int zmq_fd_t;
#endif
typedef struct zmq_msg_t
{
    unsigned char _[64] __attribute__ ((aligned (sizeof (void *))));
} zmq_msg_t;
typedef struct zmq_pollitem_t
{
    void *socket;
    zmq_fd_t fd;
    short events;
    short revents;
} zmq_pollitem_t;
_Static_assert (sizeof (zmq_fd_t) == sizeof (SOCKET), "zmq_fd_t is SOCKET");
int v_ptr = sizeof (void *), v_size_t = sizeof (size_t), v_long = sizeof (long),
    v_int = sizeof (int), v_short = sizeof (short), v_msg = sizeof (zmq_msg_t),
    v_pollitem = sizeof (zmq_pollitem_t), v_fd = offsetof (zmq_pollitem_t, fd) + 100,
    v_events = offsetof (zmq_pollitem_t, events) + 100,
    v_revents = offsetof (zmq_pollitem_t, revents) + 100;
"""


@pytest.mark.parametrize(
    ("platform", "cc"), [("MQL4", "i686-w64-mingw32-gcc"), ("MQL5", "x86_64-w64-mingw32-gcc")]
)
def test_c_sizes_are_the_windows_abi(platform: str, cc: str, tmp_path: Path) -> None:
    """C_SIZE and the zmq_pollitem_t layout, against a Windows compiler (mingw-w64 when
    installed: terminal.exe is 32-bit Windows, terminal64.exe 64-bit Windows)."""
    if shutil.which(cc) is None:
        pytest.skip(f"{cc} not installed (apt: gcc-mingw-w64-i686 / gcc-mingw-w64-x86-64)")
    (tmp_path / "abi.c").write_text(_WIN_ABI_PROBE, encoding="utf-8")
    res = subprocess.run(
        [cc, "-S", "-O0", "-o", "-", "abi.c"], cwd=tmp_path, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    got = dict(re.findall(r"_?v_(\w+):\s*\n\s*\.long\s+(\d+)", res.stdout))
    got = {k: int(v) - (100 if k in ("fd", "events", "revents") else 0) for k, v in got.items()}
    sizes = C_SIZE[platform]
    for kind in ("ptr", "size_t", "long", "int", "short"):
        assert got[kind] == sizes[kind], (kind, got)
    offsets, size = _c_layout(C_STRUCTS["zmq_pollitem_t"], sizes)
    assert (got["pollitem"], [got["fd"], got["events"], got["revents"]]) == (size, offsets[1:])
    assert got["msg"] == 64


def test_the_c_table_is_the_real_libzmq() -> None:
    """Every imported zmq function is exported by pyzmq's libzmq, and pyzmq's own C
    declarations (zmq/backend/cffi/_cdefs.h) agree on arity and pointer positions."""
    import ctypes

    import zmq

    lib = _libzmq()
    if lib is None:
        pytest.skip("pyzmq's bundled libzmq not found")
    dll = ctypes.CDLL(str(lib))
    cdefs = Path(zmq.__file__).parent / "backend" / "cffi" / "_cdefs.h"
    declared = {}
    if cdefs.is_file():
        for m in re.finditer(r"^[\w\s\*]+?\b(zmq_\w+)\s*\([^;]*\)\s*;", cdefs.read_text(), re.M):
            name, ret, params = _c_params(m.group(0))
            declared[name] = (ret, [k for k, _ in params])
    compared = 0
    for proto in C_API["libzmq.dll"]:
        name, ret, params = _c_params(proto)
        assert hasattr(dll, name), f"{name} is not exported by {lib.name}"
        if name in declared:
            compared += 1
            assert declared[name] == (ret, [k for k, _ in params]), (name, declared[name])
    assert compared >= 10 or not cdefs.is_file(), compared


def test_standin_dll_declares_the_same_c_api_and_structs() -> None:
    """dll_libzmq.cpp's real prototypes are the table above, and its copy of the MQL structs
    is Transport.mqh's, token for token."""
    dll = (STANDIN / "dll_libzmq.cpp").read_text(encoding="utf-8")
    block = dll.split('extern "C" {', 1)[1].split("\n}\n", 1)[0]
    block = re.sub(r"typedef struct.*?\}\s*\w+\s*;", "", block, flags=re.S)
    got = {n: (r, p) for n, r, p in map(_c_params, re.findall(r"[^;]+;", block))}
    want = {n: (r, p) for n, r, p in map(_c_params, C_API["libzmq.dll"])}
    assert got == want
    mqh = _strip_comments(TRANSPORT.read_text(encoding="utf-8"))
    copy = dll.split("// ---- identical to Transport.mqh", 1)[1].split("// ---- end of", 1)[0]
    for name in ("AibZmqMsg", "AibZmqPollItem"):
        pattern = rf"struct\s+{name}\s*\{{.*?\}}\s*;"
        a, b = re.search(pattern, mqh, re.S), re.search(pattern, copy, re.S)
        assert a and b, name
        assert a.group(0).split() == b.group(0).split(), f"{name} differs in dll_libzmq.cpp"


def test_transport_follows_the_lazy_pirate_rules() -> None:
    src = _strip_comments(TRANSPORT.read_text(encoding="utf-8"))
    code = src.split("#import", 1)[0] + src.rsplit("#import", 1)[1]  # outside the blocks
    body = src.rsplit("#import", 1)[1]

    def function(header: str) -> str:
        start = body.index(header)
        depth, i = 0, body.index("{", start)
        for j in range(i, len(body)):
            depth += {"{": 1, "}": -1}.get(body[j], 0)
            if depth == 0:
                return body[i : j + 1]
        raise AssertionError(header)

    # never a blocking recv: every recv is DONTWAIT after a poll bounded by the timeout
    recvs = re.findall(r"zmq_msg_recv\(([^)]*)\)", body)
    assert recvs and all(r.replace(" ", "").endswith(",AIB_ZMQ_DONTWAIT") for r in recvs)
    assert re.search(r"zmq_poll\(\s*item\s*,\s*1\s*,\s*m_timeout_ms\s*\)", body)
    sends = re.findall(r"zmq_send\((.*?)\)\s*!=", body)
    assert sends and all(s.replace(" ", "").endswith(",AIB_ZMQ_DONTWAIT") for s in sends)
    # linger 0 and both timeouts as a second guard, on every new socket
    open_body = function("bool CAibTransport::Open()")
    for opt in (
        "AIB_ZMQ_LINGER,0",
        "AIB_ZMQ_SNDTIMEO,m_timeout_ms",
        "AIB_ZMQ_RCVTIMEO,m_timeout_ms",
    ):
        assert opt in open_body.replace(" ", ""), opt
    # one socket, created only in Open(); one context, created only in Init()
    assert body.count("zmq_socket(") == 1 and "zmq_socket(" in open_body
    assert body.count("zmq_ctx_new(") == 1 and "zmq_ctx_new(" in function(
        "bool CAibTransport::Init("
    )
    # shutdown closes the socket before terminating the context
    shutdown = function("void CAibTransport::Shutdown()")
    assert shutdown.index("Close();") < shutdown.index("zmq_ctx_term(")
    # lazy pirate: a failed attempt closes the socket before the next attempt
    request = function("bool CAibTransport::Request(")
    assert re.search(r"for\s*\(int attempt=1;\s*attempt<=total", request)
    assert request.count("Close();") >= 2 and request.count("m_reopens++") >= 2
    # the public surface the EA uses
    for method in (
        "Init(",
        "Request(",
        "Shutdown()",
        "Version()",
        "LastError()",
        "LastAttempts()",
        "Reopens()",
        "LastRttMs()",
    ):
        assert method in code, method


def test_no_file_under_mt4_ea_uses_the_wrapper() -> None:
    offenders = []
    for path in EA_DIR.rglob("*"):
        if path.is_file() and path.suffix in (".mq4", ".mq5", ".mqh", ".hpp", ".cpp", ".h"):
            text = path.read_text(encoding="utf-8", errors="replace")
            if re.search(r'#include\s*[<"](Zmq|Mql)/', text):
                offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, f"includes mql-zmq: {offenders}"
    for gone in ("mql-zmq-api.txt", "tests/mqlzmq_mock.hpp", "tests/transport_driver.cpp"):
        assert not (EA_DIR / gone).exists(), f"mt4_ea/{gone} belongs to the removed wrapper"


# --------------------------------------------------------------------------- compiled


def _libzmq() -> Path | None:
    """The libzmq shared library bundled with pyzmq (no system package needed)."""
    import zmq

    libs = sorted((Path(zmq.__file__).parent.parent / "pyzmq.libs").glob("libzmq*.so*"))
    return libs[0] if libs else None


def _to_cpp(path: Path) -> str:
    """One MQL file as C++ via the stand-in's rewriter (helper A's; a minimal local
    conversion while it is not there)."""
    try:
        from aibridge.mt4 import rewrite
    except ImportError:
        return _local_rewrite(path.read_text(encoding="utf-8"))
    return rewrite.rewrite_source(path.read_text(encoding="utf-8"), path.name)


def _local_rewrite(src: str) -> str:
    out, ns = ['#pragma once\n#include "mt4.hpp"'], None
    for line in src.splitlines():
        s = line.strip()
        if m := re.match(r'#import\s+"([^"]+)"', s):
            ns = "mqldll_" + re.sub(r"[^a-z0-9]", "_", re.sub(r"\.dll$", "", m.group(1).lower()))
            out.append(f"namespace {ns} {{")
            continue
        if s.startswith("#import") and ns:
            out.append(f"}} using namespace {ns};")
            ns = None
            continue
        if s.startswith("#property"):
            out.append("")
            continue
        line = re.sub(r"\b(const\s+)?(\w+)\s*&\s*(\w+)\s*\[\s*\]", r"\1MqlArr<\2> &\3", line)
        line = re.sub(r"\b(\w+)\s+(\w+)\s*\[\s*\]\s*;", r"MqlArr<\1> \2;", line)
        out.append(line)
    return "\n".join(out) + "\n"


# The few MQL runtime functions Text.mqh and Transport.mqh call. Not the stand-in's mt4.hpp:
# that one is MQL4-only (#error under __MQL5__) and its mt4.cpp brings the terminal's main().
# MqlArr has the stand-in's shape (a `v` container of the elements), which is all the DLLs use.
MINI_RUNTIME = r"""
#pragma once
#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>
typedef std::string string;
typedef unsigned char uchar;
typedef unsigned short ushort;
typedef unsigned int uint;
typedef unsigned long ulong;
#define WHOLE_ARRAY -1
#define CP_ACP 0
#define CP_UTF8 65001
template <class T>
struct MqlArr {
  std::vector<T> v;
  T &operator[](long i) {
    if (i < 0 || i >= (long)v.size()) throw std::out_of_range("MQL array out of range");
    return v[(size_t)i];
  }
  const T &operator[](long i) const { return const_cast<MqlArr *>(this)->operator[](i); }
};
template <class T>
int ArraySize(const MqlArr<T> &a) { return (int)a.v.size(); }
template <class T>
int ArrayResize(MqlArr<T> &a, int n, int reserve = 0) {
  (void)reserve;
  a.v.resize((size_t)n);
  return n;
}
inline int StringLen(const string &s) { return (int)s.size(); }
inline ushort StringGetCharacter(const string &s, int i) {
  return i < 0 || i >= (int)s.size() ? 0 : (ushort)(uchar)s[(size_t)i];
}
inline string StringSubstr(const string &s, int start, int len = -1) {
  if (start >= (int)s.size()) return "";
  return len < 0 ? s.substr((size_t)start) : s.substr((size_t)start, (size_t)len);
}
inline string IntegerToString(long v) { return std::to_string(v); }
// UTF-8 strings here: the conversions copy bytes, like MQL's for ASCII and CP_UTF8
inline int StringToCharArray(const string &s, MqlArr<uchar> &out, int start = 0, int count = -1,
                             uint codepage = CP_ACP) {
  (void)codepage;
  size_t n = count < 0 ? s.size() + 1 : (size_t)count;
  out.v.resize((size_t)start + n);
  for (size_t i = 0; i < n; ++i) out.v[(size_t)start + i] = i < s.size() ? (uchar)s[i] : 0;
  return (int)n;
}
inline string CharArrayToString(const MqlArr<uchar> &a, int start = 0, int count = -1,
                                uint codepage = CP_ACP) {
  (void)codepage;
  string s;
  int end = count < 0 ? (int)a.v.size() : start + count;
  for (int i = start; i < end && i < (int)a.v.size() && a.v[(size_t)i] != 0; ++i)
    s.push_back((char)a.v[(size_t)i]);
  return s;
}
inline bool IsStopped() { return false; }
inline uint GetTickCount() {
  using namespace std::chrono;
  return (uint)duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}
"""


@pytest.fixture(scope="module", params=PLATFORMS)
def transport(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    platform = request.param
    gxx, lib = shutil.which("g++"), _libzmq()
    if gxx is None or lib is None:
        pytest.skip("g++ or pyzmq's bundled libzmq not available")
    work = tmp_path_factory.mktemp(f"transport_{platform}")
    inc = work / "Include" / "AIBridge"
    inc.mkdir(parents=True)
    for path in (TEXT, TRANSPORT):
        (inc / path.name).write_text(_to_cpp(path), encoding="utf-8")
    (work / "transport_gen.hpp").write_text('#include "AIBridge/Transport.mqh"\n', "utf-8")
    (work / "mt4.hpp").write_text(MINI_RUNTIME, encoding="utf-8")
    for name in ("transport_main.cpp", "dll_libzmq.cpp", "dll_kernel32.cpp"):
        shutil.copy(STANDIN / name, work)
    exe = work / "transport_main"
    flags = ["-D__MQL5__"] if platform == "MQL5" else ["-D__MQL4__"]
    cmd = [
        gxx,
        "-std=c++17",
        "-O1",
        "-Wall",
        "-Werror=return-type",
        *flags,
        "-I",
        str(work),
        "-I",
        str(work / "Include"),
        "-o",
        str(exe),
        "transport_main.cpp",
        "dll_libzmq.cpp",
        "dll_kernel32.cpp",
        str(lib),
        f"-Wl,-rpath,{lib.parent}",
        "-lpthread",
    ]
    res = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, f"Transport.mqh ({platform}) does not build:\n{res.stderr[-4000:]}"
    return exe


class _Server:
    """A ROUTER that answers like the signal server, stays silent on chosen requests
    (`drop`, 1-based), or answers with two frames (`multipart`)."""

    def __init__(
        self, endpoint: str, drop: set[int] | None = None, multipart: set[int] | None = None
    ) -> None:
        import zmq

        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.ROUTER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.bind(endpoint)
        self.drop, self.multipart = drop or set(), multipart or set()
        self.seen: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import zmq

        while not self._stop.is_set():
            if not self._sock.poll(20, zmq.POLLIN):
                continue
            ident, empty, body = self._sock.recv_multipart()
            self.seen.append(body)
            n = len(self.seen)
            if n in self.drop:
                continue  # a lost reply: the EA must time out and start over
            reply = json.dumps({"status": "ok", "echo": json.loads(body)["request_id"]}).encode()
            frames = [reply, b"extra"] if n in self.multipart else [reply]
            self._sock.send_multipart([ident, empty, *frames])

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()
        self._ctx.term()


def _free_endpoint() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def _run(exe: Path, endpoint: str, timeout_ms: int, retries: int, lines: list[str]):
    """Requests through the compiled transport -> (header, rows, trailer).

    rows: (status, attempts, reopens, elapsed_ms, reply-or-error) per request;
    header: {"version": ..., "init": ...}; trailer: the @shutdown / end lines."""
    res = subprocess.run(
        [str(exe), endpoint, str(timeout_ms), str(retries)],
        input="".join(f"{line}\n" for line in lines),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, f"transport_main failed ({res.returncode}):\n{res.stderr}"
    return _parse(res.stdout)


def _parse(stdout: str):
    """transport_main's output -> (header, rows, trailer), as ``_run`` returns them."""
    header: dict[str, str] = {}
    rows: list[tuple[str, int, int, int, str]] = []
    other: list[str] = []
    for line in stdout.splitlines():
        fields = line.split("\t", 4)
        if fields[0] in ("ok", "fail"):
            rows.append((fields[0], int(fields[1]), int(fields[2]), int(fields[3]), fields[4]))
        elif fields[0] in ("version", "init") and fields[0] not in header:
            header[fields[0]] = fields[1]
        else:
            other.append(line)
    return header, rows, other


def _req(i: int) -> str:
    return json.dumps({"type": "heartbeat", "request_id": f"hb-{i}"}, separators=(",", ":"))


@pytest.mark.slow  # compiles the transport (g++, per platform)
def test_transport_round_trip_and_lost_reply_recovery(transport: Path) -> None:
    import zmq

    endpoint = _free_endpoint()
    server = _Server(endpoint, drop={2})
    try:
        head, rows, tail = _run(transport, endpoint, 300, 2, [_req(1), _req(2), _req(3)])
    finally:
        server.close()
    assert head == {"version": zmq.zmq_version(), "init": "ok"}
    assert rows[0][:3] == ("ok", 1, 0) and json.loads(rows[0][4])["echo"] == "hb-1"
    # request 2's first reply is lost: timeout, fresh socket, resend, answered
    status, attempts, reopens, elapsed, reply = rows[1]
    assert (status, attempts, reopens) == ("ok", 2, 1)
    # it waited out the 300 ms timeout before resending (a lower bound: load only adds to it;
    # that the wait is bounded is what `attempts` says, not the clock)
    assert json.loads(reply)["echo"] == "hb-2" and elapsed >= 250
    # the reopened socket keeps working (no EFSM)
    assert rows[2][:3] == ("ok", 1, 1) and json.loads(rows[2][4])["echo"] == "hb-3"
    assert [json.loads(b)["request_id"] for b in server.seen] == ["hb-1", "hb-2", "hb-2", "hb-3"]
    assert tail == ["end\tlive=0"], "a socket, context or message was not closed"


@pytest.mark.slow  # compiles the transport (g++, per platform)
def test_transport_dead_server_is_bounded_then_recovers(transport: Path) -> None:
    endpoint = _free_endpoint()
    timeout_ms, retries = 200, 2
    # no server at all: (1 + retries) bounded attempts, each on a new socket, then failure
    _, rows, tail = _run(transport, endpoint, timeout_ms, retries, [_req(1)])
    status, attempts, reopens, elapsed, err = rows[0]
    assert (status, attempts, reopens) == ("fail", 3, 3)
    assert elapsed >= (1 + retries) * timeout_ms - 50  # each attempt waited its timeout out
    assert "no reply within 200 ms (attempt 3/3)" in err
    assert tail == ["end\tlive=0"]
    # server comes up between two requests: the next request succeeds on a fresh socket. The
    # server starts once the first request has reported its failure (read off the pipe), so
    # the order is fixed by events, not by timers.
    proc = subprocess.Popen(
        [str(transport), endpoint, str(timeout_ms), str(retries)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    watchdog = threading.Timer(60, proc.kill)  # a deadline for a hung binary, not a sync
    watchdog.start()
    server: _Server | None = None
    try:
        proc.stdin.write(f"{_req(1)}\n")
        proc.stdin.flush()
        first = [proc.stdout.readline() for _ in range(3)]  # version, init, request 1
        assert first[2].startswith("fail\t"), first
        server = _Server(endpoint)
        out, errors = proc.communicate(f"{_req(2)}\n", timeout=60)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if server is not None:
            server.close()
    assert proc.returncode == 0, f"transport_main failed ({proc.returncode}):\n{errors}"
    _, rows, tail = _parse("".join(first) + out)
    assert rows[0][0] == "fail"
    assert rows[1][0] == "ok" and json.loads(rows[1][4])["echo"] == "hb-2", rows
    assert tail == ["end\tlive=0"]


@pytest.mark.slow  # compiles the transport (g++, per platform)
def test_transport_resets_on_a_multipart_reply(transport: Path) -> None:
    endpoint = _free_endpoint()
    server = _Server(endpoint, multipart={1})
    try:
        _, rows, tail = _run(transport, endpoint, 300, 2, [_req(1), _req(2)])
    finally:
        server.close()
    # no retry: the server did answer; the socket is reset so the next request is clean
    assert rows[0][:3] == ("fail", 1, 1) and rows[0][4] == "unexpected multipart reply"
    assert rows[1][:3] == ("ok", 1, 1) and json.loads(rows[1][4])["echo"] == "hb-2"
    assert len(server.seen) == 2 and tail == ["end\tlive=0"]


@pytest.mark.slow  # compiles the transport (g++, per platform)
def test_transport_errors_and_shutdown(transport: Path) -> None:
    # a malformed endpoint fails in Init with libzmq's own words and errno
    head, rows, tail = _run(transport, "not-an-endpoint", 100, 0, [_req(1)])
    assert head["init"] == "cannot connect to not-an-endpoint: Invalid argument (zmq errno 22)"
    assert rows[0][0] == "fail" and tail == ["end\tlive=0"]
    # after Shutdown nothing is left open, a request fails clearly, Init starts again
    endpoint = _free_endpoint()
    server = _Server(endpoint)
    try:
        _, rows, tail = _run(
            transport, endpoint, 300, 0, [_req(1), "@shutdown", _req(2), "@init", _req(3)]
        )
    finally:
        server.close()
    assert [r[0] for r in rows] == ["ok", "fail", "ok"], rows
    assert rows[1][4] == "transport not initialised (Init not called, or Shutdown done)"
    assert tail == ["shutdown\tlive=0", "init\tok", "end\tlive=0"]


@pytest.mark.slow  # compiles the transport (g++, per platform)
def test_transport_talks_to_the_real_signal_server(transport: Path, tmp_path: Path) -> None:
    from tests.server_fixtures import running_server

    request = json.loads((ROOT / "tests/fixtures/protocol/heartbeat.json").read_text())["request"]
    line = json.dumps(request, separators=(",", ":"))
    with running_server(tmp_path) as (_server, endpoint):
        _, rows, tail = _run(transport, endpoint, 3000, 1, [line, line.replace("hb-1", "hb-2")])
    assert [r[:2] for r in rows] == [("ok", 1), ("ok", 1)], rows
    replies = [json.loads(r[4]) for r in rows]
    assert [r["request_id"] for r in replies] == ["hb-1", "hb-2"]
    assert all(r["type"] == "heartbeat" for r in replies) and tail == ["end\tlive=0"]
