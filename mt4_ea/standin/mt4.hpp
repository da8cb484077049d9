// mt4.hpp -- the MQL4 runtime, in C++, for the MT4 stand-in.
//
// src/aibridge/mt4/rewrite.py turns the EA's MQL4 sources into C++ that includes this header;
// mt4.cpp implements the terminal (bars, ticks, orders, account, files, global variables) and
// main(). Semantics follow the MQL4 reference; where the stand-in differs it says so here:
//  * string is UTF-8 (std::string): StringLen/StringGetCharacter/StringSubstr count BYTES, not
//    UTF-16 code units (identical for the ASCII the protocol carries); ShortToString produces
//    UTF-8; StringToCharArray/CharArrayToString convert for CP_UTF8 and CP_ACP (non-ASCII -> '?');
//  * StringSubstr(s, i, 0) is a hard failure (MQL builds disagree on its result);
//  * datetime is a long (Print shows the number, not a date);
//  * only market orders (OP_BUY / OP_SELL) on the chart symbol;
//  * C++ leaves the evaluation order of function arguments and of a+b unspecified (g++ often
//    goes right to left): an MQL expression with two side effects (f()+g(), h(f(),g())) may
//    run them in another order than MetaEditor's code;
//  * no object pointers with '.', no multi-dimensional arrays, no pending orders, one chart.
// See README.md in this folder for the tick model, the run config and the fault keys.
#pragma once

#ifndef __MQL4__
#define __MQL4__ 1
#endif
#ifdef __MQL5__
#error "the MT4 stand-in compiles MQL4 only"
#endif

#include <cfloat>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

typedef std::string string;
typedef unsigned char uchar;
typedef unsigned short ushort;
typedef unsigned int uint;
typedef unsigned long ulong;
typedef long datetime;
typedef unsigned int color;

// --------------------------------------------------------------------------- errors
namespace mt4 {
// An MQL "critical runtime error": MT4 stops the EA. main() reports it and exits non-zero.
struct CriticalError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
[[noreturn]] void critical(const std::string &what);
void set_error(int code);
}  // namespace mt4

// --------------------------------------------------------------------------- arrays
namespace mt4 {
template <class T>
struct Cell {
  typedef T type;
};
struct BoolBox {
  bool b;
};
template <>
struct Cell<bool> {
  typedef BoolBox type;
};
}  // namespace mt4

