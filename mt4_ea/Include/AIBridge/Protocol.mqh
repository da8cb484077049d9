//+------------------------------------------------------------------+
//| AIBridge/Protocol.mqh                                            |
//| Protocol v1 messages (docs/protocol.md, src/aibridge/protocol.py)|
//|                                                                  |
//| Each builder emits its keys in the order of the golden fixture   |
//| named in its "fixture:" line (tests/fixtures/protocol/*.json,    |
//| the "request" object). tests/test_ea_sources.py rebuilds every   |
//| builder's key tree from this source and compares it with the     |
//| fixture and with the pydantic request model (which forbids       |
//| unknown keys); with g++ it also runs the builders and feeds the  |
//| output to aibridge.protocol.parse_request.                       |
//|                                                                  |
//| Each reader reads only keys present in the reply fixture named   |
//| in its "fixture:" line (also checked by the test).               |
//|                                                                  |
//| Pure MQL (no terminal calls), C++-compatible subset.             |
//+------------------------------------------------------------------+
#property strict

#include <AIBridge/Json.mqh>

#define AIB_PROTOCOL_VERSION 1
//--- request_id and model_version/comment limits from protocol.py
#define AIB_MAX_REQUEST_ID   64
#define AIB_MAX_MODEL_VER    32
#define AIB_MAX_COMMENT      256
#define AIB_MAX_CLIENT       128
#define AIB_MAX_POSITIONS    200
#define AIB_MAX_REASON       32

//+------------------------------------------------------------------+
//| MT4 Period() minutes -> protocol timeframe ("" if unsupported).  |
//| mirrors: aibridge.protocol.MT4_PERIOD_MINUTES                    |
//+------------------------------------------------------------------+
string AIB_TimeframeName(int minutes)
  {
   switch(minutes)
     {
      case 1:
         return "M1";
      case 5:
         return "M5";
      case 15:
         return "M15";
      case 30:
         return "M30";
      case 60:
         return "H1";
      case 240:
         return "H4";
      case 1440:
         return "D1";
      case 10080:
         return "W1";
      case 43200:
         return "MN1";
     }
   return "";
  }
//+------------------------------------------------------------------+
//| One candle as the EA sends it (a closed bar).                    |
//+------------------------------------------------------------------+
struct AibCandle
  {
   long              time;     // bar open time, MT4 datetime (broker server clock), seconds
   double            open;
   double            high;
   double            low;
   double            close;
   long              volume;   // tick volume
  };
//+------------------------------------------------------------------+
//| One open position of this EA, as the heartbeat reports it.       |
//+------------------------------------------------------------------+
struct AibPosition
  {
   long              ticket;
   string            side;           // BUY | SELL
   double            lots;
   double            open_price;
   double            sl;             // <= 0: none (sent as null)
   double            tp;             // <= 0: none (sent as null)
   long              open_time;      // MT4 datetime (broker server clock)
  };
//+------------------------------------------------------------------+
//| heartbeat request: who is asking (account, magic), the broker's  |
//| clock (utc_offset_s = TimeCurrent()-TimeGMT()) and the EA's open |
//| positions, which the server reconciles with its trade ledger.    |
//| fixture: heartbeat.json                                          |
//+------------------------------------------------------------------+
string AIB_BuildHeartbeat(string request_id,string symbol,string timeframe,string client,long account,
                          long magic,long utc_offset_s,const AibPosition &positions[],int count,int digits,
                          int lot_digits)
  {
   CAibJsonWriter w;
   w.ObjBegin();
   w.Int("protocol_version",AIB_PROTOCOL_VERSION);
   w.Str("type","heartbeat");
   w.Str("request_id",StringSubstr(request_id,0,AIB_MAX_REQUEST_ID));
   w.Str("symbol",symbol);
   w.Str("timeframe",timeframe);
   w.Str("client",StringSubstr(client,0,AIB_MAX_CLIENT));
   w.Int("account",account);
   w.Int("magic",magic);
   w.Int("utc_offset_s",utc_offset_s);
   w.ArrBeginKey("positions");
   for(int i=0; i<count && i<AIB_MAX_POSITIONS; i++)
     {
      w.ObjBegin();
      w.Int("ticket",positions[i].ticket);
      w.Str("side",positions[i].side);
      w.Num("lots",positions[i].lots,lot_digits);
      w.Num("open_price",positions[i].open_price,digits);
      if(positions[i].sl>0.0)
         w.Num("sl",positions[i].sl,digits);
      else
         w.Null("sl");
      if(positions[i].tp>0.0)
         w.Num("tp",positions[i].tp,digits);
      else
         w.Null("tp");
      w.Int("open_time",positions[i].open_time);
      w.ObjEnd();
     }
   w.ArrEnd();
   w.ObjEnd();
   return w.Text();
  }
