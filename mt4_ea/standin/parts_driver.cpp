// parts_driver.cpp -- runs the EA's pure MQL4 includes (Json, Text, Protocol, LotSize, Risk,
// Trade), rewritten by src/aibridge/mt4/rewrite.py and linked with the stand-in runtime
// (mt4.cpp without its main), for tests/test_ea_sources.py.
// Usage: parts_driver MODE [args] < input; prints plain lines.
#include <iostream>
#include <sstream>

#include <AIBridge/Json.mqh>
#include <AIBridge/Text.mqh>
#include <AIBridge/Protocol.mqh>
#include <AIBridge/LotSize.mqh>
#include <AIBridge/Risk.mqh>
#include <AIBridge/Trade.mqh>

static string read_all() {
  std::stringstream ss;
  ss << std::cin.rdbuf();
  return ss.str();
}
static std::string g(double v) {
  char b[64];
  std::snprintf(b, sizeof b, "%.17g", v);
  return b;
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  string mode = argv[1];
  if (mode == "parse") {
    CAibJson j;
    if (!j.Parse(read_all())) {
      std::cout << "ERROR\t" << j.Error() << "\n";
      return 0;
    }
    for (int i = 0; i < j.Count(); i++)
      std::cout << j.KeyAt(i) << "\t" << j.TypeAt(i) << "\t" << j.ValueAt(i) << "\n";
    return 0;
  }
  if (mode == "number") {  // one JSON number literal per line -> its double value
    string line;
    while (std::getline(std::cin, line)) std::cout << g(AIB_JsonNumberToDouble(line)) << "\n";
    return 0;
  }
  if (mode == "build_heartbeat") {
    // args: rid symbol tf client account magic utc_offset digits lot_digits;
    // stdin: one position per line: ticket side lots open_price sl tp open_time (0 = null)
    MqlArr<AibPosition> pos;
    long ticket, open_time;
    string side;
    double lots, price, sl, tp;
    int n = 0;
    while (std::cin >> ticket >> side >> lots >> price >> sl >> tp >> open_time) {
      ArrayResize(pos, n + 1);
      pos[n].ticket = ticket;
      pos[n].side = side;
      pos[n].lots = lots;
      pos[n].open_price = price;
      pos[n].sl = sl;
      pos[n].tp = tp;
      pos[n].open_time = open_time;
      n++;
    }
    std::cout << AIB_BuildHeartbeat(argv[2], argv[3], argv[4], argv[5], std::atol(argv[6]),
                                    std::atol(argv[7]), std::atol(argv[8]), pos, n,
                                    std::atoi(argv[9]), std::atoi(argv[10]));
    return 0;
  }
  if (mode == "build_predict") {  // args: rid symbol tf spread utc_offset digits; stdin: t o h l c v
    MqlArr<AibCandle> candles;
    long t, v;
    double o, h, l, c;
    int n = 0;
    while (std::cin >> t >> o >> h >> l >> c >> v) {
      ArrayResize(candles, n + 1);
      candles[n].time = t;
      candles[n].open = o;
      candles[n].high = h;
      candles[n].low = l;
      candles[n].close = c;
      candles[n].volume = v;
      n++;
    }
    std::cout << AIB_BuildPredict(argv[2], argv[3], argv[4], std::atoi(argv[5]),
                                  std::atol(argv[6]), candles, n, std::atoi(argv[7]));
    return 0;
  }
  if (mode == "build_trade_event") {  // args: rid digits lot_digits; stdin: key<TAB>value
    AibTradeEvent e;
    AIB_TradeEventInit(e);
    string line;
    while (std::getline(std::cin, line)) {
      size_t tab = line.find('\t');
      string k = line.substr(0, tab), v = line.substr(tab + 1);
      if (k == "event") e.event = v;
      else if (k == "symbol") e.symbol = v;
      else if (k == "timeframe") e.timeframe = v;
      else if (k == "ticket") e.ticket = std::atol(v.c_str());
      else if (k == "side") e.side = v;
      else if (k == "price") e.price = std::atof(v.c_str());
      else if (k == "lots") e.lots = std::atof(v.c_str());
      else if (k == "sl") e.sl = std::atof(v.c_str());
      else if (k == "tp") e.tp = std::atof(v.c_str());
      else if (k == "profit") { e.has_profit = true; e.profit = std::atof(v.c_str()); }
      else if (k == "error_code") e.error_code = std::atoi(v.c_str());
      else if (k == "magic") e.magic = std::atoi(v.c_str());
      else if (k == "time") e.time = std::atol(v.c_str());
      else if (k == "model_version") e.model_version = v;
      else if (k == "comment") e.comment = v;
      else if (k == "account") e.account = std::atol(v.c_str());
      else if (k == "reason") e.reason = v;
      else if (k == "seq") e.seq = std::atol(v.c_str());
      else if (k == "remainder_ticket") e.remainder_ticket = std::atol(v.c_str());
    }
    std::cout << AIB_BuildTradeEvent(argv[2], e, std::atoi(argv[3]), std::atoi(argv[4]));
    return 0;
  }
  if (mode == "read_reply") {  // status + heartbeat/prediction/ack fields, key<TAB>value
    CAibJson doc;
    if (!doc.Parse(read_all())) {
      std::cout << "parse_error\t" << doc.Error() << "\n";
      return 0;
    }
    AibReplyStatus st;
    AIB_StatusInit(st);
    std::cout << "envelope_ok\t" << AIB_ReadStatus(doc, st) << "\n";
    std::cout << "ok\t" << st.ok << "\nstatus\t" << st.status << "\ntype\t" << st.type
              << "\nrequest_id\t" << st.request_id << "\nprotocol_version\t" << st.protocol_version
              << "\ncode\t" << st.code << "\nmessage\t" << st.message << "\n";
    if (st.type == "heartbeat") {
      AibHeartbeat hb;
      bool usable = AIB_ReadHeartbeat(doc, hb);
      std::cout << "usable\t" << usable << "\nserver_version\t" << hb.server_version
                << "\nmodel.name\t" << hb.model_name << "\nmodel.version\t" << hb.model_version
                << "\nmodel.alias\t" << hb.model_alias << "\nmin_bars\t" << hb.min_bars
                << "\ndigits\t" << hb.digits << "\npoint\t" << g(hb.point) << "\nhas_risk\t"
                << hb.has_risk << "\nrisk.risk_per_trade_pct\t" << g(hb.risk_per_trade_pct)
                << "\nrisk.max_spread_points\t" << g(hb.max_spread_points)
                << "\nrisk.max_daily_drawdown_pct\t" << g(hb.max_daily_drawdown_pct)
                << "\nrisk.max_open_positions\t" << hb.max_open_positions
                << "\nrisk.max_total_lots\t" << g(hb.max_total_lots) << "\nrisk.min_confidence\t"
                << g(hb.min_confidence) << "\nrisk.trading_start_hour\t" << hb.trading_start_hour
                << "\nrisk.trading_end_hour\t" << hb.trading_end_hour << "\nrisk.min_lot_policy\t"
                << hb.min_lot_policy << "\nrisk.exposure_policy\t" << hb.exposure_policy
                << "\nmodel_status\t" << hb.model_status
                << "\nhas_exit_policy\t" << hb.has_exit_policy << "\nrisk.close_on_opposite\t"
                << hb.close_on_opposite << "\nrisk.max_hold_bars\t" << hb.max_hold_bars
                << "\nhas_instrument\t" << hb.has_instrument << "\ninstrument.digits\t"
                << hb.inst_digits << "\ninstrument.point\t" << g(hb.inst_point)
                << "\ninstrument.tick_size\t" << g(hb.inst_tick_size)
                << "\ninstrument.contract_size\t" << g(hb.inst_contract_size)
                << "\nhas_utc_offset\t" << hb.has_utc_offset << "\nutc_offset_s\t"
                << hb.utc_offset_s << "\nclock_check\t" << hb.clock_check << "\nhas_reconcile\t"
                << hb.has_reconcile << "\nreconcile.orphans\t" << hb.rec_orphans
                << "\nreconcile.unprotected\t" << hb.rec_unprotected
                << "\nreconcile.missing_closes\t" << hb.rec_missing_closes << "\n";
    } else if (st.type == "predict") {
      AibPrediction p;
      bool usable = AIB_ReadPrediction(doc, p);
      std::cout << "usable\t" << usable << "\naction\t" << p.action << "\nconfidence\t"
                << g(p.confidence) << "\nbar_time\t" << p.bar_time << "\nsl\t" << g(p.sl)
                << "\ntp\t" << g(p.tp) << "\nsl_points\t" << g(p.sl_points) << "\ntp_points\t"
                << g(p.tp_points) << "\nreason\t" << p.reason << "\nmodel_version\t"
                << p.model_version << "\n";
    } else if (st.type == "trade_event") {
      std::cout << "event_id\t" << AIB_ReadTradeEventAck(doc) << "\n";
    }
    return 0;
  }
  if (mode == "rules") {  // one case per line: NAME args... -> result
    string name;
    while (std::cin >> name) {
      if (name == "lots") {
        double eq, risk, sl, ts, tv, mn, mx, st;
        int use_min;
        std::cin >> eq >> risk >> sl >> ts >> tv >> mn >> mx >> st >> use_min;
        int reason = -1;
        double lots = AIB_LotsForRisk(eq, risk, sl, ts, tv, mn, mx, st, use_min != 0, reason);
        std::cout << g(lots) << " " << reason << "\n";
      } else if (name == "tick_value") {
        double fixed, price, q;
        int mode_;
        std::cin >> fixed >> mode_ >> price >> q;
        std::cout << g(AIB_TickValueFrom(fixed, mode_, price, q)) << "\n";
      } else if (name == "spread") {
        double a, b;
        std::cin >> a >> b;
        std::cout << AIB_SpreadOk(a, b) << "\n";
      } else if (name == "dd") {
        double a, b, c;
        std::cin >> a >> b >> c;
        std::cout << AIB_DailyDrawdownBreached(a, b, c) << "\n";
      } else if (name == "exposure") {
        int a, d;
        double b, c, e;
        std::cin >> a >> b >> c >> d >> e;
        std::cout << AIB_ExposureOk(a, b, c, d, e) << "\n";
      } else if (name == "shrink") {
        double lots, total, max_lots, mn, st;
        int on;
        std::cin >> lots >> total >> max_lots >> mn >> st >> on;
        std::cout << g(AIB_ShrinkToExposure(lots, total, max_lots, mn, st, on != 0)) << "\n";
      } else if (name == "hours") {
        int a, b, c;
        std::cin >> a >> b >> c;
        std::cout << AIB_TradingHourOk(a, b, c) << "\n";
      } else if (name == "widen") {
        double a, b, c, d, so = -1, to = -1;
        std::cin >> a >> b >> c >> d;
        AIB_WidenToStopLevel(a, b, c, d, so, to);
        std::cout << g(so) << " " << g(to) << "\n";
      } else if (name == "normalize") {
        double p;
        int d;
        std::cin >> p >> d;
        std::cout << g(AIB_NormalizePrice(p, d)) << "\n";
      } else if (name == "lot_reason") {
        int c;
        std::cin >> c;
        std::cout << AIB_LotReason(c) << "\n";
      } else if (name == "entry_reason") {
        int c;
        std::cin >> c;
        std::cout << AIB_EntryReason(c) << "\n";
      } else if (name == "veto") {
        double spread, max_spread, lots, open_lots, max_lots;
        int halted, hour, start, end, n_open, max_open;
        std::cin >> spread >> max_spread >> halted >> hour >> start >> end >> lots >> n_open >>
            open_lots >> max_open >> max_lots;
        std::cout << AIB_EntryVeto(spread, max_spread, halted != 0, hour, start, end, lots, n_open,
                                   open_lots, max_open, max_lots)
                  << "\n";
      } else if (name == "exit") {
        int d, s, held, opp, max_hold;
        std::cin >> d >> s >> held >> opp >> max_hold;
        std::cout << AIB_ExitReason(d, s, held, opp != 0, max_hold) << "\n";
      } else if (name == "retryable") {
        int c;
        std::cin >> c;
        std::cout << AIB_IsRetryableTradeError(c) << "\n";
      } else if (name == "lot_digits") {
        double s;
        std::cin >> s;
        std::cout << AIB_LotDigits(s) << "\n";
      } else if (name == "stops") {
        int cmd, d;
        double price, sld, tpd, sl = -1, tp = -1;
        std::cin >> cmd >> price >> sld >> tpd >> d;
        AIB_StopPrices(cmd, price, sld, tpd, d, sl, tp);
        std::cout << g(sl) << " " << g(tp) << "\n";
      } else if (name == "timeframe") {
        int m;
        std::cin >> m;
        string tf = AIB_TimeframeName(m);
        std::cout << (tf.empty() ? "-" : tf) << "\n";
      } else {
        std::cout << "unknown case " << name << "\n";
        return 3;
      }
    }
    return 0;
  }
  if (mode == "csv") {  // one field per line (LF written as \x01, CR as \x02)
    string line;
    while (std::getline(std::cin, line)) {
      for (char &ch : line) {
        if (ch == '\x01') ch = '\n';
        if (ch == '\x02') ch = '\r';
      }
      string f = AIB_CsvField(line);
      for (char &ch : f) {
        if (ch == '\n') ch = '\x01';
        if (ch == '\r') ch = '\x02';
      }
      std::cout << f << "\n";
    }
    return 0;
  }
  if (mode == "utf8") {  // encode + decode round trip of stdin (CP_UTF8 both ways)
    string text = read_all();
    MqlArr<uchar> bytes;
    int n = AIB_Utf8Encode(text, bytes);
    std::cout << n << "\t" << AIB_Utf8Decode(bytes, n);
    return 0;
  }
  std::cerr << "unknown mode\n";
  return 2;
}