// MQL dynamic array (T name[]): bounds-checked, resizable, optionally indexed as a series.
template <class T>
struct MqlArr {
  std::vector<typename mt4::Cell<T>::type> v;
  bool series = false;
  MqlArr() = default;
  MqlArr(std::initializer_list<T> init) {
    for (const T &x : init) {
      v.emplace_back();
      at_raw(v.size() - 1) = x;
    }
  }
  T &at_raw(size_t i) { return reinterpret_cast<T &>(v[i]); }
  const T &at_raw(size_t i) const { return reinterpret_cast<const T &>(v[i]); }
  T &operator[](long i) {
    if (i < 0 || i >= (long)v.size())
      mt4::critical("array out of range (index " + std::to_string(i) + ", size " +
                    std::to_string(v.size()) + ")");
    return at_raw(series ? v.size() - 1 - (size_t)i : (size_t)i);
  }
  const T &operator[](long i) const { return const_cast<MqlArr *>(this)->operator[](i); }
  T *data() { return v.empty() ? nullptr : &at_raw(0); }
  const T *data() const { return v.empty() ? nullptr : &at_raw(0); }
  int size() const { return (int)v.size(); }
};
template <class T>
int ArraySize(const MqlArr<T> &a) { return (int)a.v.size(); }
template <class T, size_t N>
int ArraySize(const T (&)[N]) { return (int)N; }
template <class T>
int ArrayResize(MqlArr<T> &a, int n, int reserve = 0) {
  if (n < 0) return -1;
  if (reserve > 0) a.v.reserve((size_t)n + (size_t)reserve);
  a.v.resize((size_t)n);
  return n;
}
template <class T>
void ArrayFree(MqlArr<T> &a) { a.v.clear(); }
template <class T>
bool ArrayIsDynamic(const MqlArr<T> &) { return true; }
template <class T>
bool ArraySetAsSeries(MqlArr<T> &a, bool flag) { a.series = flag; return true; }
template <class T>
bool ArrayGetAsSeries(const MqlArr<T> &a) { return a.series; }
template <class T>
bool ArraySort(MqlArr<T> &a) {  // ascending (MODE_ASCEND), the only order MQL4's ArraySort has
  std::vector<T> tmp;
  for (int i = 0; i < ArraySize(a); i++) tmp.push_back(a[i]);
  for (size_t i = 1; i < tmp.size(); i++)
    for (size_t j = i; j > 0 && tmp[j] < tmp[j - 1]; j--) std::swap(tmp[j], tmp[j - 1]);
  for (int i = 0; i < ArraySize(a); i++) a[i] = tmp[(size_t)i];
  return true;
}
template <class T, class V>
void ArrayInitialize(MqlArr<T> &a, V value) {
  for (int i = 0; i < ArraySize(a); i++) a[i] = (T)value;
}
template <class T, size_t N, class V>
void ArrayInitialize(T (&a)[N], V value) {
  for (size_t i = 0; i < N; i++) a[i] = (T)value;
}
template <class T, class V>
void ArrayFill(MqlArr<T> &a, int start, int count, V value) {
  if (start + count > ArraySize(a)) ArrayResize(a, start + count);
  for (int i = start; i < start + count; i++) a[i] = (T)value;
}
template <class T>
int ArrayCopy(MqlArr<T> &dst, const MqlArr<T> &src, int dst_start = 0, int src_start = 0,
              int count = -1) {
  int n = ArraySize(src) - src_start;
  if (count >= 0 && count < n) n = count;
  if (n <= 0) return 0;
  if (dst_start + n > ArraySize(dst)) ArrayResize(dst, dst_start + n);
  for (int i = 0; i < n; i++) dst[dst_start + i] = src[src_start + i];
  return n;
}
template <class T>
int ArrayMaximum(const MqlArr<T> &a, int count = -1, int start = 0) {
  int end = count < 0 ? ArraySize(a) : start + count, best = -1;
  for (int i = start; i < end && i < ArraySize(a); i++)
    if (best < 0 || a[i] > a[best]) best = i;
  return best;
}
template <class T>
int ArrayMinimum(const MqlArr<T> &a, int count = -1, int start = 0) {
  int end = count < 0 ? ArraySize(a) : start + count, best = -1;
  for (int i = start; i < end && i < ArraySize(a); i++)
    if (best < 0 || a[i] < a[best]) best = i;
  return best;
}

// --------------------------------------------------------------------------- constants
#define WHOLE_ARRAY -1
#define EMPTY_VALUE 0x7FFFFFFF
#define EMPTY -1
#define INVALID_HANDLE -1
#define CP_ACP 0
#define CP_OEMCP 1
#define CP_UTF7 65000
#define CP_UTF8 65001
#define CLR_NONE 0xFFFFFFFF
#define M_PI_MQL 3.14159265358979323846

const color clrNONE = 0xFFFFFFFFu, clrBlack = 0x000000, clrWhite = 0xFFFFFF, clrRed = 0x0000FF,
            clrGreen = 0x008000, clrBlue = 0xFF0000, clrYellow = 0x00FFFF, clrLime = 0x00FF00,
            clrOrange = 0x00A5FF, clrGray = 0x808080, clrMagenta = 0xFF00FF,
            clrDodgerBlue = 0xFF901E, clrOrangeRed = 0x0045FF, clrGold = 0x00D7FF,
            clrSilver = 0xC0C0C0, clrAqua = 0xFFFF00;