//+------------------------------------------------------------------+
//| predict request: candles oldest first, [time,o,h,l,c,volume],    |
//| prices with the symbol's digits, spread in points (MODE_SPREAD). |
//| fixture: predict.json                                            |
//+------------------------------------------------------------------+
string AIB_BuildPredict(string request_id,string symbol,string timeframe,int spread_points,
                        long utc_offset_s,const AibCandle &candles[],int count,int digits)
  {
   CAibJsonWriter w;
   w.ObjBegin();
   w.Int("protocol_version",AIB_PROTOCOL_VERSION);
   w.Str("type","predict");
   w.Str("request_id",StringSubstr(request_id,0,AIB_MAX_REQUEST_ID));
   w.Str("symbol",symbol);
   w.Str("timeframe",timeframe);
   w.Int("spread_points",spread_points);
   w.Int("utc_offset_s",utc_offset_s);
   w.ArrBeginKey("candles");
   for(int i=0; i<count; i++)
     {
      w.ArrBegin();
      w.ValInt(candles[i].time);
      w.ValNum(candles[i].open,digits);
      w.ValNum(candles[i].high,digits);
      w.ValNum(candles[i].low,digits);
      w.ValNum(candles[i].close,digits);
      w.ValInt(candles[i].volume);
      w.ArrEnd();
     }
   w.ArrEnd();
   w.ObjEnd();
   return w.Text();
  }
//+------------------------------------------------------------------+
//| What the EA did with a decision.                                 |
//+------------------------------------------------------------------+
struct AibTradeEvent
  {
   string            event;          // order_sent | filled | rejected | modified | closed
   string            symbol;
   string            timeframe;
   long              ticket;         // <= 0: not sent
   string            side;           // BUY | SELL ("" : not sent)
   double            price;
   double            lots;
   double            sl;             // <= 0: not sent
   double            tp;             // <= 0: not sent
   bool              has_profit;     // true for "closed"
   double            profit;         // OrderProfit()+OrderSwap()+OrderCommission()
   int               error_code;     // MT4 GetLastError(), 0 = none
   int               magic;
   long              time;           // MT4 datetime (broker server clock)
   string            model_version;
   string            comment;
   long              account;        // AccountNumber(), 0 = not sent
   string            reason;         // closed: signal|time|sl|tp|unprotected|external; "" = not sent
   long              seq;            // per ticket and event kind, 0 = not sent
   long              remainder_ticket; // partial close: the ticket MT4 opened for the rest, 0 = none
  };
//+------------------------------------------------------------------+
//| Reset every field (MQL does not zero local structs).             |
//+------------------------------------------------------------------+
void AIB_TradeEventInit(AibTradeEvent &e)
  {
   e.event="";
   e.symbol="";
   e.timeframe="";
   e.ticket=0;
   e.side="";
   e.price=0.0;
   e.lots=0.0;
   e.sl=0.0;
   e.tp=0.0;
   e.has_profit=false;
   e.profit=0.0;
   e.error_code=0;
   e.magic=0;
   e.time=0;
   e.model_version="";
   e.comment="";
   e.account=0;
   e.reason="";
   e.seq=0;
   e.remainder_ticket=0;
  }
//+------------------------------------------------------------------+
//| trade_event request; optional keys are left out when unknown.    |
//| fixture: trade_event_filled.json                                 |
//| fixture: trade_event_rejected.json                               |
//+------------------------------------------------------------------+
string AIB_BuildTradeEvent(string request_id,const AibTradeEvent &e,int digits,int lot_digits)
  {
   CAibJsonWriter w;
   w.ObjBegin();
   w.Int("protocol_version",AIB_PROTOCOL_VERSION);
   w.Str("type","trade_event");
   w.Str("request_id",StringSubstr(request_id,0,AIB_MAX_REQUEST_ID));
   w.Str("event",e.event);
   w.Str("symbol",e.symbol);
   if(e.timeframe!="")
      w.Str("timeframe",e.timeframe);
   if(e.ticket>0)
      w.Int("ticket",e.ticket);
   if(e.side!="")
      w.Str("side",e.side);
   w.Num("price",e.price,digits);
   w.Num("lots",e.lots,lot_digits);
   if(e.sl>0.0)
      w.Num("sl",e.sl,digits);
   if(e.tp>0.0)
      w.Num("tp",e.tp,digits);
   if(e.has_profit)
      w.Num("profit",e.profit,2);
   w.Int("error_code",e.error_code);
   w.Int("magic",e.magic);
   w.Int("time",e.time);
   w.Str("model_version",StringSubstr(e.model_version,0,AIB_MAX_MODEL_VER));
   if(e.comment!="")
      w.Str("comment",StringSubstr(e.comment,0,AIB_MAX_COMMENT));
   if(e.account>0)
      w.Int("account",e.account);
   if(e.reason!="")
      w.Str("reason",StringSubstr(e.reason,0,AIB_MAX_REASON));
   if(e.seq>0)
      w.Int("seq",e.seq);
   if(e.remainder_ticket>0)
      w.Int("remainder_ticket",e.remainder_ticket);
   w.ObjEnd();
   return w.Text();
  }
