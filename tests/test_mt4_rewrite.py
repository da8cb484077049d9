"""The MQL4 -> C++ rewriter of the MT4 stand-in, rule by rule, on small snippets."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from aibridge.mt4.rewrite import RewriteError, dll_namespace, rewrite_source, rewrite_tree

HEAD = '#pragma once\n#include "mt4.hpp"\n#line 1 "<mql>"\n'


def rw(src: str) -> str:
    out = rewrite_source(src)
    assert out.startswith(HEAD), out
    return out[len(HEAD) :]


def test_property_lines_are_blanked_keeping_line_numbers() -> None:
    src = '#property strict\n#property description "a b"\nint x;\n'
    assert rw(src) == "\n\nint x;\n"


def test_inputs_become_overridable_globals() -> None:
    src = (
        'input string InpEndpoint = "tcp://x";  // endpoint\n'
        "sinput int    InpMagic=7;\n"
        "extern double InpRisk = 1.5;\n"
        "input bool InpDry;\n"
    )
    assert rw(src) == (
        'string InpEndpoint = mt4::input<string>("InpEndpoint", string("tcp://x"));  // endpoint\n'
        'int InpMagic = mt4::input<int>("InpMagic", 7);\n'
        'double InpRisk = mt4::input<double>("InpRisk", 1.5);\n'
        'bool InpDry = mt4::input<bool>("InpDry", bool());\n'
    )


def test_dynamic_and_reference_arrays_become_mqlarr_fixed_stay() -> None:
    src = (
        "int g_tickets[];\n"
        "void F(const uchar &bytes[],string &out[],AibCandle &c[]) { uchar b[64]; double d[]; }\n"
    )
    assert rw(src) == (
        "MqlArr<int> g_tickets;\n"
        "void F(const MqlArr<uchar> &bytes,MqlArr<string> &out,MqlArr<AibCandle> &c) "
        "{ uchar b[64]; MqlArr<double> d; }\n"
    )


def test_string_literals_and_macros_concatenate() -> None:
    src = (
        '#define NAME "EA"\n'
        '#include "x.mqh"\n'
        'string s=NAME+" "+"v"; ushort q=\'"\'; string e="a\\"b"; // "not" a literal\n'
        'string joined="a" "b";\n'
    )
    assert rw(src) == (
        '#define NAME string("EA")\n'
        '#include "x.mqh"\n'
        'string s=NAME+string(" ")+string("v"); ushort q=\'"\'; string e=string("a\\"b"); '
        '// "not" a literal\n'
        'string joined=string("ab");\n'
    )


def test_import_block_becomes_a_namespace() -> None:
    src = (
        '#import "libzmq.dll"\n'
        "int zmq_send(int s,const uchar &buf[],uint len,int flags);\n"
        "#import\n"
    )
    assert rw(src) == (
        "namespace mqldll_libzmq {\n"
        "int zmq_send(int s,const MqlArr<uchar> &buf,uint len,int flags);\n"
        "}  using namespace mqldll_libzmq;  // #import\n"
    )
    assert dll_namespace("libzmq.dll") == "mqldll_libzmq"
    assert dll_namespace("kernel32.dll") == "mqldll_kernel32"
    assert dll_namespace("My-Lib.2.DLL") == "mqldll_my_lib_2"


def test_function_used_before_its_definition_gets_a_prototype() -> None:
    src = (
        'void A()\n  {\n   B(1);\n  }\n//+---+\nint B(int x,string s="d")\n  {\n   return x;\n  }\n'
    )
    assert rw(src) == (
        'int B(int x,string s=string("d"));\n'
        '#line 1 "<mql>"\n'
        "void A()\n"
        "  {\n"
        "   B(1);\n"
        "  }\n"
        "//+---+\n"
        "int B(int x,string s)\n"
        "  {\n"
        "   return x;\n"
        "  }\n"
    )


def test_methods_and_calls_on_objects_need_no_prototype() -> None:
    src = (
        "class C { public: int Get() const { return Two(); } int Two() const { return 2; } };\n"
        "int F(C &c) { return c.Get(); }\n"
        "int C2::Open() { return 1; }\n"
    )
    assert rw(src) == src


@pytest.mark.parametrize(
    ("src", "message"),
    [
        ('#import "stdlib.ex4"\nstring ErrorDescription(int e);\n#import\n', "only DLL imports"),
        ('#import "a.dll"\nint f();\n', "not closed"),
        ("double m[][4];\n", "multi-dimensional"),
        ('string s="abc;\n', "unterminated literal"),
        ('input group "x";\n', "MQL5 only"),
        ("void F(){ std::string s; }\n", "std:: .C\\+\\+ library. is C\\+\\+"),
        ("void F(C *p){ p->Go(); }\n", "'->'"),
        ("void F(){ auto x=1; }\n", "auto"),
        ("void F(int a){\n   int &r=a;\n}\n", "reference variables"),
        ("void F(){ try { } catch(...) { } }\n", "exceptions"),
        ("long long x;\n", "long long"),
        ("class C\n  {\n   int m_n=0;\n  };\n", "member initialiser"),
    ],
)
def test_unsupported_constructs_fail_clearly(src: str, message: str) -> None:
    with pytest.raises(RewriteError, match=message):
        rewrite_source(src, "ea.mq4")


def test_cpp_words_in_comments_and_strings_are_fine() -> None:
    src = 'string s="std::x -> auto";  // p->q, nullptr, try\n'
    assert rw(src) == 'string s=string("std::x -> auto");  // p->q, nullptr, try\n'


def test_tree_resolves_includes_once_and_lists_handlers_and_dlls(tmp_path: Path) -> None:
    inc = tmp_path / "Include" / "Lib"
    inc.mkdir(parents=True)
    (inc / "A.mqh").write_text("#include <Lib/B.mqh>\nint A(){ return B(); }\n")
    (inc / "B.mqh").write_text(
        '#import "kernel32.dll"\nint GetTickCount64();\n#import\nint B(){ return 2; }\n'
    )
    ea = tmp_path / "EA.mq4"
    ea.write_text(
        "#include <Lib/A.mqh>\n#include <Lib/B.mqh>\n"
        "int OnInit(){ return A()+B(); }\nvoid OnTick(){}\n"
    )
    tree = rewrite_tree(ea, tmp_path / "Include", tmp_path / "out")
    assert tree.handlers == ("OnInit", "OnTick")
    assert tree.dlls == ("mqldll_kernel32",)
    assert sorted(p.name for p in tree.files.values()) == ["A.mqh", "B.mqh", "EA.cpp"]
    main = tree.main.read_text()
    assert main.startswith('#include "mt4.hpp"\n') and "#pragma once" not in main
    assert "h.OnInit=&OnInit;" in main and "h.OnTimer" not in main
    assert (tree.include_dir / "Lib" / "B.mqh").read_text().startswith("#pragma once\n")
    (inc / "A.mqh").write_text("#include <Lib/Missing.mqh>\n")
    with pytest.raises(RewriteError, match=r"Missing\.mqh"):
        rewrite_tree(ea, tmp_path / "Include", tmp_path / "out2")


def test_structs_passed_by_value_are_refused(tmp_path: Path) -> None:
    (tmp_path / "Include").mkdir()
    ea = tmp_path / "EA.mq4"
    ea.write_text(
        "struct S { int a; };\nint Ok(const S &s,S &t) { return s.a+t.a; }\n"
        "int Bad(int n,S s) { return s.a; }\n"
    )
    with pytest.raises(RewriteError, match=r"EA.mq4:3: parameter s passes S by value"):
        rewrite_tree(ea, tmp_path / "Include", tmp_path / "out")


@pytest.mark.slow  # g++
def test_rewritten_snippet_compiles_and_behaves_like_mql(tmp_path: Path) -> None:
    """The rules together through g++ and the runtime: concatenation, arrays, prototypes."""
    if shutil.which("g++") is None:
        pytest.skip("g++ not installed")
    from aibridge.mt4.build import build_parts

    inc = tmp_path / "Include" / "T"
    inc.mkdir(parents=True)
    (inc / "Snip.mqh").write_text(
        "#property strict\n"
        '#define TAG "snip"\n'
        "int Count(const string &items[]) { return ArraySize(items); }\n"
        "string Run()\n"
        "  {\n"
        "   string items[];\n"
        "   ArrayResize(items,2);\n"
        '   items[0]="a"; items[1]="b";\n'
        '   return TAG+":"+Later(Count(items))+":"+IntegerToString(StringLen("é"));\n'
        "  }\n"
        'string Later(int n) { return "n="+IntegerToString(n)+" "+DoubleToString(1.5,2); }\n'
    )
    driver = tmp_path / "main.cpp"
    driver.write_text(
        "#include <iostream>\n#include <T/Snip.mqh>\n"
        "int main() { std::cout << Run() << std::endl; return 0; }\n"
    )
    exe = build_parts(
        ["T/Snip.mqh"], driver, include_root=tmp_path / "Include", cache=tmp_path / "c"
    )
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    assert out == "snip:n=2 1.50:2\n"  # StringLen counts UTF-8 bytes in the stand-in