enum { OP_BUY = 0, OP_SELL = 1, OP_BUYLIMIT = 2, OP_SELLLIMIT = 3, OP_BUYSTOP = 4, OP_SELLSTOP = 5 };
enum { SELECT_BY_POS = 0, SELECT_BY_TICKET = 1 };
enum { MODE_TRADES = 0, MODE_HISTORY = 1 };
enum {
  MODE_LOW = 1, MODE_HIGH = 2, MODE_TIME = 5, MODE_BID = 9, MODE_ASK = 10, MODE_POINT = 11,
  MODE_DIGITS = 12, MODE_SPREAD = 13, MODE_STOPLEVEL = 14, MODE_LOTSIZE = 15, MODE_TICKVALUE = 16,
  MODE_TICKSIZE = 17, MODE_SWAPLONG = 18, MODE_SWAPSHORT = 19, MODE_STARTING = 20,
  MODE_EXPIRATION = 21, MODE_TRADEALLOWED = 22, MODE_MINLOT = 23, MODE_LOTSTEP = 24,
  MODE_MAXLOT = 25, MODE_SWAPTYPE = 26, MODE_PROFITCALCMODE = 27, MODE_MARGINCALCMODE = 28,
  MODE_MARGININIT = 29, MODE_MARGINMAINTENANCE = 30, MODE_MARGINHEDGED = 31,
  MODE_MARGINREQUIRED = 32, MODE_FREEZELEVEL = 33, MODE_CLOSEBY_ALLOWED = 34
};
enum { INIT_SUCCEEDED = 0, INIT_FAILED = 1, INIT_PARAMETERS_INCORRECT = 32767, INIT_AGENT_NOT_SUITABLE = 32768 };
enum {
  REASON_PROGRAM = 0, REASON_REMOVE = 1, REASON_RECOMPILE = 2, REASON_CHARTCHANGE = 3,
  REASON_CHARTCLOSE = 4, REASON_PARAMETERS = 5, REASON_ACCOUNT = 6, REASON_TEMPLATE = 7,
  REASON_INITFAILED = 8, REASON_CLOSE = 9
};
enum ENUM_TIMEFRAMES {
  PERIOD_CURRENT = 0, PERIOD_M1 = 1, PERIOD_M5 = 5, PERIOD_M15 = 15, PERIOD_M30 = 30,
  PERIOD_H1 = 60, PERIOD_H4 = 240, PERIOD_D1 = 1440, PERIOD_W1 = 10080, PERIOD_MN1 = 43200
};
enum { TIME_DATE = 1, TIME_MINUTES = 2, TIME_SECONDS = 4 };
enum { POINTER_INVALID = 0, POINTER_DYNAMIC = 1, POINTER_AUTOMATIC = 2 };
enum {
  FILE_READ = 1, FILE_WRITE = 2, FILE_BIN = 4, FILE_CSV = 8, FILE_TXT = 16, FILE_ANSI = 32,
  FILE_UNICODE = 64, FILE_SHARE_READ = 128, FILE_SHARE_WRITE = 256, FILE_REWRITE = 512,
  FILE_COMMON = 4096
};
enum { CHAR_VALUE = 1, SHORT_VALUE = 2, INT_VALUE = 4 };
enum ENUM_SYMBOL_INFO_STRING {
  SYMBOL_CURRENCY_BASE = 0, SYMBOL_CURRENCY_PROFIT = 1, SYMBOL_CURRENCY_MARGIN = 2,
  SYMBOL_DESCRIPTION = 3, SYMBOL_PATH = 4
};
enum ENUM_SYMBOL_INFO_DOUBLE {
  SYMBOL_BID = 100, SYMBOL_ASK = 101, SYMBOL_POINT = 102, SYMBOL_TRADE_TICK_VALUE = 103,
  SYMBOL_TRADE_TICK_SIZE = 104, SYMBOL_TRADE_CONTRACT_SIZE = 105, SYMBOL_VOLUME_MIN = 106,
  SYMBOL_VOLUME_MAX = 107, SYMBOL_VOLUME_STEP = 108, SYMBOL_SWAP_LONG = 109, SYMBOL_SWAP_SHORT = 110
};
enum ENUM_SYMBOL_INFO_INTEGER {
  SYMBOL_DIGITS = 200, SYMBOL_SPREAD = 201, SYMBOL_TRADE_STOPS_LEVEL = 202,
  SYMBOL_TRADE_FREEZE_LEVEL = 203, SYMBOL_TIME = 204
};
enum ENUM_TERMINAL_INFO_INTEGER {
  TERMINAL_CONNECTED = 300, TERMINAL_DLLS_ALLOWED = 301, TERMINAL_TRADE_ALLOWED = 302,
  TERMINAL_BUILD = 303
};
enum ENUM_MQL_INFO_INTEGER {
  MQL_TESTER = 400, MQL_DLLS_ALLOWED = 401, MQL_TRADE_ALLOWED = 402, MQL_OPTIMIZATION = 403,
  MQL_VISUAL_MODE = 404
};