//+------------------------------------------------------------------+
//| Common reply envelope. status "error" carries code + message.    |
//+------------------------------------------------------------------+
struct AibReplyStatus
  {
   bool              ok;             // status == "ok"
   string            status;
   string            type;
   string            request_id;
   long              protocol_version;
   string            code;           // error code (bad_json, schema, too_few_bars, ...)
   string            message;        // error message
  };
//+------------------------------------------------------------------+
void AIB_StatusInit(AibReplyStatus &st)
  {
   st.ok=false;
   st.status="";
   st.type="";
   st.request_id="";
   st.protocol_version=0;
   st.code="";
   st.message="";
  }
//+------------------------------------------------------------------+
//| Read the envelope; false when status is neither ok nor error.    |
//| fixture: error_too_few_bars.json                                 |
//+------------------------------------------------------------------+
bool AIB_ReadStatus(const CAibJson &doc,AibReplyStatus &st)
  {
   st.status=doc.GetString("status","");
   st.type=doc.GetString("type","");
   st.request_id=doc.GetString("request_id","");
   st.protocol_version=doc.GetLong("protocol_version",0);
   st.code=doc.GetString("code","");
   st.message=doc.GetString("message","");
   st.ok=(st.status=="ok");
   return st.status=="ok" || st.status=="error";
  }
//+------------------------------------------------------------------+
//| What a heartbeat tells the EA.                                   |
//+------------------------------------------------------------------+
struct AibHeartbeat
  {
   string            server_version;
   double            uptime_s;
   long              server_time;
   bool              has_model;
   string            model_name;
   string            model_version;
   string            model_alias;
   string            model_run_id;
   string            model_trained_at;
   string            model_symbol;
   string            model_timeframe;
   long              min_bars;       // 0: unknown (no model for this chart)
   long              digits;         // -1: not sent
   double            point;          // 0: not sent
   string            model_status;   // ok | reload_failed
   string            model_error;
   bool              has_risk;
   double            risk_per_trade_pct;
   double            max_spread_points;
   double            max_daily_drawdown_pct;
   long              max_open_positions;
   double            max_total_lots;
   double            min_confidence;
   long              trading_start_hour;   // server time, inclusive
   long              trading_end_hour;     // exclusive, wraps past midnight
   string            min_lot_policy;       // skip | use_min
   string            exposure_policy;      // shrink | skip (not sent: shrink)
   bool              has_exit_policy;      // risk.close_on_opposite and risk.max_hold_bars sent
   bool              close_on_opposite;
   long              max_hold_bars;        // 0 = no time exit
   bool              has_instrument;       // the served model's contract specs
   long              inst_digits;
   double            inst_point;
   double            inst_tick_size;
   double            inst_contract_size;
   bool              has_utc_offset;       // broker UTC offset of the model's training data
   long              utc_offset_s;
   string            clock_check;          // ok | mismatch | unknown ("" = not sent)
   bool              has_reconcile;
   long              rec_orphans;
   long              rec_unprotected;
   long              rec_missing_closes;
  };
