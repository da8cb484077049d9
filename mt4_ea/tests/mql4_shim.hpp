// mql4_shim.hpp -- just enough of the MQL4 runtime, in C++, to compile and run the EA's
// pure includes (Json.mqh, Risk.mqh, Journal's CSV helpers) on a machine without MetaEditor.
//
// Used only by tests/test_ea_sources.py, which first rewrites MQL4 dynamic-array syntax
// (`T name[]` / `T &name[]`) into `MqlArr<T>` and strips `#property` lines. Semantics follow
// the MQL4 reference for the functions used: strings are handled as UTF-8 std::string here,
// which matches MQL's UTF-16 behaviour for the ASCII text the protocol carries.
#pragma once
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <deque>

typedef std::string string;
typedef unsigned short ushort;
typedef unsigned char uchar;
typedef unsigned int uint;
typedef unsigned long ulong;
typedef long datetime;

#define WHOLE_ARRAY -1
#define EMPTY_VALUE 2147483647

template <class T>
struct MqlArr {
  std::deque<T> v;  // deque: no vector<bool> proxy surprises
  T &operator[](int i) {
    if (i < 0 || i >= (int)v.size()) throw std::out_of_range("MQL array out of range");
    return v[(size_t)i];
  }
  const T &operator[](int i) const {
    if (i < 0 || i >= (int)v.size()) throw std::out_of_range("MQL array out of range");
    return v[(size_t)i];
  }
};
template <class T>
int ArraySize(const MqlArr<T> &a) { return (int)a.v.size(); }
template <class T>
int ArrayResize(MqlArr<T> &a, int n, int reserve = 0) {
  (void)reserve;
  a.v.resize((size_t)n);
  return n;
}
template <class T>
void ArrayFree(MqlArr<T> &a) { a.v.clear(); }

inline int StringLen(const string &s) { return (int)s.size(); }
inline ushort StringGetCharacter(const string &s, int i) {
  if (i < 0 || i >= (int)s.size()) return 0;
  return (ushort)(unsigned char)s[(size_t)i];
}
inline string StringSubstr(const string &s, int start, int len = -1) {
  // MQL4 builds disagree on length 0 (older ones return the rest of the string): the EA
  // must never pass it, so the shim makes it a hard failure.
  if (len == 0) throw std::logic_error("StringSubstr with length 0");
  if (start < 0) start = 0;
  if (start >= (int)s.size()) return "";
  if (len < 0) return s.substr((size_t)start);
  return s.substr((size_t)start, (size_t)len);
}
inline int StringFind(const string &s, const string &f, int start = 0) {
  size_t p = s.find(f, (size_t)start);
  return p == string::npos ? -1 : (int)p;
}
inline string ShortToString(ushort c) { return string(1, (char)c); }
inline double StringToDouble(const string &s) { return std::strtod(s.c_str(), nullptr); }
inline long StringToInteger(const string &s) { return std::strtol(s.c_str(), nullptr, 10); }
inline string IntegerToString(long v) { return std::to_string(v); }
inline string DoubleToString(double v, int digits = 8) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}
inline bool MathIsValidNumber(double v) { return std::isfinite(v); }
inline double MathPow(double b, double e) { return std::pow(b, e); }
inline double MathAbs(double v) { return std::fabs(v); }
inline double MathFloor(double v) { return std::floor(v); }
inline double MathCeil(double v) { return std::ceil(v); }
inline double MathRound(double v) { return std::round(v); }  // half away from zero, as MQL
inline double MathMax(double a, double b) { return a > b ? a : b; }
inline double MathMin(double a, double b) { return a < b ? a : b; }
inline double MathLog10(double v) { return std::log10(v); }
inline double NormalizeDouble(double v, int digits) {
  double f = std::pow(10.0, digits);
  return std::round(v * f) / f;
}

#define CP_ACP 0
#define CP_UTF8 65001
// Byte strings stand in for UTF-16 here; the conversions copy bytes (the protocol is ASCII).
inline int StringToCharArray(const string &s, MqlArr<uchar> &out, int start = 0, int count = -1,
                             uint codepage = CP_ACP) {
  (void)codepage;
  size_t n = count < 0 ? s.size() + 1 : (size_t)count;  // -1: whole string + terminating 0
  out.v.resize((size_t)start + n);
  for (size_t i = 0; i < n; ++i) out.v[(size_t)start + i] = i < s.size() ? (uchar)s[i] : 0;
  return (int)n;
}
inline string CharArrayToString(const MqlArr<uchar> &a, int start = 0, int count = -1,
                                uint codepage = CP_ACP) {
  (void)codepage;
  string s;
  int end = count < 0 ? (int)a.v.size() : start + count;
  for (int i = start; i < end && i < (int)a.v.size(); ++i) {
    if (a.v[(size_t)i] == 0) break;
    s.push_back((char)a.v[(size_t)i]);
  }
  return s;
}