// MT4 error codes (GetLastError)
enum {
  ERR_NO_ERROR = 0, ERR_NO_RESULT = 1, ERR_COMMON_ERROR = 2, ERR_INVALID_TRADE_PARAMETERS = 3,
  ERR_SERVER_BUSY = 4, ERR_NO_CONNECTION = 6, ERR_TRADE_TIMEOUT = 128, ERR_INVALID_PRICE = 129,
  ERR_INVALID_STOPS = 130, ERR_INVALID_TRADE_VOLUME = 131, ERR_MARKET_CLOSED = 132,
  ERR_TRADE_DISABLED = 133, ERR_NOT_ENOUGH_MONEY = 134, ERR_PRICE_CHANGED = 135,
  ERR_OFF_QUOTES = 136, ERR_BROKER_BUSY = 137, ERR_REQUOTE = 138, ERR_ORDER_LOCKED = 139,
  ERR_TOO_MANY_REQUESTS = 141, ERR_TRADE_MODIFY_DENIED = 145, ERR_TRADE_CONTEXT_BUSY = 146,
  ERR_INVALID_FUNCTION_PARAMVALUE = 4051, ERR_GLOBAL_VARIABLE_NOT_FOUND = 4058,
  ERR_HISTORY_WILL_UPDATED = 4066, ERR_NO_ORDER_SELECTED = 4105, ERR_UNKNOWN_SYMBOL = 4106,
  ERR_INVALID_PRICE_PARAM = 4107, ERR_INVALID_TICKET = 4108, ERR_TRADE_NOT_ALLOWED = 4109,
  ERR_FILE_TOO_MANY_OPENED = 5001, ERR_FILE_WRONG_FILENAME = 5002, ERR_FILE_CANNOT_OPEN = 5004,
  ERR_FILE_CANNOT_DELETE = 5006, ERR_FILE_INVALID_HANDLE = 5007, ERR_FILE_NOT_TOWRITE = 5009,
  ERR_FILE_NOT_TOREAD = 5010, ERR_FILE_READ_ERROR = 5015, ERR_FILE_WRITE_ERROR = 5016,
  ERR_FILE_NOT_EXIST = 5020
};

// --------------------------------------------------------------------------- strings
namespace mt4 {
// A string parameter that also accepts NULL (MQL passes NULL for "none" / current symbol).
struct StrArg {
  std::string s;
  bool null = false;
  StrArg(const std::string &v) : s(v) {}
  StrArg(const char *p) : s(p ? p : ""), null(p == nullptr) {}
  operator const std::string &() const { return s; }
};
std::string fmt_double(double v);  // Print / FileWrite / implicit conversion format
inline void append(std::string &out, const std::string &v) { out += v; }
inline void append(std::string &out, const char *v) { out += v ? v : ""; }
inline void append(std::string &out, bool v) { out += v ? "true" : "false"; }
inline void append(std::string &out, char v) { out += std::to_string((int)v); }
inline void append(std::string &out, double v) { out += fmt_double(v); }
inline void append(std::string &out, float v) { out += fmt_double(v); }
template <class T>
typename std::enable_if<std::is_integral<T>::value || std::is_enum<T>::value>::type append(
    std::string &out, T v) {
  out += std::to_string((long long)v);
}
template <class... A>
std::string concat(const A &...a) {
  std::string s;
  (append(s, a), ...);
  return s;
}
void print_line(const std::string &text);
void alert_line(const std::string &text);
void comment_text(const std::string &text);
std::string format(const std::string &fmt, const std::vector<std::string> &sargs,
                   const std::vector<long long> &iargs, const std::vector<double> &dargs,
                   const std::vector<char> &kinds);
struct FmtArgs {
  std::vector<std::string> s;
  std::vector<long long> i;
  std::vector<double> d;
  std::vector<char> k;
  void add(const std::string &v) { s.push_back(v); k.push_back('s'); }
  void add(const char *v) { s.push_back(v ? v : ""); k.push_back('s'); }
  void add(double v) { d.push_back(v); k.push_back('d'); }
  void add(float v) { d.push_back(v); k.push_back('d'); }
  void add(bool v) { i.push_back(v); k.push_back('i'); }
  template <class T>
  typename std::enable_if<std::is_integral<T>::value || std::is_enum<T>::value>::type add(T v) {
    i.push_back((long long)v);
    k.push_back('i');
  }
};
}  // namespace mt4

