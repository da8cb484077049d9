// mt4.cpp -- the MT4 terminal of the stand-in: run config, bars and ticks, orders and fills,
// account, files, global variables, state save/restore, and main().
//
// Usage: <binary> <run.cfg>    (written by src/aibridge/mt4/replay.py; key=value per line)
//
// Tick model per bar i (identical to the backtest kernel, src/aibridge/backtest/core.py):
//  1. open tick: Time[0]=t_i, O=H=L=C=o_i, Bid=o_i, Ask=o_i+spread_i*Point; OnTimer if due
//     (simulated clock), then OnTick;
//  2. rest of the bar: SL/TP of every open order (gap through a level fills at the open for
//     orders opened before this bar; long on Bid low/high, short on Ask = Bid + spread; stop first);
//  3. close tick: the whole bar, Bid=c_i, Ask=c_i+spread_i*Point; OnTick.
// End of data: OnDeinit, then open orders are closed at the last close (reason "end").
#include <algorithm>
#include <chrono>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <sys/stat.h>
#include <thread>

#include "mt4.hpp"

double Bid = 0.0;
double Ask = 0.0;
double Point = 0.00001;
int Digits = 5;
int Bars = 0;
double _Point = 0.00001;
int _Digits = 5;
string _Symbol = "";
int _Period = 0;
const mt4::PriceSeries Open{0}, High{1}, Low{2}, Close{3};
const mt4::TimeSeries Time{};
const mt4::VolumeSeries Volume{};

namespace mt4 {

struct Bar {
  datetime t;
  double o, h, l, c;
  long v;
  double spread;  // points
};

struct Order {
  int ticket = 0;
  int type = OP_BUY;
  double lots = 0;
  datetime open_time = 0;
  double open_price = 0;
  double sl = 0, tp = 0;
  datetime close_time = 0;
  double close_price = 0;
  double commission = 0, swap = 0, profit = 0;
  std::string comment;
  int magic = 0;
  datetime expiration = 0;
  std::string symbol;
  int open_bar = -1, close_bar = -1;
  std::string close_reason;
};

struct FileRec {
  FILE *fp = nullptr;
  int flags = 0;
  char delim = '\t';
  std::string path;
};

struct Runtime {
  std::map<std::string, std::string> cfg;
  std::vector<Bar> bars;
  int cur = 0;          // index of the current bar
  bool closed = false;  // the current bar is complete (close tick)
  // instrument
  std::string symbol = "EURUSD", base = "EUR", quote = "USD", account_ccy = "USD";
  int period = 60;
  double tick_size = 0.00001, contract = 100000, fixed_tv = 1.0, q2a = 1.0;
  int tv_mode = 0;
  double lot_min = 0.01, lot_max = 100, lot_step = 0.01;
  int stop_level = 0, freeze_level = 0;
  double commission = 0, swap_long = 0, swap_short = 0;
  int triple_day = 2;
  bool swap_on = false;
  // account
  double balance = 10000;
  int leverage = 100;
  int account = 12345678;
  std::string company = "aibridge stand-in", server = "standin-demo", name = "stand-in";
  long utc_offset = 0, local_offset = 0;
  bool tester = false, dlls = true, trade_allowed = true, expert_enabled = true, connected = true;
  // orders
  std::vector<Order> open, history;
  int next_ticket = 1;
  bool has_sel = false;
  Order sel;
  // errors, timer, clock
  int last_error = 0;
  int timer_s = 0;
  datetime timer_next = 0;
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  // terminal state
  std::map<std::string, std::pair<double, datetime>> gv;
  std::map<int, FileRec> files;
  int next_handle = 1;
  std::string files_dir = "MQL4/Files", out_dir = ".";
  std::string comment;
  std::ofstream log;
  bool echo = true;
  // faults
  std::map<long, int> f_send, f_modify, f_close;
  std::set<long> f_send_timeout_opened;
  long busy_calls = 0;
  int busy_from_bar = 0;
  std::map<int, std::string> pauses;
  std::string pause_before_init;
  // counters
  std::map<std::string, long> n;
  std::map<int, long> send_errors;
  long sleep_ms = 0;
  int deinit_reason = -1;
  int init_result = -999;
  std::string fatal;
  bool deinit_called = false;
};

static Runtime *g_rt = nullptr;
Runtime &rt();

[[noreturn]] void critical(const std::string &what) { throw CriticalError(what); }
void set_error(int code) { rt().last_error = code; }

// --------------------------------------------------------------------------- config
// (g_rt while make_runtime() runs: rt() is not initialised yet)
static Runtime &rtc() { return g_rt ? *g_rt : rt(); }
static std::string cfg(const std::string &key, const std::string &def = "") {
  auto it = rtc().cfg.find(key);
  return it == rtc().cfg.end() ? def : it->second;
}
static double cfgd(const std::string &key, double def) {
  auto it = rtc().cfg.find(key);
  return it == rtc().cfg.end() ? def : std::strtod(it->second.c_str(), nullptr);
}
static long cfgl(const std::string &key, long def) {
  auto it = rtc().cfg.find(key);
  return it == rtc().cfg.end() ? def : std::strtol(it->second.c_str(), nullptr, 10);
}
static bool cfgb(const std::string &key, bool def) {
  auto it = rtc().cfg.find(key);
  if (it == rtc().cfg.end()) return def;
  return it->second == "1" || it->second == "true";
}
// "1:138,2:136" -> {1:138, 2:136}
static std::map<long, int> parse_calls(const std::string &text) {
  std::map<long, int> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t c = item.find(':');
    if (c == std::string::npos) continue;
    out[std::strtol(item.substr(0, c).c_str(), nullptr, 10)] =
        (int)std::strtol(item.substr(c + 1).c_str(), nullptr, 10);
  }
  return out;
}

static void load_config(Runtime &r, const char *path) {
  std::ifstream in(path);
  if (!in) {
    std::fprintf(stderr, "stand-in: cannot read run config %s\n", path);
    std::exit(2);
  }
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string v = line.substr(eq + 1);
    // values are escaped: \n \t \\ (so inputs may hold any text)
    std::string u;
    for (size_t i = 0; i < v.size(); i++) {
      if (v[i] == '\\' && i + 1 < v.size()) {
        char e = v[++i];
        u += e == 'n' ? '\n' : e == 't' ? '\t' : e;
      } else {
        u += v[i];
      }
    }
    r.cfg[line.substr(0, eq)] = u;
  }
}

static Runtime *make_runtime() {
  auto *r = new Runtime();
  g_rt = r;
  // The EA's globals (inputs!) are initialised before main(): find the config from the
  // environment or, failing that, from this process's own command line.
  std::string path;
  if (const char *env = std::getenv("MT4_STANDIN_CONFIG")) path = env;
  if (path.empty()) {
    std::ifstream cmd("/proc/self/cmdline", std::ios::binary);
    std::string arg;
    std::getline(cmd, arg, '\0');
    std::getline(cmd, path, '\0');
  }
  if (!path.empty()) load_config(*r, path.c_str());
  r->symbol = cfg("symbol", r->symbol);
  r->base = cfg("base_currency", r->base);
  r->quote = cfg("quote_currency", r->quote);
  r->account_ccy = cfg("account_currency", r->account_ccy);
  r->period = (int)cfgl("period", 60);
  Digits = (int)cfgl("digits", 5);
  Point = cfgd("point", 0.00001);
  r->tick_size = cfgd("tick_size", Point);

  r->contract = cfgd("contract_size", 100000);
  r->tv_mode = (int)cfgl("tick_value_mode", 0);
  r->fixed_tv = cfgd("fixed_tick_value", r->contract * r->tick_size);
  r->q2a = cfgd("quote_to_account", 1.0);
  r->lot_min = cfgd("lot_min", 0.01);
  r->lot_max = cfgd("lot_max", 100);
  r->lot_step = cfgd("lot_step", 0.01);
  r->stop_level = (int)cfgl("stop_level", 0);
  r->freeze_level = (int)cfgl("freeze_level", 0);
  r->commission = cfgd("commission_per_lot_per_side", 0);
  r->swap_long = cfgd("swap_long_points", 0);
  r->swap_short = cfgd("swap_short_points", 0);
  r->triple_day = (int)cfgl("triple_swap_weekday", 2);
  r->swap_on = cfgb("swap", false);
  r->balance = cfgd("initial_equity", 10000);
  r->leverage = (int)cfgl("leverage", 100);
  r->account = (int)cfgl("account_number", 12345678);
  r->company = cfg("account_company", r->company);
  r->server = cfg("account_server", r->server);
  r->name = cfg("account_name", r->name);
  r->utc_offset = cfgl("broker_utc_offset_s", 0);
  r->local_offset = cfgl("local_utc_offset_s", 0);
  r->tester = cfgb("tester", false);
  r->dlls = cfgb("dlls_allowed", true);
  r->trade_allowed = cfgb("trade_allowed", true);
  r->expert_enabled = cfgb("expert_enabled", true);
  r->next_ticket = (int)cfgl("first_ticket", 1);
  r->files_dir = cfg("files_dir", r->files_dir);
  r->out_dir = cfg("out_dir", r->out_dir);
  r->echo = cfgb("echo", true);
  r->f_send = parse_calls(cfg("fault.order_send"));
  r->f_modify = parse_calls(cfg("fault.order_modify"));
  r->f_close = parse_calls(cfg("fault.order_close"));
  for (auto &kv : parse_calls(cfg("fault.order_send_timeout_opened")))
    r->f_send_timeout_opened.insert(kv.first);
  {
    std::stringstream ss(cfg("fault.order_send_timeout_opened_calls"));
    std::string item;
    while (std::getline(ss, item, ','))
      if (!item.empty()) r->f_send_timeout_opened.insert(std::strtol(item.c_str(), nullptr, 10));
  }
  r->busy_calls = cfgl("fault.context_busy_calls", 0);
  r->busy_from_bar = (int)cfgl("fault.context_busy_from_bar", 0);
  {
    std::stringstream ss(cfg("pause"));  // "120:kill,300:restart"
    std::string item;
    while (std::getline(ss, item, ',')) {
      size_t c = item.find(':');
      if (c != std::string::npos)
        r->pauses[(int)std::strtol(item.substr(0, c).c_str(), nullptr, 10)] = item.substr(c + 1);
    }
  }
  r->pause_before_init = cfg("pause_before_init");
  if (r->tv_mode == 2 && cfg("quote_to_account").empty()) {
    std::fprintf(stderr, "stand-in: a cross needs quote_to_account in the run config\n");
    std::exit(2);
  }
  return r;
}