//+------------------------------------------------------------------+
//| heartbeat reply                                                  |
//| fixture: heartbeat.json                                          |
//+------------------------------------------------------------------+
bool AIB_ReadHeartbeat(const CAibJson &doc,AibHeartbeat &hb)
  {
   hb.server_version=doc.GetString("server_version","");
   hb.uptime_s=doc.GetDouble("uptime_s",0.0);
   hb.server_time=doc.GetLong("server_time",0);
   hb.has_model=(doc.Type("model")==AIB_JSON_OBJECT);
   hb.model_name=doc.GetString("model.name","");
   hb.model_version=doc.GetText("model.version","");
   hb.model_alias=doc.GetString("model.alias","");
   hb.model_run_id=doc.GetString("model.run_id","");
   hb.model_trained_at=doc.GetString("model.trained_at","");
   hb.model_symbol=doc.GetString("model.symbol","");
   hb.model_timeframe=doc.GetString("model.timeframe","");
   hb.min_bars=doc.GetLong("min_bars",0);
   hb.digits=doc.GetLong("digits",-1);
   hb.point=doc.GetDouble("point",0.0);
   hb.model_status=doc.GetString("model_status","ok");
   hb.model_error=doc.GetString("model_error","");
   hb.has_risk=(doc.Type("risk")==AIB_JSON_OBJECT);
   hb.risk_per_trade_pct=doc.GetDouble("risk.risk_per_trade_pct",0.0);
   hb.max_spread_points=doc.GetDouble("risk.max_spread_points",0.0);
   hb.max_daily_drawdown_pct=doc.GetDouble("risk.max_daily_drawdown_pct",0.0);
   hb.max_open_positions=doc.GetLong("risk.max_open_positions",0);
   hb.max_total_lots=doc.GetDouble("risk.max_total_lots",0.0);
   hb.min_confidence=doc.GetDouble("risk.min_confidence",0.0);
   hb.trading_start_hour=doc.GetLong("risk.trading_start_hour",-1);
   hb.trading_end_hour=doc.GetLong("risk.trading_end_hour",-1);
   hb.min_lot_policy=doc.GetString("risk.min_lot_policy","");
   hb.exposure_policy=doc.GetString("risk.exposure_policy","shrink");
   hb.has_exit_policy=(doc.Type("risk.close_on_opposite")==AIB_JSON_BOOL &&
                       doc.Type("risk.max_hold_bars")==AIB_JSON_NUMBER);
   hb.close_on_opposite=doc.GetBool("risk.close_on_opposite",false);
   hb.max_hold_bars=doc.GetLong("risk.max_hold_bars",0);
   hb.has_instrument=(doc.Type("instrument")==AIB_JSON_OBJECT);
   hb.inst_digits=doc.GetLong("instrument.digits",-1);
   hb.inst_point=doc.GetDouble("instrument.point",0.0);
   hb.inst_tick_size=doc.GetDouble("instrument.tick_size",0.0);
   hb.inst_contract_size=doc.GetDouble("instrument.contract_size",0.0);
   hb.has_utc_offset=(doc.Type("utc_offset_s")==AIB_JSON_NUMBER);
   hb.utc_offset_s=doc.GetLong("utc_offset_s",0);
   hb.clock_check=doc.GetString("clock_check","");
   hb.has_reconcile=(doc.Type("reconcile")==AIB_JSON_OBJECT);
   hb.rec_orphans=doc.GetLong("reconcile.orphans",0);
   hb.rec_unprotected=doc.GetLong("reconcile.unprotected",0);
   hb.rec_missing_closes=doc.GetLong("reconcile.missing_closes",0);
   return hb.has_model && hb.model_version!="" && hb.min_bars>0;
  }
//+------------------------------------------------------------------+
//| A decision.                                                      |
//+------------------------------------------------------------------+
struct AibPrediction
  {
   string            symbol;
   string            timeframe;
   long              bar_time;
   string            action;         // BUY | SELL | HOLD
   double            confidence;
   double            p_buy;
   double            p_sell;
   double            p_hold;
   double            sl;             // price, 0 when null (HOLD)
   double            tp;
   double            sl_points;      // distance in the server's points, 0 when null
   double            tp_points;
   string            reason;         // signal | below_min_confidence | ...
   string            model;
   string            model_version;
  };
//+------------------------------------------------------------------+
//| predict reply (flat on purpose: cheap to read in MQL4)           |
//| fixture: predict.json                                            |
//+------------------------------------------------------------------+
bool AIB_ReadPrediction(const CAibJson &doc,AibPrediction &p)
  {
   p.symbol=doc.GetString("symbol","");
   p.timeframe=doc.GetString("timeframe","");
   p.bar_time=doc.GetLong("bar_time",0);
   p.action=doc.GetString("action","");
   p.confidence=doc.GetDouble("confidence",0.0);
   p.p_buy=doc.GetDouble("p_buy",0.0);
   p.p_sell=doc.GetDouble("p_sell",0.0);
   p.p_hold=doc.GetDouble("p_hold",0.0);
   p.sl=doc.GetDouble("sl",0.0);
   p.tp=doc.GetDouble("tp",0.0);
   p.sl_points=doc.GetDouble("sl_points",0.0);
   p.tp_points=doc.GetDouble("tp_points",0.0);
   p.reason=doc.GetString("reason","");
   p.model=doc.GetString("model","");
   p.model_version=doc.GetText("model_version","");
   return p.action=="BUY" || p.action=="SELL" || p.action=="HOLD";
  }
//+------------------------------------------------------------------+
//| trade_event reply: the journal row id on the server              |
//| fixture: trade_event_filled.json                                 |
//+------------------------------------------------------------------+
long AIB_ReadTradeEventAck(const CAibJson &doc)
  {
   return doc.GetLong("event_id",0);
  }
//+------------------------------------------------------------------+