// MQL converts numbers to strings in concatenation ("a"+5 == "a5"); C++ would append a char.
inline string operator+(const string &a, int b) { return a + std::to_string(b); }
inline string operator+(const string &a, long b) { return a + std::to_string(b); }
inline string operator+(const string &a, uint b) { return a + std::to_string(b); }
inline string operator+(const string &a, ulong b) { return a + std::to_string(b); }
inline string operator+(const string &a, double b) { return a + mt4::fmt_double(b); }
inline string operator+(const string &a, bool b) { return a + (b ? "true" : "false"); }
inline string operator+(int a, const string &b) { return std::to_string(a) + b; }
inline string operator+(long a, const string &b) { return std::to_string(a) + b; }
inline string operator+(double a, const string &b) { return mt4::fmt_double(a) + b; }
inline string &operator+=(string &a, int b) { return a += std::to_string(b); }
inline string &operator+=(string &a, long b) { return a += std::to_string(b); }
inline string &operator+=(string &a, double b) { return a += mt4::fmt_double(b); }

int StringLen(const string &s);
ushort StringGetCharacter(const string &s, int pos);
bool StringSetCharacter(string &s, int pos, ushort c);
string StringSubstr(const string &s, int start, int length = -1);
int StringFind(const string &s, const string &match, int start = 0);
int StringReplace(string &s, const string &find, const string &replacement);
string StringTrimLeft(const string &s);
string StringTrimRight(const string &s);
bool StringToUpper(string &s);
bool StringToLower(string &s);
int StringSplit(const string &s, ushort sep, MqlArr<string> &result);
int StringCompare(const string &a, const string &b, bool case_sensitive = true);
string ShortToString(ushort c);
string CharToString(uchar c);
string CharToStr(uchar c);
double StringToDouble(const string &s);
long StringToInteger(const string &s);
datetime StringToTime(const string &s);
string IntegerToString(long v, int str_len = 0, ushort fill = ' ');
string DoubleToString(double v, int digits = 8);
inline string DoubleToStr(double v, int digits) { return DoubleToString(v, digits); }
string TimeToString(datetime t, int mode = TIME_DATE | TIME_MINUTES);
inline string TimeToStr(datetime t, int mode = TIME_DATE | TIME_MINUTES) { return TimeToString(t, mode); }
int StringToCharArray(const string &s, MqlArr<uchar> &out, int start = 0, int count = -1,
                      uint codepage = CP_ACP);
string CharArrayToString(const MqlArr<uchar> &a, int start = 0, int count = -1,
                         uint codepage = CP_ACP);
int StringToShortArray(const string &s, MqlArr<ushort> &out, int start = 0, int count = -1);
string ShortArrayToString(const MqlArr<ushort> &a, int start = 0, int count = -1);
template <class... A>
string StringConcatenate(const A &...a) { return mt4::concat(a...); }
template <class... A>
string StringFormat(const string &fmt, const A &...a) {
  mt4::FmtArgs args;
  (args.add(a), ...);
  return mt4::format(fmt, args.s, args.i, args.d, args.k);
}

template <class... A>
void Print(const A &...a) { mt4::print_line(mt4::concat(a...)); }
template <class... A>
void Alert(const A &...a) { mt4::alert_line(mt4::concat(a...)); }
template <class... A>
void Comment(const A &...a) { mt4::comment_text(mt4::concat(a...)); }
template <class... A>
void PrintFormat(const string &fmt, const A &...a) { mt4::print_line(StringFormat(fmt, a...)); }