Runtime &rt() {
  static Runtime *r = make_runtime();
  return *r;
}

bool input_text(const char *name, std::string &text) {
  auto it = rt().cfg.find(std::string("input.") + name);
  if (it == rt().cfg.end()) return false;
  text = it->second;
  rt().n["inputs_overridden"]++;
  return true;
}

// --------------------------------------------------------------------------- output
std::string fmt_double(double v) {
  if (!std::isfinite(v)) return std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
  char buf[64];
  for (int p = 1; p <= 17; p++) {
    std::snprintf(buf, sizeof buf, "%.*g", p, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

static void log_line(const std::string &text) {
  Runtime &r = rt();
  std::string stamp = TimeToString(TimeCurrent(), TIME_DATE | TIME_SECONDS);
  if (!r.log.is_open()) {
    r.log.open(r.out_dir + "/ea.log", std::ios::app);
  }
  r.log << stamp << "\t" << text << "\n";
  if (r.echo) std::cout << text << "\n";
}
void print_line(const std::string &text) {
  rt().n["prints"]++;
  log_line(text);
}
void alert_line(const std::string &text) {
  rt().n["alerts"]++;
  log_line("Alert: " + text);
  std::ofstream a(rt().out_dir + "/alerts.log", std::ios::app);
  a << TimeToString(TimeCurrent(), TIME_DATE | TIME_SECONDS) << "\t" << text << "\n";
}
void comment_text(const std::string &text) {
  rt().comment = text;
  rt().n["comments"]++;
}

std::string format(const std::string &fmt, const std::vector<std::string> &sargs,
                   const std::vector<long long> &iargs, const std::vector<double> &dargs,
                   const std::vector<char> &kinds) {
  std::string out;
  size_t si = 0, ii = 0, di = 0, ki = 0;
  for (size_t i = 0; i < fmt.size(); i++) {
    if (fmt[i] != '%') {
      out += fmt[i];
      continue;
    }
    if (i + 1 < fmt.size() && fmt[i + 1] == '%') {
      out += '%';
      i++;
      continue;
    }
    size_t j = i + 1;
    while (j < fmt.size() && std::strchr("-+ #0123456789.*hlIL", fmt[j])) j++;
    if (j >= fmt.size()) break;
    std::string flags = fmt.substr(i + 1, j - i - 1);
    flags.erase(std::remove_if(flags.begin(), flags.end(),
                               [](char c) { return c == 'h' || c == 'l' || c == 'I' || c == 'L'; }),
                flags.end());
    char conv = fmt[j];
    char buf[512];
    if (ki >= kinds.size()) critical("StringFormat: fewer arguments than conversions in \"" + fmt + "\"");
    char k = kinds[ki++];
    std::string spec = "%" + flags;
    if (conv == 's') {
      std::string v = k == 's' ? sargs[si++] : k == 'i' ? std::to_string(iargs[ii++]) : fmt_double(dargs[di++]);
      std::snprintf(buf, sizeof buf, (spec + "s").c_str(), v.c_str());
    } else if (std::strchr("diouxXc", conv)) {
      long long v = k == 'i' ? iargs[ii++] : k == 'd' ? (long long)dargs[di++] : (si++, 0);
      std::snprintf(buf, sizeof buf, (spec + "ll" + conv).c_str(), v);
      if (conv == 'c') std::snprintf(buf, sizeof buf, (spec + "c").c_str(), (int)v);
    } else {
      double v = k == 'd' ? dargs[di++] : k == 'i' ? (double)iargs[ii++] : (si++, 0.0);
      std::snprintf(buf, sizeof buf, (spec + conv).c_str(), v);
    }
    out += buf;
    i = j;
  }
  return out;
}

}  // namespace mt4

using mt4::rt;
using mt4::Runtime;

// --------------------------------------------------------------------------- strings
namespace {
void utf8_put(std::string &out, uint32_t cp) {
  if (cp < 0x80) {
    out += (char)cp;
  } else if (cp < 0x800) {
    out += (char)(0xC0 | (cp >> 6));
    out += (char)(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += (char)(0xE0 | (cp >> 12));
    out += (char)(0x80 | ((cp >> 6) & 0x3F));
    out += (char)(0x80 | (cp & 0x3F));
  } else {
    out += (char)(0xF0 | (cp >> 18));
    out += (char)(0x80 | ((cp >> 12) & 0x3F));
    out += (char)(0x80 | ((cp >> 6) & 0x3F));
    out += (char)(0x80 | (cp & 0x3F));
  }
}
// Decode UTF-8 (also surrogates encoded on their own, as ShortToString makes them) to code
// points; a high+low surrogate pair becomes one code point, as MQL's UTF-16 would hold it.
std::vector<uint32_t> utf8_decode(const std::string &s) {
  std::vector<uint32_t> cps;
  for (size_t i = 0; i < s.size();) {
    unsigned char c = (unsigned char)s[i];
    uint32_t cp;
    size_t len;
    if (c < 0x80) { cp = c; len = 1; }
    else if ((c >> 5) == 6 && i + 1 < s.size()) { cp = ((c & 0x1F) << 6) | (s[i + 1] & 0x3F); len = 2; }
    else if ((c >> 4) == 14 && i + 2 < s.size()) { cp = ((c & 0x0F) << 12) | ((s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F); len = 3; }
    else if ((c >> 3) == 30 && i + 3 < s.size()) { cp = ((c & 0x07) << 18) | ((s[i + 1] & 0x3F) << 12) | ((s[i + 2] & 0x3F) << 6) | (s[i + 3] & 0x3F); len = 4; }
    else { cp = 0xFFFD; len = 1; }
    i += len;
    if (!cps.empty() && cps.back() >= 0xD800 && cps.back() < 0xDC00 && cp >= 0xDC00 && cp < 0xE000)
      cps.back() = 0x10000 + ((cps.back() - 0xD800) << 10) + (cp - 0xDC00);
    else
      cps.push_back(cp);
  }
  return cps;
}
std::string utf8_of(const std::vector<uint32_t> &cps) {
  std::string out;
  for (uint32_t cp : cps) utf8_put(out, cp);
  return out;
}
std::string to_utf16le(const std::string &s) {
  std::string out;
  for (uint32_t cp : utf8_decode(s)) {
    auto put = [&](uint32_t u) { out += (char)(u & 0xFF); out += (char)(u >> 8); };
    if (cp >= 0x10000) {
      put(0xD800 + ((cp - 0x10000) >> 10));
      put(0xDC00 + ((cp - 0x10000) & 0x3FF));
    } else {
      put(cp);
    }
  }
  return out;
}
std::string from_utf16le(const std::string &b) {
  std::string out;
  for (size_t i = 0; i + 1 < b.size(); i += 2)
    utf8_put(out, (unsigned char)b[i] | ((unsigned)(unsigned char)b[i + 1] << 8));
  return utf8_of(utf8_decode(out));  // joins surrogate pairs
}
}  // namespace

int StringLen(const string &s) { return (int)s.size(); }
ushort StringGetCharacter(const string &s, int pos) {
  if (pos < 0 || pos >= (int)s.size()) return 0;
  return (ushort)(unsigned char)s[(size_t)pos];
}
bool StringSetCharacter(string &s, int pos, ushort c) {
  if (pos < 0 || pos > (int)s.size()) return false;
  if (pos == (int)s.size()) s += (char)c;
  else s[(size_t)pos] = (char)c;
  return true;
}
string StringSubstr(const string &s, int start, int length) {
  // MQL4 builds disagree on length 0 (older ones return the rest of the string): the EA must
  // never pass it, so the stand-in makes it a hard failure.
  if (length == 0) mt4::critical("StringSubstr with length 0");
  if (start < 0) start = 0;
  if (start >= (int)s.size()) return "";
  if (length < 0) return s.substr((size_t)start);
  return s.substr((size_t)start, (size_t)length);
}
int StringFind(const string &s, const string &match, int start) {
  if (start < 0) start = 0;
  size_t p = s.find(match, (size_t)start);
  return p == string::npos ? -1 : (int)p;
}
int StringReplace(string &s, const string &find, const string &replacement) {
  if (find.empty()) return -1;
  int n = 0;
  size_t pos = 0;
  while ((pos = s.find(find, pos)) != string::npos) {
    s.replace(pos, find.size(), replacement);
    pos += replacement.size();
    n++;
  }
  return n;
}
string StringTrimLeft(const string &s) {
  size_t i = s.find_first_not_of(" \t\r\n");
  return i == string::npos ? "" : s.substr(i);
}
string StringTrimRight(const string &s) {
  size_t i = s.find_last_not_of(" \t\r\n");
  return i == string::npos ? "" : s.substr(0, i + 1);
}
bool StringToUpper(string &s) {
  for (char &c : s) c = (char)std::toupper((unsigned char)c);
  return true;
}
bool StringToLower(string &s) {
  for (char &c : s) c = (char)std::tolower((unsigned char)c);
  return true;
}
int StringSplit(const string &s, ushort sep, MqlArr<string> &result) {
  ArrayResize(result, 0);
  if (s.empty()) return 0;
  size_t start = 0;
  while (true) {
    size_t p = s.find((char)sep, start);
    int n = ArraySize(result);
    ArrayResize(result, n + 1);
    result[n] = s.substr(start, p == string::npos ? string::npos : p - start);
    if (p == string::npos) break;
    start = p + 1;
  }
  return ArraySize(result);
}
int StringCompare(const string &a, const string &b, bool case_sensitive) {
  string x = a, y = b;
  if (!case_sensitive) {
    StringToLower(x);
    StringToLower(y);
  }
  return x < y ? -1 : (x > y ? 1 : 0);
}
string ShortToString(ushort c) {
  string out;
  utf8_put(out, c);
  return out;
}
string CharToString(uchar c) {
  string out;
  utf8_put(out, c);  // CP_ACP: Latin-1 stands in for the Windows ANSI code page
  return out;
}
string CharToStr(uchar c) { return CharToString(c); }
double StringToDouble(const string &s) { return std::strtod(s.c_str(), nullptr); }
long StringToInteger(const string &s) { return std::strtol(s.c_str(), nullptr, 10); }
string IntegerToString(long v, int str_len, ushort fill) {
  string s = std::to_string(v);
  while ((int)s.size() < str_len) s = string(1, (char)fill) + s;
  return s;
}
string DoubleToString(double v, int digits) {
  char buf[128];
  if (digits < 0) {
    std::snprintf(buf, sizeof buf, "%.*e", -digits > 16 ? 16 : -digits, v);
    return buf;
  }
  if (digits > 16) digits = 16;
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}
string TimeToString(datetime t, int mode) {
  time_t tt = (time_t)t;
  struct tm g;
  gmtime_r(&tt, &g);
  char buf[64];
  string out;
  if (mode & TIME_DATE) {
    std::snprintf(buf, sizeof buf, "%04d.%02d.%02d", g.tm_year + 1900, g.tm_mon + 1, g.tm_mday);
    out += buf;
  }
  if (mode & (TIME_MINUTES | TIME_SECONDS)) {
    if (!out.empty()) out += " ";
    if (mode & TIME_SECONDS)
      std::snprintf(buf, sizeof buf, "%02d:%02d:%02d", g.tm_hour, g.tm_min, g.tm_sec);
    else
      std::snprintf(buf, sizeof buf, "%02d:%02d", g.tm_hour, g.tm_min);
    out += buf;
  }
  return out;
}
datetime StringToTime(const string &s) {
  struct tm g {};
  int y = 1970, mo = 1, d = 1, h = 0, mi = 0, se = 0;
  int n = std::sscanf(s.c_str(), "%d.%d.%d %d:%d:%d", &y, &mo, &d, &h, &mi, &se);
  if (n < 3) {
    n = std::sscanf(s.c_str(), "%d:%d:%d", &h, &mi, &se);
    if (n < 2) return 0;
    datetime now = TimeCurrent();
    return now - now % 86400 + h * 3600 + mi * 60 + se;
  }
  g.tm_year = y - 1900;
  g.tm_mon = mo - 1;
  g.tm_mday = d;
  g.tm_hour = h;
  g.tm_min = mi;
  g.tm_sec = se;
  return (datetime)timegm(&g);
}
int StringToCharArray(const string &s, MqlArr<uchar> &out, int start, int count, uint codepage) {
  string bytes;
  if (codepage == CP_UTF8) {
    bytes = utf8_of(utf8_decode(s));  // surrogate pairs from ShortToString joined
  } else {
    for (uint32_t cp : utf8_decode(s)) bytes += cp < 0x100 ? (char)cp : '?';
  }
  size_t n = count < 0 ? bytes.size() + 1 : (size_t)count;  // -1: with the terminating 0
  if ((size_t)ArraySize(out) < (size_t)start + n) ArrayResize(out, start + (int)n);
  for (size_t i = 0; i < n; ++i) out[(int)((size_t)start + i)] = i < bytes.size() ? (uchar)bytes[i] : 0;
  return (int)n;
}
string CharArrayToString(const MqlArr<uchar> &a, int start, int count, uint codepage) {
  string raw;
  int end = count < 0 ? ArraySize(a) : start + count;
  for (int i = start; i < end && i < ArraySize(a); ++i) {
    if (a[i] == 0) break;
    raw.push_back((char)a[i]);
  }
  if (codepage == CP_UTF8) return utf8_of(utf8_decode(raw));
  string out;
  for (char c : raw) utf8_put(out, (unsigned char)c);
  return out;
}
int StringToShortArray(const string &s, MqlArr<ushort> &out, int start, int count) {
  string b = to_utf16le(s);
  size_t n = count < 0 ? b.size() / 2 + 1 : (size_t)count;
  if ((size_t)ArraySize(out) < (size_t)start + n) ArrayResize(out, start + (int)n);
  for (size_t i = 0; i < n; i++)
    out[(int)(start + i)] = 2 * i + 1 < b.size() ? (ushort)((unsigned char)b[2 * i] | ((unsigned char)b[2 * i + 1] << 8)) : 0;
  return (int)n;
}
string ShortArrayToString(const MqlArr<ushort> &a, int start, int count) {
  string b;
  int end = count < 0 ? ArraySize(a) : start + count;
  for (int i = start; i < end && i < ArraySize(a); i++) {
    if (a[i] == 0) break;
    b += (char)(a[i] & 0xFF);
    b += (char)(a[i] >> 8);
  }
  return from_utf16le(b);
}

static unsigned int g_rand = 1;
int MathRand() {
  g_rand = g_rand * 214013u + 2531011u;
  return (int)((g_rand >> 16) & 0x7FFF);
}
void MathSrand(int seed) { g_rand = (unsigned)seed; }

// --------------------------------------------------------------------------- terminal
int GetLastError() {
  int e = rt().last_error;
  rt().last_error = 0;  // MQL4: GetLastError() resets the code
  return e;
}
void ResetLastError() { rt().last_error = 0; }
uint GetTickCount() {
  using namespace std::chrono;
  return (uint)duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}
void Sleep(int ms) {
  Runtime &r = rt();
  r.n["sleeps"]++;
  if (ms > 0) r.sleep_ms += ms;
  if (!r.tester && ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}
bool IsStopped() { return rt().n.count("expert_remove") > 0; }
void ExpertRemove() { rt().n["expert_remove"] = 1; }
bool TimeToStruct(datetime t, MqlDateTime &dt) {
  time_t tt = (time_t)t;
  struct tm g;
  gmtime_r(&tt, &g);
  dt.year = g.tm_year + 1900;
  dt.mon = g.tm_mon + 1;
  dt.day = g.tm_mday;
  dt.hour = g.tm_hour;
  dt.min = g.tm_min;
  dt.sec = g.tm_sec;
  dt.day_of_week = g.tm_wday;
  dt.day_of_year = g.tm_yday;
  return true;
}
datetime StructToTime(MqlDateTime &dt) {
  struct tm g {};
  g.tm_year = dt.year - 1900;
  g.tm_mon = dt.mon - 1;
  g.tm_mday = dt.day;
  g.tm_hour = dt.hour;
  g.tm_min = dt.min;
  g.tm_sec = dt.sec;
  return (datetime)timegm(&g);
}
bool SymbolInfoTick(const mt4::StrArg &symbol, MqlTick &tick) {
  if (!symbol.null && symbol.s != rt().symbol) {
    mt4::set_error(ERR_UNKNOWN_SYMBOL);
    return false;
  }
  tick.time = TimeCurrent();
  tick.bid = Bid;
  tick.ask = Ask;
  tick.last = Bid;
  tick.volume = 0;
  return true;
}
long AccountInfoInteger(int prop) {
  if (prop == ACCOUNT_LOGIN) return AccountNumber();
  if (prop == ACCOUNT_LEVERAGE) return AccountLeverage();
  if (prop == ACCOUNT_TRADE_ALLOWED || prop == ACCOUNT_TRADE_EXPERT) return rt().trade_allowed;
  return 0;
}
double AccountInfoDouble(int prop) {
  if (prop == ACCOUNT_BALANCE) return AccountBalance();
  if (prop == ACCOUNT_EQUITY) return AccountEquity();
  if (prop == ACCOUNT_MARGIN) return AccountMargin();
  if (prop == ACCOUNT_MARGIN_FREE) return AccountFreeMargin();
  if (prop == ACCOUNT_PROFIT) return AccountProfit();
  return 0;
}
string AccountInfoString(int prop) {
  if (prop == ACCOUNT_CURRENCY) return AccountCurrency();
  if (prop == ACCOUNT_COMPANY) return AccountCompany();
  if (prop == ACCOUNT_SERVER) return AccountServer();
  if (prop == ACCOUNT_NAME) return AccountName();
  return "";
}
string MQLInfoString(int prop) {
  if (prop == MQL_PROGRAM_NAME) return mt4::cfg("program_name", "AIBridge_EA");
  return "";
}
string TerminalInfoString(int prop) {
  if (prop == TERMINAL_DATA_PATH || prop == TERMINAL_COMMONDATA_PATH) return rt().out_dir;
  if (prop == TERMINAL_NAME) return "MetaTrader 4 (aibridge stand-in)";
  return "";
}
long ChartID() { return 1; }
bool SendNotification(const string &text) {
  rt().n["notifications"]++;
  mt4::alert_line("notification: " + text);
  return true;
}
bool SendMail(const string &subject, const string &text) {
  rt().n["mails"]++;
  mt4::alert_line("mail: " + subject + ": " + text);
  return true;
}
void PlaySound(const string &) {}
ulong GetMicrosecondCount() {
  using namespace std::chrono;
  return (ulong)duration_cast<microseconds>(steady_clock::now().time_since_epoch()).count();
}
bool IsTesting() { return rt().tester; }
bool IsOptimization() { return false; }
bool IsVisualMode() { return false; }
bool IsConnected() { return rt().connected; }
bool IsDllsAllowed() { return rt().dlls; }
bool IsExpertEnabled() { return rt().expert_enabled; }
static bool busy_now() {
  Runtime &r = rt();
  if (r.busy_calls > 0 && r.cur >= r.busy_from_bar) {
    r.busy_calls--;
    r.n["context_busy_injected"]++;
    return true;
  }
  return false;
}
bool IsTradeContextBusy() { return busy_now(); }
// MT4: false when trading is not allowed OR the trade context is busy.
bool IsTradeAllowed() { return rt().trade_allowed && rt().expert_enabled && !busy_now(); }
bool IsTradeAllowed(const mt4::StrArg &, datetime) { return rt().trade_allowed; }
bool RefreshRates() { return true; }
void WindowRedraw() {}
void ChartRedraw(long) {}
bool EventSetTimer(int seconds) {
  if (seconds <= 0) return false;
  rt().timer_s = seconds;
  rt().timer_next = TimeCurrent() + seconds;
  return true;
}
bool EventSetMillisecondTimer(int ms) { return EventSetTimer(ms < 1000 ? 1 : ms / 1000); }
void EventKillTimer() { rt().timer_s = 0; }
int TerminalInfoInteger(int what) {
  if (what == TERMINAL_CONNECTED) return rt().connected;
  if (what == TERMINAL_DLLS_ALLOWED) return rt().dlls;
  if (what == TERMINAL_TRADE_ALLOWED) return rt().trade_allowed;
  if (what == TERMINAL_BUILD) return 1420;
  return 0;
}
int MQLInfoInteger(int what) {
  if (what == MQL_TESTER) return rt().tester;
  if (what == MQL_DLLS_ALLOWED) return rt().dlls;
  if (what == MQL_TRADE_ALLOWED) return rt().trade_allowed && rt().expert_enabled;
  return 0;
}
int UninitializeReason() { return rt().deinit_reason < 0 ? 0 : rt().deinit_reason; }

string Symbol() { return rt().symbol; }
int Period() { return rt().period; }
datetime TimeCurrent() {
  Runtime &r = rt();
  if (r.bars.empty()) return 0;
  return r.bars[(size_t)r.cur].t;
}
datetime TimeGMT() { return TimeCurrent() - rt().utc_offset; }
datetime TimeLocal() { return TimeGMT() + rt().local_offset; }
int TimeGMTOffset() { return (int)(TimeGMT() - TimeLocal()); }
int TimeDaylightSavings() { return 0; }
static struct tm tm_of(datetime t) {
  time_t tt = (time_t)t;
  struct tm g;
  gmtime_r(&tt, &g);
  return g;
}
int TimeYear(datetime t) { return tm_of(t).tm_year + 1900; }
int TimeMonth(datetime t) { return tm_of(t).tm_mon + 1; }
int TimeDay(datetime t) { return tm_of(t).tm_mday; }
int TimeHour(datetime t) { return tm_of(t).tm_hour; }
int TimeMinute(datetime t) { return tm_of(t).tm_min; }
int TimeSeconds(datetime t) { return tm_of(t).tm_sec; }
int TimeDayOfWeek(datetime t) { return tm_of(t).tm_wday; }
int TimeDayOfYear(datetime t) { return tm_of(t).tm_yday; }
int Year() { return TimeYear(TimeCurrent()); }
int Month() { return TimeMonth(TimeCurrent()); }
int Day() { return TimeDay(TimeCurrent()); }
int Hour() { return TimeHour(TimeCurrent()); }
int Minute() { return TimeMinute(TimeCurrent()); }
int Seconds() { return TimeSeconds(TimeCurrent()); }
int DayOfWeek() { return TimeDayOfWeek(TimeCurrent()); }
int DayOfYear() { return TimeDayOfYear(TimeCurrent()); }

// --------------------------------------------------------------------------- series
static const mt4::Bar &bar_at(int shift, const char *what) {
  Runtime &r = rt();
  if (shift < 0 || shift > r.cur) mt4::critical(string("array out of range (") + what + "[" + std::to_string(shift) + "], Bars " + std::to_string(r.cur + 1) + ")");
  return r.bars[(size_t)(r.cur - shift)];
}
double mt4::PriceSeries::operator[](int shift) const {
  static const char *names[] = {"Open", "High", "Low", "Close"};
  const Bar &b = bar_at(shift, names[which]);
  if (shift == 0 && !rt().closed) return b.o;  // open tick: O=H=L=C=open
  return which == 0 ? b.o : which == 1 ? b.h : which == 2 ? b.l : b.c;
}
datetime mt4::TimeSeries::operator[](int shift) const { return bar_at(shift, "Time").t; }
long mt4::VolumeSeries::operator[](int shift) const {
  const Bar &b = bar_at(shift, "Volume");
  if (shift == 0 && !rt().closed) return 1;
  return b.v;
}
static bool chart(const mt4::StrArg &symbol, int timeframe) {
  if ((!symbol.null && symbol.s != rt().symbol) || (timeframe != 0 && timeframe != rt().period)) {
    mt4::set_error(ERR_HISTORY_WILL_UPDATED);
    return false;
  }
  return true;
}
int iBars(const mt4::StrArg &s, int tf) { return chart(s, tf) ? Bars : 0; }
datetime iTime(const mt4::StrArg &s, int tf, int shift) {
  return chart(s, tf) && shift >= 0 && shift < Bars ? Time[shift] : 0;
}
double iOpen(const mt4::StrArg &s, int tf, int shift) { return chart(s, tf) && shift >= 0 && shift < Bars ? Open[shift] : 0; }
double iHigh(const mt4::StrArg &s, int tf, int shift) { return chart(s, tf) && shift >= 0 && shift < Bars ? High[shift] : 0; }
double iLow(const mt4::StrArg &s, int tf, int shift) { return chart(s, tf) && shift >= 0 && shift < Bars ? Low[shift] : 0; }
double iClose(const mt4::StrArg &s, int tf, int shift) { return chart(s, tf) && shift >= 0 && shift < Bars ? Close[shift] : 0; }
long iVolume(const mt4::StrArg &s, int tf, int shift) { return chart(s, tf) && shift >= 0 && shift < Bars ? Volume[shift] : 0; }
int iBarShift(const mt4::StrArg &s, int tf, datetime time, bool exact) {
  if (!chart(s, tf)) return -1;
  Runtime &r = rt();
  for (int shift = 0; shift <= r.cur; shift++) {
    datetime t = r.bars[(size_t)(r.cur - shift)].t;
    if (t == time) return shift;
    if (t < time) return exact ? -1 : shift;
  }
  return exact ? -1 : r.cur;
}

// --------------------------------------------------------------------------- symbol
namespace mt4 {
static double tick_value_at(double price) {
  Runtime &r = rt();
  if (r.tv_mode == 1) return r.fixed_tv / price;
  if (r.tv_mode == 2) return r.fixed_tv * r.q2a;
  return r.fixed_tv;
}
static double margin_per_lot(double price) {
  Runtime &r = rt();
  double base_in_account = r.tv_mode == 1 ? 1.0 : (r.tv_mode == 2 ? price * r.q2a : price);
  return r.contract * base_in_account / (r.leverage > 0 ? r.leverage : 1);
}
static double spread_points() { return rt().bars.empty() ? 0 : rt().bars[(size_t)rt().cur].spread; }
}  // namespace mt4

double MarketInfo(const mt4::StrArg &symbol, int type) {
  Runtime &r = rt();
  if (!symbol.null && symbol.s != r.symbol) {
    mt4::set_error(ERR_UNKNOWN_SYMBOL);
    return 0;
  }
  switch (type) {
    case MODE_LOW: return Low[0];
    case MODE_HIGH: return High[0];
    case MODE_TIME: return (double)TimeCurrent();
    case MODE_BID: return Bid;
    case MODE_ASK: return Ask;
    case MODE_POINT: return Point;
    case MODE_DIGITS: return Digits;
    case MODE_SPREAD: return std::round(mt4::spread_points());
    case MODE_STOPLEVEL: return r.stop_level;
    case MODE_LOTSIZE: return r.contract;
    case MODE_TICKVALUE: return mt4::tick_value_at(Bid);
    case MODE_TICKSIZE: return r.tick_size;
    case MODE_SWAPLONG: return r.swap_long;
    case MODE_SWAPSHORT: return r.swap_short;
    case MODE_TRADEALLOWED: return r.trade_allowed ? 1 : 0;
    case MODE_MINLOT: return r.lot_min;
    case MODE_LOTSTEP: return r.lot_step;
    case MODE_MAXLOT: return r.lot_max;
    case MODE_SWAPTYPE: return 0;
    case MODE_PROFITCALCMODE: return 0;
    case MODE_MARGINCALCMODE: return 0;
    case MODE_MARGININIT: return 0;
    case MODE_MARGINMAINTENANCE: return 0;
    case MODE_MARGINHEDGED: return r.contract / 2;
    case MODE_MARGINREQUIRED: return mt4::margin_per_lot(Ask);
    case MODE_FREEZELEVEL: return r.freeze_level;
    case MODE_CLOSEBY_ALLOWED: return 1;
  }
  mt4::set_error(ERR_INVALID_FUNCTION_PARAMVALUE);
  return 0;
}
string SymbolInfoString(const mt4::StrArg &symbol, int prop) {
  Runtime &r = rt();
  if (!symbol.null && symbol.s != r.symbol) {
    mt4::set_error(ERR_UNKNOWN_SYMBOL);
    return "";
  }
  if (prop == SYMBOL_CURRENCY_BASE || prop == SYMBOL_CURRENCY_MARGIN) return r.base;
  if (prop == SYMBOL_CURRENCY_PROFIT) return r.quote;
  if (prop == SYMBOL_DESCRIPTION) return r.symbol + " (stand-in)";
  return "";
}
double SymbolInfoDouble(const mt4::StrArg &symbol, int prop) {
  switch (prop) {
    case SYMBOL_BID: return MarketInfo(symbol, MODE_BID);
    case SYMBOL_ASK: return MarketInfo(symbol, MODE_ASK);
    case SYMBOL_POINT: return MarketInfo(symbol, MODE_POINT);
    case SYMBOL_TRADE_TICK_VALUE: return MarketInfo(symbol, MODE_TICKVALUE);
    case SYMBOL_TRADE_TICK_SIZE: return MarketInfo(symbol, MODE_TICKSIZE);
    case SYMBOL_TRADE_CONTRACT_SIZE: return MarketInfo(symbol, MODE_LOTSIZE);
    case SYMBOL_VOLUME_MIN: return MarketInfo(symbol, MODE_MINLOT);
    case SYMBOL_VOLUME_MAX: return MarketInfo(symbol, MODE_MAXLOT);
    case SYMBOL_VOLUME_STEP: return MarketInfo(symbol, MODE_LOTSTEP);
    case SYMBOL_SWAP_LONG: return MarketInfo(symbol, MODE_SWAPLONG);
    case SYMBOL_SWAP_SHORT: return MarketInfo(symbol, MODE_SWAPSHORT);
  }
  mt4::set_error(ERR_INVALID_FUNCTION_PARAMVALUE);
  return 0;
}
long SymbolInfoInteger(const mt4::StrArg &symbol, int prop) {
  switch (prop) {
    case SYMBOL_DIGITS: return (long)MarketInfo(symbol, MODE_DIGITS);
    case SYMBOL_SPREAD: return (long)MarketInfo(symbol, MODE_SPREAD);
    case SYMBOL_TRADE_STOPS_LEVEL: return (long)MarketInfo(symbol, MODE_STOPLEVEL);
    case SYMBOL_TRADE_FREEZE_LEVEL: return (long)MarketInfo(symbol, MODE_FREEZELEVEL);
    case SYMBOL_TIME: return (long)TimeCurrent();
  }
  mt4::set_error(ERR_INVALID_FUNCTION_PARAMVALUE);
  return 0;
}

// --------------------------------------------------------------------------- account
namespace mt4 {
static double close_side(int type) { return type == OP_BUY ? Bid : Ask; }
static double floating_profit(const Order &o) {
  int d = o.type == OP_BUY ? 1 : -1;
  return d * (close_side(o.type) - o.open_price) / rt().tick_size * tick_value_at(Bid) * o.lots;
}
}  // namespace mt4
int AccountNumber() { return rt().account; }
string AccountCurrency() { return rt().account_ccy; }
string AccountCompany() { return rt().company; }
string AccountServer() { return rt().server; }
string AccountName() { return rt().name; }
double AccountBalance() { return rt().balance; }
double AccountProfit() {
  double p = 0;
  for (const auto &o : rt().open) p += mt4::floating_profit(o) + o.commission + o.swap;
  return p;
}
double AccountEquity() { return rt().balance + AccountProfit(); }
double AccountCredit() { return 0; }
double AccountMargin() {
  double m = 0;
  for (const auto &o : rt().open) m += mt4::margin_per_lot(o.open_price) * o.lots;
  return m;
}
double AccountFreeMargin() { return AccountEquity() - AccountMargin(); }
double AccountFreeMarginCheck(const mt4::StrArg &symbol, int cmd, double volume) {
  if (!symbol.null && symbol.s != rt().symbol) {
    mt4::set_error(ERR_UNKNOWN_SYMBOL);
    return 0;
  }
  double after = AccountFreeMargin() - mt4::margin_per_lot(cmd == OP_BUY ? Ask : Bid) * volume;
  if (after <= 0) mt4::set_error(ERR_NOT_ENOUGH_MONEY);
  return after;
}
int AccountLeverage() { return rt().leverage; }
int AccountStopoutLevel() { return 50; }
int AccountStopoutMode() { return 0; }

// --------------------------------------------------------------------------- orders
namespace mt4 {
static const double EPS = 1e-9;
static bool lots_ok(double lots) {
  Runtime &r = rt();
  if (lots < r.lot_min - EPS || lots > r.lot_max + EPS) return false;
  double steps = lots / r.lot_step;
  return std::fabs(steps - std::round(steps)) < 1e-6;
}
static bool normalized(double price) { return std::fabs(price - NormalizeDouble(price, Digits)) < Point * 1e-3; }
// MT4 stop rules for a market order (MQL4 book "Requirements and limitations"):
// BUY: Bid-SL >= StopLevel, TP-Bid >= StopLevel; SELL: SL-Ask >= StopLevel, Ask-TP >= StopLevel.
static bool stops_ok(int type, double sl, double tp) {
  double lvl = rt().stop_level * Point - Point * 1e-3;
  if (type == OP_BUY) {
    if (sl > 0 && !(Bid - sl >= lvl && sl < Bid)) return false;
    if (tp > 0 && !(tp - Bid >= lvl && tp > Bid)) return false;
  } else {
    if (sl > 0 && !(sl - Ask >= lvl && sl > Ask)) return false;
    if (tp > 0 && !(Ask - tp >= lvl && tp < Ask)) return false;
  }
  return true;
}
// FreezeLevel: no modification/close while the price is within it of SL or TP.
static bool frozen(const Order &o) {
  double lvl = rt().freeze_level * Point;
  if (lvl <= 0) return false;
  double px = close_side(o.type);
  if (o.sl > 0 && std::fabs(px - o.sl) < lvl - Point * 1e-3) return true;
  if (o.tp > 0 && std::fabs(px - o.tp) < lvl - Point * 1e-3) return true;
  return false;
}
static int find_open(int ticket) {
  auto &v = rt().open;
  for (size_t i = 0; i < v.size(); i++)
    if (v[i].ticket == ticket) return (int)i;
  return -1;
}
static bool trade_gate(const char *what) {
  Runtime &r = rt();
  if (!r.trade_allowed || !r.expert_enabled) {
    set_error(ERR_TRADE_NOT_ALLOWED);
    return false;
  }
  if (busy_now()) {
    set_error(ERR_TRADE_CONTEXT_BUSY);
    (void)what;
    return false;
  }
  return true;
}
// Close `lots` of open order #idx at `px`; money per the backtest kernel.
static void close_part(size_t idx, double lots, double px, const std::string &reason, double tv) {
  Runtime &r = rt();
  Order o = r.open[idx];
  int d = o.type == OP_BUY ? 1 : -1;
  double gross = d * (px - o.open_price) / r.tick_size * tv * lots;
  double frac = lots / o.lots;
  Order closed = o;
  closed.lots = lots;
  closed.close_time = TimeCurrent();
  closed.close_price = px;
  closed.profit = gross;
  closed.commission = o.commission * frac - r.commission * lots;
  closed.swap = o.swap * frac;
  closed.close_bar = r.cur;
  closed.close_reason = reason;
  r.balance += closed.profit + closed.commission + closed.swap;
  if (lots < o.lots - EPS) {
    Order rest = o;
    rest.ticket = r.next_ticket++;
    rest.lots = NormalizeDouble(o.lots - lots, 8);
    rest.commission = o.commission - o.commission * frac;
    rest.swap = o.swap - closed.swap;
    rest.comment = "from #" + std::to_string(o.ticket);
    closed.comment = "to #" + std::to_string(rest.ticket);
    r.open[idx] = rest;
    r.n["partial_closes"]++;
  } else {
    r.open.erase(r.open.begin() + (long)idx);
  }
  r.history.push_back(closed);
}
}  // namespace mt4

int OrderSend(const mt4::StrArg &symbol, int cmd, double volume, double price, int slippage,
              double stoploss, double takeprofit, const mt4::StrArg &comment, int magic,
              datetime expiration, color) {
  using namespace mt4;
  Runtime &r = rt();
  r.n["order_send_calls"]++;
  long call = r.n["order_send_calls"];
  auto fail = [&](int code) {
    set_error(code);
    r.send_errors[code]++;
    return -1;
  };
  if (!trade_gate("OrderSend")) return fail(r.last_error);
  auto it = r.f_send.find(call);
  if (it != r.f_send.end()) {
    r.n["faults_injected"]++;
    return fail(it->second);
  }
  if (!symbol.null && symbol.s != r.symbol) return fail(ERR_UNKNOWN_SYMBOL);
  if (cmd != OP_BUY && cmd != OP_SELL) {
    print_line("stand-in: only market orders (OP_BUY/OP_SELL) are supported");
    return fail(ERR_INVALID_TRADE_PARAMETERS);
  }
  if (!lots_ok(volume)) return fail(ERR_INVALID_TRADE_VOLUME);
  if (!normalized(price)) return fail(ERR_INVALID_PRICE_PARAM);
  if (!normalized(stoploss) || !normalized(takeprofit)) return fail(ERR_INVALID_STOPS);
  double market = cmd == OP_BUY ? Ask : Bid;
  if (std::fabs(price - market) > slippage * Point + Point * 1e-3) return fail(ERR_REQUOTE);
  if (!stops_ok(cmd, stoploss, takeprofit)) return fail(ERR_INVALID_STOPS);
  if (AccountFreeMargin() - margin_per_lot(Ask) * volume <= 0) return fail(ERR_NOT_ENOUGH_MONEY);
  Order o;
  o.ticket = r.next_ticket++;
  o.type = cmd;
  o.lots = volume;
  o.open_time = TimeCurrent();
  o.open_price = market;
  o.sl = stoploss;
  o.tp = takeprofit;
  o.commission = -r.commission * volume;
  o.comment = comment.s.substr(0, 31);  // MT4 keeps 31 characters of an order comment
  o.magic = magic;
  o.expiration = expiration;
  o.symbol = r.symbol;
  o.open_bar = r.cur;
  r.open.push_back(o);
  r.n["orders_opened"]++;
  if (r.f_send_timeout_opened.count(call)) {
    r.n["faults_injected"]++;
    return fail(ERR_TRADE_TIMEOUT);  // the order IS open: the EA must find it
  }
  set_error(0);
  return o.ticket;
}

bool OrderModify(int ticket, double, double stoploss, double takeprofit, datetime, color) {
  using namespace mt4;
  Runtime &r = rt();
  r.n["order_modify_calls"]++;
  long call = r.n["order_modify_calls"];
  if (!trade_gate("OrderModify")) return false;
  auto it = r.f_modify.find(call);
  if (it != r.f_modify.end()) {
    r.n["faults_injected"]++;
    set_error(it->second);
    return false;
  }
  int i = find_open(ticket);
  if (i < 0) {
    set_error(ERR_INVALID_TICKET);
    return false;
  }
  Order &o = r.open[(size_t)i];
  if (!normalized(stoploss) || !normalized(takeprofit)) {
    set_error(ERR_INVALID_STOPS);
    return false;
  }
  if (std::fabs(o.sl - stoploss) < Point * 0.5 && std::fabs(o.tp - takeprofit) < Point * 0.5) {
    set_error(ERR_NO_RESULT);
    return false;
  }
  if (frozen(o)) {
    set_error(ERR_TRADE_MODIFY_DENIED);
    return false;
  }
  if (!stops_ok(o.type, stoploss, takeprofit)) {
    set_error(ERR_INVALID_STOPS);
    return false;
  }
  o.sl = stoploss;
  o.tp = takeprofit;
  r.n["orders_modified"]++;
  set_error(0);
  return true;
}

bool OrderClose(int ticket, double lots, double price, int slippage, color) {
  using namespace mt4;
  Runtime &r = rt();
  r.n["order_close_calls"]++;
  long call = r.n["order_close_calls"];
  if (!trade_gate("OrderClose")) return false;
  auto it = r.f_close.find(call);
  if (it != r.f_close.end()) {
    r.n["faults_injected"]++;
    set_error(it->second);
    return false;
  }
  int i = find_open(ticket);
  if (i < 0) {
    set_error(ERR_INVALID_TICKET);
    return false;
  }
  Order &o = r.open[(size_t)i];
  double rest = o.lots - lots;
  if (lots > o.lots + EPS || !lots_ok(lots) || (rest > EPS && rest < r.lot_min - EPS)) {
    set_error(ERR_INVALID_TRADE_VOLUME);
    return false;
  }
  if (!normalized(price)) {
    set_error(ERR_INVALID_PRICE_PARAM);
    return false;
  }
  double market = close_side(o.type);
  if (std::fabs(price - market) > slippage * Point + Point * 1e-3) {
    set_error(ERR_REQUOTE);
    return false;
  }
  if (frozen(o)) {
    set_error(ERR_TRADE_MODIFY_DENIED);
    return false;
  }
  close_part((size_t)i, lots, market, "close", tick_value_at(Bid));
  r.n["orders_closed"]++;
  set_error(0);
  return true;
}

bool OrderDelete(int, color) {
  mt4::set_error(ERR_INVALID_TICKET);  // no pending orders in the stand-in
  return false;
}

bool OrderSelect(int index, int select, int pool) {
  Runtime &r = rt();
  if (select == SELECT_BY_TICKET) {
    for (const auto &o : r.open)
      if (o.ticket == index) {
        r.sel = o;
        r.sel.profit = mt4::floating_profit(o);
        r.sel.close_price = mt4::close_side(o.type);
        r.has_sel = true;
        return true;
      }
    for (const auto &o : r.history)
      if (o.ticket == index) {
        r.sel = o;
        r.has_sel = true;
        return true;
      }
    return false;
  }
  const auto &v = pool == MODE_HISTORY ? r.history : r.open;
  if (index < 0 || index >= (int)v.size()) return false;
  r.sel = v[(size_t)index];
  if (pool != MODE_HISTORY) {
    r.sel.profit = mt4::floating_profit(r.sel);
    r.sel.close_price = mt4::close_side(r.sel.type);
  }
  r.has_sel = true;
  return true;
}
int OrdersTotal() { return (int)rt().open.size(); }
int OrdersHistoryTotal() { return (int)rt().history.size(); }
static const mt4::Order &selected() {
  static mt4::Order none;
  if (!rt().has_sel) {
    mt4::set_error(ERR_NO_ORDER_SELECTED);
    return none;
  }
  return rt().sel;
}
int OrderTicket() { return selected().ticket; }
int OrderType() { return selected().type; }
double OrderLots() { return selected().lots; }
double OrderOpenPrice() { return selected().open_price; }
datetime OrderOpenTime() { return selected().open_time; }
double OrderClosePrice() { return selected().close_price; }
datetime OrderCloseTime() { return selected().close_time; }
double OrderStopLoss() { return selected().sl; }
double OrderTakeProfit() { return selected().tp; }
double OrderProfit() { return selected().profit; }
double OrderCommission() { return selected().commission; }
double OrderSwap() { return selected().swap; }
string OrderComment() { return selected().comment; }
int OrderMagicNumber() { return selected().magic; }
string OrderSymbol() { return selected().symbol; }
datetime OrderExpiration() { return selected().expiration; }
void OrderPrint() {
  const auto &o = selected();
  mt4::print_line(mt4::concat("#", o.ticket, " ", o.type == OP_BUY ? "buy" : "sell", " ", o.lots,
                              " ", o.symbol, " ", o.open_price, " ", o.sl, " ", o.tp));
}

// --------------------------------------------------------------------------- global variables
datetime GlobalVariableSet(const string &name, double value) {
  if (name.empty() || name.size() > 63) {
    mt4::set_error(ERR_INVALID_FUNCTION_PARAMVALUE);
    return 0;
  }
  datetime t = TimeCurrent();
  rt().gv[name] = {value, t};
  return t;
}
double GlobalVariableGet(const string &name) {
  auto it = rt().gv.find(name);
  if (it == rt().gv.end()) {
    mt4::set_error(ERR_GLOBAL_VARIABLE_NOT_FOUND);
    return 0;
  }
  return it->second.first;
}
bool GlobalVariableGet(const string &name, double &value) {
  auto it = rt().gv.find(name);
  if (it == rt().gv.end()) {
    mt4::set_error(ERR_GLOBAL_VARIABLE_NOT_FOUND);
    return false;
  }
  value = it->second.first;
  return true;
}
bool GlobalVariableCheck(const string &name) { return rt().gv.count(name) > 0; }
bool GlobalVariableDel(const string &name) { return rt().gv.erase(name) > 0; }
datetime GlobalVariableTime(const string &name) {
  auto it = rt().gv.find(name);
  return it == rt().gv.end() ? 0 : it->second.second;
}
bool GlobalVariableTemp(const string &name) {
  if (!rt().gv.count(name)) rt().gv[name] = {0.0, TimeCurrent()};
  return true;
}
bool GlobalVariableSetOnCondition(const string &name, double value, double check) {
  auto it = rt().gv.find(name);
  if (it == rt().gv.end()) {
    mt4::set_error(ERR_GLOBAL_VARIABLE_NOT_FOUND);
    return false;
  }
  if (it->second.first != check) return false;
  it->second = {value, TimeCurrent()};
  return true;
}
int GlobalVariablesDeleteAll(const mt4::StrArg &prefix, datetime) {
  int n = 0;
  for (auto it = rt().gv.begin(); it != rt().gv.end();) {
    if (prefix.s.empty() || it->first.compare(0, prefix.s.size(), prefix.s) == 0) {
      it = rt().gv.erase(it);
      n++;
    } else {
      ++it;
    }
  }
  return n;
}
int GlobalVariablesTotal() { return (int)rt().gv.size(); }
string GlobalVariableName(int index) {
  int i = 0;
  for (auto &kv : rt().gv)
    if (i++ == index) return kv.first;
  return "";
}
void GlobalVariablesFlush() {}

// --------------------------------------------------------------------------- files
static string file_path(const string &name) {
  string n = name;
  std::replace(n.begin(), n.end(), '\\', '/');
  return rt().files_dir + "/" + n;
}
static void make_parents(const string &path) {
  for (size_t p = path.find('/', 1); p != string::npos; p = path.find('/', p + 1))
    mkdir(path.substr(0, p).c_str(), 0755);
}
static mt4::FileRec *file_rec(int h) {
  auto it = rt().files.find(h);
  if (it == rt().files.end()) {
    mt4::set_error(ERR_FILE_INVALID_HANDLE);
    return nullptr;
  }
  return &it->second;
}
int FileOpen(const string &name, int flags, short delimiter, uint) {
  if (name.empty() || name.find("..") != string::npos) {
    mt4::set_error(ERR_FILE_WRONG_FILENAME);
    return INVALID_HANDLE;
  }
  string path = file_path(name);
  make_parents(path);
  FILE *fp = nullptr;
  bool exists = std::ifstream(path).good();
  if ((flags & FILE_WRITE) && !(flags & FILE_READ)) fp = std::fopen(path.c_str(), "w+b");
  else if (flags & FILE_WRITE) fp = std::fopen(path.c_str(), exists ? "r+b" : "w+b");
  else if (exists) fp = std::fopen(path.c_str(), "rb");
  if (!fp) {
    mt4::set_error(ERR_FILE_CANNOT_OPEN);
    return INVALID_HANDLE;
  }
  int h = rt().next_handle++;
  mt4::FileRec rec;
  rec.fp = fp;
  rec.flags = flags;
  rec.delim = (char)delimiter;
  rec.path = path;
  rt().files[h] = rec;
  rt().n["files_opened"]++;
  return h;
}
void FileClose(int h) {
  auto *f = file_rec(h);
  if (!f) return;
  std::fclose(f->fp);
  rt().files.erase(h);
}
void FileFlush(int h) {
  if (auto *f = file_rec(h)) std::fflush(f->fp);
}
bool FileIsExist(const string &name, int) {
  struct stat st;
  return stat(file_path(name).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}
bool FileDelete(const string &name, int) {
  if (std::remove(file_path(name).c_str()) != 0) {
    mt4::set_error(ERR_FILE_CANNOT_DELETE);
    return false;
  }
  return true;
}
bool FileMove(const string &src, int, const string &dst, int mode_flags) {
  string to = file_path(dst);
  if (FileIsExist(dst) && !(mode_flags & FILE_REWRITE)) {
    mt4::set_error(ERR_FILE_CANNOT_OPEN);
    return false;
  }
  make_parents(to);
  if (std::rename(file_path(src).c_str(), to.c_str()) != 0) {
    mt4::set_error(ERR_FILE_NOT_EXIST);
    return false;
  }
  return true;
}
bool FileCopy(const string &src, int, const string &dst, int mode_flags) {
  if (FileIsExist(dst) && !(mode_flags & FILE_REWRITE)) {
    mt4::set_error(ERR_FILE_CANNOT_OPEN);
    return false;
  }
  std::ifstream in(file_path(src), std::ios::binary);
  if (!in) {
    mt4::set_error(ERR_FILE_NOT_EXIST);
    return false;
  }
  make_parents(file_path(dst));
  std::ofstream out(file_path(dst), std::ios::binary);
  out << in.rdbuf();
  return true;
}
ulong FileSize(int h) {
  auto *f = file_rec(h);
  if (!f) return 0;
  long pos = std::ftell(f->fp);
  std::fseek(f->fp, 0, SEEK_END);
  long size = std::ftell(f->fp);
  std::fseek(f->fp, pos, SEEK_SET);
  return (ulong)size;
}
ulong FileTell(int h) {
  auto *f = file_rec(h);
  return f ? (ulong)std::ftell(f->fp) : 0;
}
bool FileSeek(int h, long offset, int origin) {
  auto *f = file_rec(h);
  return f && std::fseek(f->fp, offset, origin) == 0;
}
bool FileIsEnding(int h) {
  auto *f = file_rec(h);
  if (!f) return true;
  int c = std::fgetc(f->fp);
  if (c == EOF) return true;
  std::ungetc(c, f->fp);
  return false;
}
namespace mt4 {
static bool text_mode(const FileRec &f) { return (f.flags & (FILE_TXT | FILE_CSV)) != 0; }
static bool unicode(const FileRec &f) { return !(f.flags & FILE_ANSI); }
uint file_write_bytes(int h, const void *data, size_t size) {
  auto *f = file_rec(h);
  if (!f) return 0;
  if (!(f->flags & FILE_WRITE)) {
    set_error(ERR_FILE_NOT_TOWRITE);
    return 0;
  }
  std::fseek(f->fp, 0, SEEK_CUR);  // switching from reading to writing
  return (uint)std::fwrite(data, 1, size, f->fp);
}
uint file_read_bytes(int h, void *data, size_t size) {
  auto *f = file_rec(h);
  if (!f) return 0;
  if (!(f->flags & FILE_READ)) {
    set_error(ERR_FILE_NOT_TOREAD);
    return 0;
  }
  std::fseek(f->fp, 0, SEEK_CUR);
  return (uint)std::fread(data, 1, size, f->fp);
}
static uint write_text(int h, const std::string &text) {
  auto *f = file_rec(h);
  if (!f) return 0;
  std::string bytes = text;
  if (unicode(*f)) {
    bytes = to_utf16le(text);
    if (text_mode(*f) && FileTell(h) == 0 && FileSize(h) == 0) bytes = std::string("\xFF\xFE", 2) + bytes;
  }
  file_write_bytes(h, bytes.data(), bytes.size());
  return (uint)text.size();
}
uint file_write_line(int h, const std::vector<std::string> &fields) {
  auto *f = file_rec(h);
  if (!f) return 0;
  std::string line;
  for (size_t i = 0; i < fields.size(); i++) {
    if (i) line += f->delim;
    line += fields[i];
  }
  return write_text(h, line + "\r\n");
}
// Read one text unit (a UTF-16 code unit or a byte); -1 at the end.
static int read_unit(FileRec &f) {
  if (unicode(f)) {
    int a = std::fgetc(f.fp);
    if (a == EOF) return -1;
    int b = std::fgetc(f.fp);
    if (b == EOF) return -1;
    return a | (b << 8);
  }
  int c = std::fgetc(f.fp);
  return c == EOF ? -1 : c;
}
static void skip_bom(int h, FileRec &f) {
  if (unicode(f) && text_mode(f) && FileTell(h) == 0) {
    int a = std::fgetc(f.fp), b = std::fgetc(f.fp);
    if (!(a == 0xFF && b == 0xFE)) std::fseek(f.fp, 0, SEEK_SET);
  }
}
// Text/CSV: up to the line end (or the delimiter for CSV).
static std::string read_field(int h, bool *line_end) {
  auto *f = file_rec(h);
  if (!f) return "";
  std::fseek(f->fp, 0, SEEK_CUR);
  skip_bom(h, *f);
  std::string raw;  // UTF-8
  if (line_end) *line_end = false;
  while (true) {
    int u = read_unit(*f);
    if (u < 0) {
      if (line_end) *line_end = true;
      break;
    }
    if (u == '\n') {
      if (line_end) *line_end = true;
      break;
    }
    if (u == '\r') continue;
    if ((f->flags & FILE_CSV) && u == (unsigned char)f->delim) break;
    if (unicode(*f)) utf8_put(raw, (uint32_t)u);
    else raw += (char)u;
  }
  return unicode(*f) ? utf8_of(utf8_decode(raw)) : raw;
}
}  // namespace mt4
uint FileWriteString(int h, const string &text, int length) {
  string t = length >= 0 && length < (int)text.size() ? text.substr(0, (size_t)length) : text;
  return mt4::write_text(h, t);
}
string FileReadString(int h, int length) {
  auto *f = file_rec(h);
  if (!f) return "";
  if (!mt4::text_mode(*f)) {
    if (length < 0) length = 0;
    size_t unit = mt4::unicode(*f) ? 2 : 1;
    std::string b((size_t)length * unit, '\0');
    size_t got = mt4::file_read_bytes(h, &b[0], b.size());
    b.resize(got);
    return mt4::unicode(*f) ? from_utf16le(b) : b;
  }
  return mt4::read_field(h, nullptr);
}
bool FileIsLineEnding(int h) {
  auto *f = file_rec(h);
  if (!f) return true;
  long pos = std::ftell(f->fp);
  int u = mt4::read_unit(*f);
  std::fseek(f->fp, pos, SEEK_SET);
  return u < 0 || u == '\r' || u == '\n';
}
double FileReadNumber(int h) { return std::strtod(mt4::read_field(h, nullptr).c_str(), nullptr); }
bool FileReadBool(int h) {
  string v = mt4::read_field(h, nullptr);
  return v == "true" || (v != "false" && std::strtol(v.c_str(), nullptr, 10) != 0);
}
datetime FileReadDatetime(int h) { return StringToTime(mt4::read_field(h, nullptr)); }
uint FileWriteInteger(int h, int value, int size) {
  return mt4::file_write_bytes(h, &value, (size_t)(size == 1 || size == 2 ? size : 4));
}
int FileReadInteger(int h, int size) {
  int v = 0;
  size_t n = size == 1 || size == 2 ? size : 4;
  mt4::file_read_bytes(h, &v, n);
  if (n == 1) return (char)v;
  if (n == 2) return (short)v;
  return v;
}
uint FileWriteLong(int h, long value) { return mt4::file_write_bytes(h, &value, 8); }
long FileReadLong(int h) {
  long v = 0;
  mt4::file_read_bytes(h, &v, 8);
  return v;
}
uint FileWriteDouble(int h, double value) { return mt4::file_write_bytes(h, &value, 8); }
double FileReadDouble(int h) {
  double v = 0;
  mt4::file_read_bytes(h, &v, 8);
  return v;
}

// --------------------------------------------------------------------------- the run
#ifndef MT4_NO_MAIN  // part tests link the runtime with their own main()
namespace mt4 {

static std::string esc(const std::string &s) {
  std::string o;
  for (char c : s) {
    if (c == '\\') o += "\\\\";
    else if (c == '\t') o += "\\t";
    else if (c == '\n') o += "\\n";
    else if (c == '\r') o += "\\r";
    else o += c;
  }
  return o;
}
static std::string unesc(const std::string &s) {
  std::string o;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      char e = s[++i];
      o += e == 't' ? '\t' : e == 'n' ? '\n' : e == 'r' ? '\r' : e;
    } else {
      o += s[i];
    }
  }
  return o;
}
static std::vector<std::string> split_tab(const std::string &line) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : line) {
    if (c == '\t') {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}
static std::string g17(double v) {
  char b[64];
  std::snprintf(b, sizeof b, "%.17g", v);
  return b;
}
static std::string order_line(const Order &o) {
  std::vector<std::string> f = {std::to_string(o.ticket), std::to_string(o.type), g17(o.lots),
                                std::to_string(o.open_time), g17(o.open_price), g17(o.sl), g17(o.tp),
                                std::to_string(o.close_time), g17(o.close_price), g17(o.commission),
                                g17(o.swap), g17(o.profit), esc(o.comment), std::to_string(o.magic),
                                std::to_string(o.expiration), esc(o.symbol), std::to_string(o.open_bar),
                                std::to_string(o.close_bar), esc(o.close_reason)};
  std::string s;
  for (size_t i = 0; i < f.size(); i++) s += (i ? "\t" : "") + f[i];
  return s;
}
static Order order_of(const std::vector<std::string> &f) {
  Order o;
  if (f.size() < 19) critical("state file: bad order line");
  o.ticket = std::atoi(f[0].c_str());
  o.type = std::atoi(f[1].c_str());
  o.lots = std::strtod(f[2].c_str(), nullptr);
  o.open_time = std::atol(f[3].c_str());
  o.open_price = std::strtod(f[4].c_str(), nullptr);
  o.sl = std::strtod(f[5].c_str(), nullptr);
  o.tp = std::strtod(f[6].c_str(), nullptr);
  o.close_time = std::atol(f[7].c_str());
  o.close_price = std::strtod(f[8].c_str(), nullptr);
  o.commission = std::strtod(f[9].c_str(), nullptr);
  o.swap = std::strtod(f[10].c_str(), nullptr);
  o.profit = std::strtod(f[11].c_str(), nullptr);
  o.comment = unesc(f[12]);
  o.magic = std::atoi(f[13].c_str());
  o.expiration = std::atol(f[14].c_str());
  o.symbol = unesc(f[15]);
  o.open_bar = std::atoi(f[16].c_str());
  o.close_bar = std::atoi(f[17].c_str());
  o.close_reason = unesc(f[18]);
  return o;
}

static void save_state(const std::string &path, int bar) {
  Runtime &r = rt();
  std::ofstream out(path);
  out << "aibridge-mt4-state\t1\n";
  out << "bar\t" << bar << "\n";
  out << "next_ticket\t" << r.next_ticket << "\n";
  out << "balance\t" << g17(r.balance) << "\n";
  for (auto &kv : r.gv) out << "gv\t" << esc(kv.first) << "\t" << g17(kv.second.first) << "\t" << kv.second.second << "\n";
  for (auto &o : r.open) out << "open\t" << order_line(o) << "\n";
  for (auto &o : r.history) out << "hist\t" << order_line(o) << "\n";
}
static int load_state(const std::string &path) {
  Runtime &r = rt();
  std::ifstream in(path);
  if (!in) {
    std::fprintf(stderr, "stand-in: cannot read state file %s\n", path.c_str());
    std::exit(2);
  }
  std::string line;
  int bar = -1;
  while (std::getline(in, line)) {
    auto f = split_tab(line);
    std::vector<std::string> rest(f.begin() + 1, f.end());
    if (f[0] == "bar") bar = std::atoi(f[1].c_str());
    else if (f[0] == "next_ticket") r.next_ticket = std::atoi(f[1].c_str());
    else if (f[0] == "balance") r.balance = std::strtod(f[1].c_str(), nullptr);
    else if (f[0] == "gv" && f.size() >= 4) r.gv[unesc(f[1])] = {std::strtod(f[2].c_str(), nullptr), std::atol(f[3].c_str())};
    else if (f[0] == "open") r.open.push_back(order_of(rest));
    else if (f[0] == "hist") r.history.push_back(order_of(rest));
  }
  return bar;
}

static void load_bars(Runtime &r, const std::string &path) {
  std::ifstream in(path);
  if (!in) {
    std::fprintf(stderr, "stand-in: cannot read bars file %s\n", path.c_str());
    std::exit(2);
  }
  Bar b;
  while (in >> b.t >> b.o >> b.h >> b.l >> b.c >> b.v >> b.spread) r.bars.push_back(b);
  if (r.bars.empty()) {
    std::fprintf(stderr, "stand-in: no bars in %s\n", path.c_str());
    std::exit(2);
  }
}

static void set_tick(int i, bool close_tick) {
  Runtime &r = rt();
  r.cur = i;
  r.closed = close_tick;
  const Bar &b = r.bars[(size_t)i];
  Bid = close_tick ? b.c : b.o;
  Ask = NormalizeDouble(Bid + b.spread * Point, Digits);
  Bars = i + 1;
  r.n["ticks"]++;
}

// core.py step 1 (swap part): nights crossed, 3x on the triple day, no weekend nights.
static void charge_swap(int i) {
  Runtime &r = rt();
  if (!r.swap_on || i == 0) return;
  long day = r.bars[(size_t)i].t / 86400, prev = r.bars[(size_t)i - 1].t / 86400;
  if (day == prev) return;
  int units = 0;
  for (long d = prev; d < day; d++) {
    int wd = (int)((d + 3) % 7);
    if (wd >= 5) continue;
    units += wd == r.triple_day ? 3 : 1;
  }
  double tv = tick_value_at(r.bars[(size_t)i].o);
  for (auto &o : r.open) {
    double pts = o.type == OP_BUY ? r.swap_long : r.swap_short;
    o.swap += units * pts * Point / r.tick_size * tv * o.lots;
  }
}

// core.py step 3: SL/TP inside bar i after the open tick.
static void intrabar_stops(int i) {
  Runtime &r = rt();
  const Bar &b = r.bars[(size_t)i];
  double sp = b.spread * Point;
  for (size_t k = 0; k < r.open.size();) {
    Order &o = r.open[k];
    bool entry_bar = o.open_bar == i;
    bool has_sl = o.sl > 0, has_tp = o.tp > 0;
    double px = 0;
    const char *reason = nullptr;
    if (o.type == OP_BUY) {
      if (!entry_bar && has_sl && b.o <= o.sl) { px = b.o; reason = "sl"; }
      else if (!entry_bar && has_tp && b.o >= o.tp) { px = b.o; reason = "tp"; }
      else if (has_sl && b.l <= o.sl) { px = o.sl; reason = "sl"; }
      else if (has_tp && b.h >= o.tp) { px = o.tp; reason = "tp"; }
    } else {
      double oa = b.o + sp;
      if (!entry_bar && has_sl && oa >= o.sl) { px = oa; reason = "sl"; }
      else if (!entry_bar && has_tp && oa <= o.tp) { px = oa; reason = "tp"; }
      else if (has_sl && b.h + sp >= o.sl) { px = o.sl; reason = "sl"; }
      else if (has_tp && b.l + sp <= o.tp) { px = o.tp; reason = "tp"; }
    }
    if (!reason) {
      k++;
      continue;
    }
    o.comment += std::string(" [") + reason + "]";
    // the bar's prices for the fill: Bid/Ask are the close tick's after this
    close_part(k, o.lots, px, reason, tick_value_at(px));
    r.n[std::string("closed_") + reason]++;
  }
}

static void pause(const std::string &tag, int bar) {
  std::cout << "PAUSE " << tag << " " << bar << std::endl;
  std::string line;
  std::getline(std::cin, line);
  rt().n["pauses"]++;
}

static void write_outputs(bool saved_state) {
  Runtime &r = rt();
  std::vector<Order> all = r.history;
  if (saved_state)
    for (auto &o : r.open) all.push_back(o);
  std::sort(all.begin(), all.end(), [](const Order &a, const Order &b) {
    return a.ticket < b.ticket;
  });
  std::ofstream t(r.out_dir + "/trades.csv");
  t << "ticket,side,lots,open_time,open_price,sl,tp,close_time,close_price,close_reason,"
       "commission,swap,profit,comment,magic,open_bar,close_bar\n";
  for (auto &o : all) {
    std::string c = o.comment;
    bool quote = c.find_first_of(",\"\r\n") != std::string::npos;
    std::string q;
    for (char ch : c) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
    t << o.ticket << "," << (o.type == OP_BUY ? "BUY" : "SELL") << "," << g17(o.lots) << ","
      << o.open_time << "," << g17(o.open_price) << "," << g17(o.sl) << "," << g17(o.tp) << ","
      << o.close_time << "," << g17(o.close_price) << "," << o.close_reason << ","
      << g17(o.commission) << "," << g17(o.swap) << "," << g17(o.profit) << ","
      << (quote ? "\"" + q + "\"" : c) << "," << o.magic << "," << o.open_bar << ","
      << o.close_bar << "\n";
  }
  std::ofstream s(r.out_dir + "/summary.json");
  s << "{\n";
  s << "  \"bars\": " << r.bars.size() << ",\n";
  s << "  \"first_bar\": " << r.n["first_bar"] << ",\n";
  s << "  \"last_bar\": " << r.cur << ",\n";
  s << "  \"init_result\": " << r.init_result << ",\n";
  s << "  \"deinit_reason\": " << r.deinit_reason << ",\n";
  s << "  \"balance\": " << g17(r.balance) << ",\n";
  s << "  \"equity\": " << g17(AccountEquity()) << ",\n";
  s << "  \"open_orders\": " << r.open.size() << ",\n";
  s << "  \"closed_orders\": " << r.history.size() << ",\n";
  s << "  \"next_ticket\": " << r.next_ticket << ",\n";
  s << "  \"sleep_ms\": " << r.sleep_ms << ",\n";
  s << "  \"global_variables\": {";
  bool first = true;
  for (auto &kv : r.gv) {
    s << (first ? "" : ", ") << "\"" << esc(kv.first) << "\": " << g17(kv.second.first);
    first = false;
  }
  s << "},\n  \"order_send_errors\": {";
  first = true;
  for (auto &kv : r.send_errors) {
    s << (first ? "" : ", ") << "\"" << kv.first << "\": " << kv.second;
    first = false;
  }
  s << "},\n  \"counts\": {";
  first = true;
  for (auto &kv : r.n) {
    s << (first ? "" : ", ") << "\"" << kv.first << "\": " << kv.second;
    first = false;
  }
  std::string fat;
  for (char c : r.fatal) fat += c == '"' ? std::string("\\\"") : c == '\\' ? std::string("\\\\") : c == '\n' ? std::string(" ") : std::string(1, c);
  std::string com;
  for (char c : r.comment) com += c == '"' ? std::string("\\\"") : c == '\\' ? std::string("\\\\") : c == '\n' ? std::string("\\n") : c == '\r' ? std::string("") : c == '\t' ? std::string(" ") : std::string(1, c);
  s << "},\n  \"fatal\": \"" << fat << "\",\n";
  s << "  \"comment\": \"" << com << "\",\n";
  s << "  \"state_saved\": " << (saved_state ? "true" : "false") << "\n}\n";
}

static int run(int argc, char **argv) {
  Runtime &r = rt();
  if (argc < 2 && r.cfg.empty()) {
    std::fprintf(stderr, "usage: %s <run.cfg>\n", argv[0]);
    return 2;
  }
  EaHandlers ea = mt4_ea_handlers();
  _Point = Point;
  _Digits = Digits;
  _Symbol = r.symbol;
  _Period = r.period;
  load_bars(r, cfg("bars_file"));
  mkdir(r.files_dir.c_str(), 0755);
  int start = (int)cfgl("start_bar", 0);
  int stop = (int)cfgl("stop_bar", (long)r.bars.size() - 1);
  if (stop >= (int)r.bars.size()) stop = (int)r.bars.size() - 1;
  std::string state_in = cfg("state_in"), state_out = cfg("state_out");
  if (!state_in.empty()) {
    int saved = load_state(state_in);
    if (cfg("start_bar").empty()) start = saved + 1;
  }
  if (start < 0 || start >= (int)r.bars.size()) {
    std::fprintf(stderr, "stand-in: start_bar %d outside the %zu bars\n", start, r.bars.size());
    return 2;
  }
  bool saved = false;
  int i = start;
  r.n["first_bar"] = start;
  try {
    set_tick(start, false);
    if (!r.pause_before_init.empty()) pause(r.pause_before_init, start);
    r.init_result = ea.OnInit ? ea.OnInit() : 0;
    r.n["oninit_calls"]++;
    if (r.init_result != INIT_SUCCEEDED) {
      r.deinit_reason = REASON_INITFAILED;
      if (ea.OnDeinit) ea.OnDeinit(REASON_INITFAILED);
      write_outputs(false);
      return 0;
    }
    for (i = start; i <= stop; i++) {
      auto p = r.pauses.find(i);
      if (p != r.pauses.end()) pause(p->second, i);
      set_tick(i, false);
      charge_swap(i);
      if (IsStopped()) break;
      // MT4's Strategy Tester never calls OnTimer; a live terminal does
      if (!r.tester && r.timer_s > 0 && ea.OnTimer && TimeCurrent() >= r.timer_next) {
        r.timer_next = TimeCurrent() + r.timer_s;
        r.n["ontimer_calls"]++;
        ea.OnTimer();
      }
      r.n["ontick_calls"]++;
      if (ea.OnTick) ea.OnTick();
      intrabar_stops(i);
      set_tick(i, true);
      r.n["ontick_calls"]++;
      if (ea.OnTick && !IsStopped()) ea.OnTick();
      if (IsStopped()) break;
    }
    bool removed = IsStopped();
    bool restart = !state_out.empty() && !removed;
    r.deinit_reason = removed ? REASON_PROGRAM : restart ? REASON_CLOSE : REASON_REMOVE;
    if (ea.OnDeinit) ea.OnDeinit(r.deinit_reason);
    if (restart) {
      save_state(state_out, stop);
      saved = true;
    } else {
      while (!r.open.empty()) close_part(0, r.open[0].lots, close_side(r.open[0].type), "end", tick_value_at(Bid));
    }
  } catch (const CriticalError &e) {
    r.fatal = e.what();
    std::string msg = "critical error: " + r.fatal + " (bar " + std::to_string(r.cur) + "); the EA is stopped";
    log_line(msg);
    std::cerr << "stand-in: " << msg << "\n";
    write_outputs(false);
    return 3;
  }
  write_outputs(saved);
  return 0;
}

}  // namespace mt4

int main(int argc, char **argv) {  // NOLINT
  std::ios::sync_with_stdio(false);
  int rc = mt4::run(argc, argv);
  std::cout.flush();
  if (rt().log.is_open()) rt().log.flush();
  return rc;  // then the EA's global objects are destroyed, as when MT4 unloads an EA
}
#endif  // MT4_NO_MAIN