// --------------------------------------------------------------------------- math
inline bool MathIsValidNumber(double v) { return std::isfinite(v); }
inline double MathPow(double b, double e) { return std::pow(b, e); }
inline double MathAbs(double v) { return std::fabs(v); }
inline double MathFloor(double v) { return std::floor(v); }
inline double MathCeil(double v) { return std::ceil(v); }
inline double MathRound(double v) { return std::round(v); }  // half away from zero, as MQL
inline double MathSqrt(double v) { return std::sqrt(v); }
inline double MathLog(double v) { return std::log(v); }
inline double MathLog10(double v) { return std::log10(v); }
inline double MathExp(double v) { return std::exp(v); }
inline double MathMod(double a, double b) { return std::fmod(a, b); }
inline double MathArctan(double v) { return std::atan(v); }
template <class A, class B>
inline auto MathMax(A a, B b) -> decltype(a + b) { return a > b ? a : b; }
template <class A, class B>
inline auto MathMin(A a, B b) -> decltype(a + b) { return a < b ? a : b; }
int MathRand();
void MathSrand(int seed);
inline double NormalizeDouble(double v, int digits) {
  double f = std::pow(10.0, digits);
  return std::round(v * f) / f;
}
template <class T>
int CheckPointer(T *p) { return p == nullptr ? POINTER_INVALID : POINTER_DYNAMIC; }

// --------------------------------------------------------------------------- terminal
struct MqlDateTime {
  int year, mon, day, hour, min, sec, day_of_week, day_of_year;
};
struct MqlTick {
  datetime time;
  double bid, ask, last;
  ulong volume;
};
bool TimeToStruct(datetime t, MqlDateTime &dt);
datetime StructToTime(MqlDateTime &dt);
bool SymbolInfoTick(const mt4::StrArg &symbol, MqlTick &tick);
enum ENUM_ACCOUNT_INFO_INTEGER { ACCOUNT_LOGIN = 500, ACCOUNT_LEVERAGE = 501, ACCOUNT_TRADE_ALLOWED = 502, ACCOUNT_TRADE_EXPERT = 503 };
enum ENUM_ACCOUNT_INFO_DOUBLE { ACCOUNT_BALANCE = 510, ACCOUNT_EQUITY = 511, ACCOUNT_MARGIN = 512, ACCOUNT_MARGIN_FREE = 513, ACCOUNT_PROFIT = 514 };
enum ENUM_ACCOUNT_INFO_STRING { ACCOUNT_CURRENCY = 520, ACCOUNT_COMPANY = 521, ACCOUNT_SERVER = 522, ACCOUNT_NAME = 523 };
long AccountInfoInteger(int prop);
double AccountInfoDouble(int prop);
string AccountInfoString(int prop);
enum ENUM_MQL_INFO_STRING { MQL_PROGRAM_NAME = 600, MQL_PROGRAM_PATH = 601 };
enum ENUM_TERMINAL_INFO_STRING { TERMINAL_DATA_PATH = 610, TERMINAL_COMMONDATA_PATH = 611, TERMINAL_NAME = 612 };
string MQLInfoString(int prop);
string TerminalInfoString(int prop);
long ChartID();
void ExpertRemove();  // OnDeinit(REASON_PROGRAM) after the current event, then the run ends
bool SendNotification(const string &text);
bool SendMail(const string &subject, const string &text);
void PlaySound(const string &file);
ulong GetMicrosecondCount();
int GetLastError();
void ResetLastError();
uint GetTickCount();
void Sleep(int ms);
bool IsStopped();
bool IsTesting();
bool IsOptimization();
bool IsVisualMode();
bool IsConnected();
bool IsDllsAllowed();
bool IsExpertEnabled();
bool IsTradeAllowed();
bool IsTradeAllowed(const mt4::StrArg &symbol, datetime t);
bool IsTradeContextBusy();
bool RefreshRates();
void WindowRedraw();
void ChartRedraw(long chart_id = 0);
bool EventSetTimer(int seconds);
bool EventSetMillisecondTimer(int ms);
void EventKillTimer();
int TerminalInfoInteger(int what);
int MQLInfoInteger(int what);
int UninitializeReason();

string Symbol();
int Period();
datetime TimeCurrent();
datetime TimeGMT();
datetime TimeLocal();
int TimeGMTOffset();
int TimeDaylightSavings();
int TimeYear(datetime t);
int TimeMonth(datetime t);
int TimeDay(datetime t);
int TimeHour(datetime t);
int TimeMinute(datetime t);
int TimeSeconds(datetime t);
int TimeDayOfWeek(datetime t);
int TimeDayOfYear(datetime t);
int Year();
int Month();
int Day();
int Hour();
int Minute();
int Seconds();
int DayOfWeek();
int DayOfYear();

// prices of the chart symbol (MQL predefined variables, updated by the runtime)
extern double Bid;
extern double Ask;
extern double Point;
extern int Digits;
extern int Bars;
extern double _Point;    // = Point
extern int _Digits;      // = Digits
extern string _Symbol;   // = Symbol()
extern int _Period;      // = Period()

namespace mt4 {
struct PriceSeries {
  int which;
  double operator[](int shift) const;
};
struct TimeSeries {
  datetime operator[](int shift) const;
};
struct VolumeSeries {
  long operator[](int shift) const;
};
}  // namespace mt4
extern const mt4::PriceSeries Open, High, Low, Close;
extern const mt4::TimeSeries Time;
extern const mt4::VolumeSeries Volume;

int iBars(const mt4::StrArg &symbol, int timeframe);
datetime iTime(const mt4::StrArg &symbol, int timeframe, int shift);
double iOpen(const mt4::StrArg &symbol, int timeframe, int shift);
double iHigh(const mt4::StrArg &symbol, int timeframe, int shift);
double iLow(const mt4::StrArg &symbol, int timeframe, int shift);
double iClose(const mt4::StrArg &symbol, int timeframe, int shift);
long iVolume(const mt4::StrArg &symbol, int timeframe, int shift);
int iBarShift(const mt4::StrArg &symbol, int timeframe, datetime time, bool exact = false);

double MarketInfo(const mt4::StrArg &symbol, int type);
string SymbolInfoString(const mt4::StrArg &symbol, int prop);
double SymbolInfoDouble(const mt4::StrArg &symbol, int prop);
long SymbolInfoInteger(const mt4::StrArg &symbol, int prop);

// --------------------------------------------------------------------------- account
int AccountNumber();
string AccountCurrency();
string AccountCompany();
string AccountServer();
string AccountName();
double AccountBalance();
double AccountEquity();
double AccountProfit();
double AccountCredit();
double AccountMargin();
double AccountFreeMargin();
double AccountFreeMarginCheck(const mt4::StrArg &symbol, int cmd, double volume);
int AccountLeverage();
int AccountStopoutLevel();
int AccountStopoutMode();

// --------------------------------------------------------------------------- orders
int OrderSend(const mt4::StrArg &symbol, int cmd, double volume, double price, int slippage,
              double stoploss, double takeprofit, const mt4::StrArg &comment = nullptr,
              int magic = 0, datetime expiration = 0, color arrow_color = clrNONE);
bool OrderModify(int ticket, double price, double stoploss, double takeprofit,
                 datetime expiration, color arrow_color = clrNONE);
bool OrderClose(int ticket, double lots, double price, int slippage, color arrow_color = clrNONE);
bool OrderDelete(int ticket, color arrow_color = clrNONE);
bool OrderSelect(int index, int select, int pool = MODE_TRADES);
int OrdersTotal();
int OrdersHistoryTotal();
int OrderTicket();
int OrderType();
double OrderLots();
double OrderOpenPrice();
datetime OrderOpenTime();
double OrderClosePrice();
datetime OrderCloseTime();
double OrderStopLoss();
double OrderTakeProfit();
double OrderProfit();
double OrderCommission();
double OrderSwap();
string OrderComment();
int OrderMagicNumber();
string OrderSymbol();
datetime OrderExpiration();
void OrderPrint();

// --------------------------------------------------------------------------- global variables
datetime GlobalVariableSet(const string &name, double value);
double GlobalVariableGet(const string &name);
bool GlobalVariableGet(const string &name, double &value);
bool GlobalVariableCheck(const string &name);
bool GlobalVariableDel(const string &name);
datetime GlobalVariableTime(const string &name);
bool GlobalVariableTemp(const string &name);
bool GlobalVariableSetOnCondition(const string &name, double value, double check_value);
int GlobalVariablesDeleteAll(const mt4::StrArg &prefix = nullptr, datetime limit_data = 0);
int GlobalVariablesTotal();
string GlobalVariableName(int index);
void GlobalVariablesFlush();

// --------------------------------------------------------------------------- files
int FileOpen(const string &name, int flags, short delimiter = '\t', uint codepage = CP_ACP);
void FileClose(int handle);
void FileFlush(int handle);
bool FileIsExist(const string &name, int common_flag = 0);
bool FileDelete(const string &name, int common_flag = 0);
bool FileMove(const string &src, int common_flag, const string &dst, int mode_flags);
bool FileCopy(const string &src, int common_flag, const string &dst, int mode_flags);
ulong FileSize(int handle);
ulong FileTell(int handle);
bool FileSeek(int handle, long offset, int origin);
bool FileIsEnding(int handle);
bool FileIsLineEnding(int handle);
uint FileWriteString(int handle, const string &text, int length = -1);
string FileReadString(int handle, int length = -1);
double FileReadNumber(int handle);
bool FileReadBool(int handle);
datetime FileReadDatetime(int handle);
uint FileWriteInteger(int handle, int value, int size = INT_VALUE);
int FileReadInteger(int handle, int size = INT_VALUE);
uint FileWriteLong(int handle, long value);
long FileReadLong(int handle);
uint FileWriteDouble(int handle, double value);
double FileReadDouble(int handle);
namespace mt4 {
uint file_write_bytes(int handle, const void *data, size_t size);
uint file_read_bytes(int handle, void *data, size_t size);
uint file_write_line(int handle, const std::vector<std::string> &fields);
struct FileArgs {
  std::vector<std::string> f;
  void add(const std::string &v) { f.push_back(v); }
  void add(const char *v) { f.push_back(v ? v : ""); }
  void add(bool v) { f.push_back(v ? "true" : "false"); }
  void add(double v) { f.push_back(fmt_double(v)); }
  template <class T>
  typename std::enable_if<std::is_integral<T>::value || std::is_enum<T>::value>::type add(T v) {
    f.push_back(std::to_string((long long)v));
  }
};
}  // namespace mt4
template <class T>
uint FileWriteArray(int handle, const MqlArr<T> &a, int start = 0, int count = WHOLE_ARRAY) {
  static_assert(std::is_trivially_copyable<T>::value, "FileWriteArray: simple types only");
  int n = ArraySize(a) - start;
  if (count >= 0 && count < n) n = count;
  if (n <= 0) return 0;
  return mt4::file_write_bytes(handle, a.data() + start, sizeof(T) * (size_t)n) / sizeof(T);
}
template <class T>
uint FileReadArray(int handle, MqlArr<T> &a, int start = 0, int count = WHOLE_ARRAY) {
  static_assert(std::is_trivially_copyable<T>::value, "FileReadArray: simple types only");
  long remain = (long)(FileSize(handle) - FileTell(handle)) / (long)sizeof(T);
  long n = (count < 0 || count > remain) ? remain : count;
  if (n <= 0) return 0;
  if (start + n > ArraySize(a)) ArrayResize(a, (int)(start + n));
  return mt4::file_read_bytes(handle, a.data() + start, sizeof(T) * (size_t)n) / sizeof(T);
}
template <class... A>
uint FileWrite(int handle, const A &...a) {
  mt4::FileArgs args;
  (args.add(a), ...);
  return mt4::file_write_line(handle, args.f);
}

// --------------------------------------------------------------------------- inputs, handlers
namespace mt4 {
// Value of input `name` from the run config (input.<name>=...), else the EA's default.
bool input_text(const char *name, std::string &text);
template <class T>
T input(const char *name, T def) {
  std::string text;
  if (!input_text(name, text)) return def;
  if constexpr (std::is_same<T, std::string>::value) {
    return text;
  } else if constexpr (std::is_same<T, bool>::value) {
    return text == "true" || text == "1";
  } else if constexpr (std::is_floating_point<T>::value) {
    return (T)std::strtod(text.c_str(), nullptr);
  } else {
    return (T)std::strtoll(text.c_str(), nullptr, 10);
  }
}
struct EaHandlers {
  int (*OnInit)() = nullptr;
  void (*OnDeinit)(int) = nullptr;
  void (*OnTick)() = nullptr;
  void (*OnTimer)() = nullptr;
  void (*OnChartEvent)(const int, const long &, const double &, const string &) = nullptr;
  double (*OnTester)() = nullptr;
};
}  // namespace mt4
mt4::EaHandlers mt4_ea_handlers();  // written by rewrite.py at the end of the EA's .cpp
