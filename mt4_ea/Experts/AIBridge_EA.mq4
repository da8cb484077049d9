//+------------------------------------------------------------------+
//| AIBridge_EA.mq4                                                  |
//| MT4 client of the aibridge signal server (protocol v1 over       |
//| ZeroMQ REQ/REP, JSON). On each new closed bar it sends the last  |
//| min_bars candles, gets BUY/SELL/HOLD with SL/TP distances, runs  |
//| the risk rules and - unless DryRun - places a market order; the  |
//| exit policy (opposite signal, time) closes positions like the    |
//| backtest does.                                                   |
//|                                                                  |
//| Install, inputs, journal and a demo forward-test checklist:      |
//| mt4_ea/README.md. Needs "Allow DLL imports" and libzmq.dll.       |
//| Software for research and demo testing, not investment advice.   |
//+------------------------------------------------------------------+
#property copyright   "aibridge"
#property version     "2.00"
#property description "aibridge signal-server client: ZeroMQ REQ, lazy-pirate timeouts, risk rules, CSV journal."
#property description "DryRun is on by default: the first attach only logs decisions."
#property strict

#include <AIBridge/Transport.mqh>
#include <AIBridge/Protocol.mqh>
#include <AIBridge/Risk.mqh>
#include <AIBridge/LotSize.mqh>
#include <AIBridge/Trade.mqh>
#include <AIBridge/Journal.mqh>

#define AIB_EA_NAME    "AIBridge_EA"
#define AIB_EA_VERSION "2.0"
#define AIB_MAX_PENDING_EVENTS 200

//--- Inputs: mt4_ea/README.md lists exactly these (tests/test_ea_sources.py checks it).
input string InpEndpoint         = "tcp://127.0.0.1:5555";  // Signal server endpoint
input int    InpRequestTimeoutMs = 1500;                    // Reply timeout per attempt (ms)
input int    InpRetries          = 2;                       // Retries after a timeout (lazy pirate)
input int    InpHeartbeatSec     = 30;                      // Heartbeat interval (s)
input string InpModelSymbol      = "";                      // Symbol sent to the server ("" = chart symbol)
input int    InpMagic            = 20261125;                // Magic number
input double InpRiskPct          = 1.0;                     // Risk per trade (% of equity)
input double InpMaxSpreadPoints  = 30.0;                    // Max spread (points, <=0 = off)
input double InpMaxDailyDDPct    = 3.0;                     // Max daily drawdown (%, <=0 = off)
input int    InpMaxOpenPositions = 1;                       // Max open positions (this EA, this symbol)
input double InpMaxTotalLots     = 5.0;                     // Max total lots (this EA, this symbol)
input double InpMinConfidence    = 0.45;                    // Min model confidence
input int    InpTradeStartHour   = 0;                       // Trading hours start (server time, inclusive)
input int    InpTradeEndHour     = 24;                      // Trading hours end (exclusive; start=end: always)
input bool   InpUseMinLot        = false;                   // Below min lot: trade min lot (false = skip)
input bool   InpCloseOnOpposite  = true;                    // Close a position on an opposite signal
input int    InpMaxHoldBars      = 24;                      // Time exit after this many bars (0 = none)
input bool   InpUseServerRisk    = true;                    // Heartbeat risk settings override the inputs above
input int    InpSlippagePoints   = 10;                      // Max slippage (points)
input int    InpOrderAttempts    = 3;                       // Order attempts (requote/off quotes/price/busy)
input bool   InpStopsAfterFill   = false;                   // ECN: set SL/TP with OrderModify after fill
input bool   InpCloseUnprotected = true;                    // Close a position whose SL cannot be set
input bool   InpCheckInstrument  = true;                    // Refuse to trade when the broker's specs differ from the model's
input string InpJournalFile      = "";                      // Journal CSV (MQL4/Files; "" = per chart)
input bool   InpJournalRequests  = false;                   // Journal full predict request JSON (large)
input bool   InpDryRun           = true;                    // Dry run: log decisions, send no orders

//--- connection and model state
CAibTransport g_transport;
CAibJournal   g_journal;
AibHeartbeat  g_hb;
string        g_symbol="";          // symbol name sent to the server
string        g_tf="";              // protocol timeframe of the chart
bool          g_hbOk=false;         // the LAST heartbeat succeeded: required to trade
bool          g_hbEverOk=false;
int           g_hbFailStreak=0;
string        g_hbError="";         // why the last heartbeat failed (chart comment)
uint          g_lastHbTick=0;
string        g_modelVersion="";
long          g_requestSeq=0;
datetime      g_lastBarTime=0;
string        g_lastLine="";        // last decision / skip, for the chart comment
int           g_lotDigits=2;

//--- risk settings in force (inputs, overridden by the heartbeat when InpUseServerRisk)
double        g_riskPct=0.0;
double        g_maxSpread=0.0;
double        g_maxDD=0.0;
int           g_maxPositions=0;
double        g_maxLots=0.0;
double        g_minConfidence=0.0;
int           g_tradeStartHour=0;
int           g_tradeEndHour=24;
bool          g_useMinLot=false;
bool          g_exposureShrink=true;   // risk.exposure_policy: shrink (default) | skip
bool          g_closeOnOpposite=true;
int           g_maxHoldBars=0;
string        g_riskSource="inputs";
string        g_riskLine="";

//--- daily drawdown, from the server day's starting equity; latched once breached
int           g_dayKey=-1;
double        g_dayStartEquity=0.0;
bool          g_ddLatched=false;

//--- our open tickets (to report "closed"), why the EA closed some of them, and trade
//--- events not yet acknowledged (kept in <journal>.pending across restarts)
int           g_tickets[];
int           g_closeTickets[];
string        g_closeReasons[];
string        g_pendingIds[];
string        g_pendingJson[];
string        g_pendingFile="";
bool          g_historySynced=false;

//--- the broker's contract specs agree with the model's (instrument handshake)
bool          g_instrumentOk=true;
string        g_instrumentMsg="";
string        g_clockMsg="";

//+------------------------------------------------------------------+
//| helpers                                                          |
//+------------------------------------------------------------------+
string Fmt(double value,int digits)
  {
   return DoubleToString(value,digits);
  }
//+------------------------------------------------------------------+
string NextId(string prefix)
  {
   g_requestSeq++;
   return prefix+"-"+IntegerToString(InpMagic)+"-"+IntegerToString(g_requestSeq);
  }
//+------------------------------------------------------------------+
string GvName(string suffix)
  {
   return "AIB_"+IntegerToString(AccountNumber())+"_"+IntegerToString(InpMagic)+"_"+Symbol()+"_"+suffix;
  }
//+------------------------------------------------------------------+
void Log(string event,string request_id,int error_code,string detail)
  {
   g_journal.Write(event,g_modelVersion,request_id,error_code,detail);
  }
//+------------------------------------------------------------------+
//| The broker clock's offset from UTC in seconds, rounded to 15 min |
//| (TimeCurrent is the last quote's time, TimeGMT the PC clock: the |
//| raw difference carries seconds of quote latency).                |
//+------------------------------------------------------------------+
long UtcOffset()
  {
   long raw=(long)(TimeCurrent()-TimeGMT());
   return (long)MathRound(raw/900.0)*900;
  }
//+------------------------------------------------------------------+
//| The model's point (from the heartbeat), else the chart's.        |
//+------------------------------------------------------------------+
double ModelPoint()
  {
   return (g_hb.point>0.0 ? g_hb.point : Point);
  }
//+------------------------------------------------------------------+
double TickSize()
  {
   double tick=MarketInfo(Symbol(),MODE_TICKSIZE);
   return (tick>0.0 ? tick : Point);
  }
//+------------------------------------------------------------------+
//| A price on the broker's tick grid and digits.                    |
//+------------------------------------------------------------------+
double NormPrice(double price)
  {
   return AIB_NormalizeToTick(price,TickSize(),Digits);
  }
//+------------------------------------------------------------------+
//| A bar we do not act on, always with the reason.                  |
//+------------------------------------------------------------------+
void SkipBar(string reason,string request_id,int error_code,string detail)
  {
   string text="skip bar "+TimeToString(Time[1])+": "+reason+(detail=="" ? "" : " ("+detail+")");
   Print("AIBridge: ",text);
   Log("skip",request_id,error_code,reason+(detail=="" ? "" : ": "+detail));
   g_lastLine=text;
   UpdateComment();
  }
//+------------------------------------------------------------------+
void RiskBlock(string rule,string request_id,string detail)
  {
   string text="no trade: "+rule+" ("+detail+")";
   Print("AIBridge: ",text);
   Log("risk_block",request_id,0,rule+": "+detail);
   g_lastLine=text;
   UpdateComment();
  }
//+------------------------------------------------------------------+
//| Chart comment: server, model, status, risk in force, last action |
//+------------------------------------------------------------------+
void UpdateComment()
  {
   string s=AIB_EA_NAME+" "+AIB_EA_VERSION+(InpDryRun ? "   [DRY RUN - no orders]" : "   [LIVE TRADING]")+"\n";
   s+="server "+InpEndpoint+"   ";
   if(g_hbOk)
      s+="OK (server "+g_hb.server_version+", rtt "+IntegerToString((int)g_transport.LastRttMs())+" ms)\n";
   else
      s+="NO HEARTBEAT - not trading ("+g_hbError+")\n";
   if(g_modelVersion!="")
      s+="model "+g_hb.model_name+" v"+g_modelVersion+(g_hb.model_alias=="" ? "" : " @"+g_hb.model_alias)+
         "   min_bars "+IntegerToString(g_hb.min_bars)+
         (g_hb.model_status=="ok" ? "" : (g_hb.model_status=="no_champion" ? "   NO CHAMPION (HOLD only): " :
                                           "   RELOAD FAILED: ")+g_hb.model_error)+"\n";
   else
      s+="model: unknown (no successful heartbeat yet)\n";
   s+="risk ("+g_riskSource+"): "+g_riskLine+"\n";
   s+="day start equity "+Fmt(g_dayStartEquity,2)+(g_ddLatched ? "   DAILY DRAWDOWN HALT" : "")+"\n";
   if(!g_instrumentOk)
      s+="NOT TRADING: "+g_instrumentMsg+"\n";
   if(g_clockMsg!="")
      s+="CLOCK: "+g_clockMsg+"\n";
   s+=g_lastLine;
   Comment(s);
  }
//+------------------------------------------------------------------+
//| Risk settings: inputs first; with InpUseServerRisk the heartbeat's|
//| "risk" block (the server's conf/risk, aibridge.risk.RiskSettings) |
//| overrides ALL of: risk %, max spread, max daily drawdown, max    |
//| positions, max total lots, min confidence, trading hours and the |
//| min-lot policy - so the EA, the emulator and the backtest        |
//| enforce the same numbers. Out-of-range server values are ignored |
//| (the input stays) and logged. Logs the values in force whenever  |
//| they change.                                                     |
//+------------------------------------------------------------------+
void ApplyRiskSettings()
  {
   double risk=InpRiskPct;
   double spread=InpMaxSpreadPoints;
   double dd=InpMaxDailyDDPct;
   int positions=InpMaxOpenPositions;
   double lots=InpMaxTotalLots;
   double conf=InpMinConfidence;
   int start_hour=InpTradeStartHour;
   int end_hour=InpTradeEndHour;
   bool use_min=InpUseMinLot;
   bool shrink=true;   // risk.exposure_policy; an older server does not send it: shrink
   bool close_opposite=InpCloseOnOpposite;
   int max_hold=InpMaxHoldBars;
   string source="inputs";
   string ignored="";
   if(InpUseServerRisk && g_hbOk && g_hb.has_risk)
     {
      source="server";
      if(g_hb.risk_per_trade_pct>0.0 && g_hb.risk_per_trade_pct<=100.0)
         risk=g_hb.risk_per_trade_pct;
      else
         ignored+=" risk_per_trade_pct";
      spread=g_hb.max_spread_points;
      dd=g_hb.max_daily_drawdown_pct;
      if(g_hb.max_open_positions>=0)
         positions=(int)g_hb.max_open_positions;
      else
         ignored+=" max_open_positions";
      if(g_hb.max_total_lots>=0.0)
         lots=g_hb.max_total_lots;
      else
         ignored+=" max_total_lots";
      if(g_hb.min_confidence>=0.0 && g_hb.min_confidence<=1.0)
         conf=g_hb.min_confidence;
      else
         ignored+=" min_confidence";
      if(g_hb.trading_start_hour>=0 && g_hb.trading_start_hour<=24 &&
         g_hb.trading_end_hour>=0 && g_hb.trading_end_hour<=24)
        {
         start_hour=(int)g_hb.trading_start_hour;
         end_hour=(int)g_hb.trading_end_hour;
        }
      else
         ignored+=" trading_hours";
      if(g_hb.min_lot_policy=="use_min" || g_hb.min_lot_policy=="skip")
         use_min=(g_hb.min_lot_policy=="use_min");
      else
         ignored+=" min_lot_policy";
      if(g_hb.exposure_policy=="shrink" || g_hb.exposure_policy=="skip")
         shrink=(g_hb.exposure_policy=="shrink");
      else
         ignored+=" exposure_policy";
      if(g_hb.has_exit_policy && g_hb.max_hold_bars>=0)
        {
         close_opposite=g_hb.close_on_opposite;
         max_hold=(int)g_hb.max_hold_bars;
        }
      else
         ignored+=" exit_policy";
      if(ignored!="")
         source+=" (kept inputs for:"+ignored+")";
     }
   string line="risk "+Fmt(risk,2)+"%, max spread "+Fmt(spread,1)+" pts, max daily DD "+Fmt(dd,2)+
               "%, max positions "+IntegerToString(positions)+", max lots "+Fmt(lots,2)+
               ", min confidence "+Fmt(conf,2)+", hours "+IntegerToString(start_hour)+"-"+
               IntegerToString(end_hour)+(use_min ? ", min lot if below" : ", skip if below min lot")+
               (shrink ? ", shrink to max lots" : ", skip past max lots")+
               ", exits: "+(close_opposite ? "opposite signal" : "no signal exit")+", "+
               (max_hold>0 ? "time "+IntegerToString(max_hold)+" bars" : "no time exit");
   bool changed=(line!=g_riskLine || source!=g_riskSource);
   g_riskPct=risk;
   g_maxSpread=spread;
   g_maxDD=dd;
   g_maxPositions=positions;
   g_maxLots=lots;
   g_minConfidence=conf;
   g_tradeStartHour=start_hour;
   g_tradeEndHour=end_hour;
   g_useMinLot=use_min;
   g_exposureShrink=shrink;
   g_closeOnOpposite=close_opposite;
   g_maxHoldBars=max_hold;
   g_riskSource=source;
   g_riskLine=line;
   if(changed)
     {
      Print("AIBridge: risk settings in force (",source,"): ",line);
      Log("risk_settings","",0,source+": "+line);
     }
  }
//+------------------------------------------------------------------+
//| One request/reply with journaling. True only for a well-formed   |
//| "ok" reply to THIS request; doc then holds the parsed reply.     |
//+------------------------------------------------------------------+
bool Exchange(string kind,string request_id,const string &request,CAibJson &doc,AibReplyStatus &st)
  {
   AIB_StatusInit(st);
   if(kind!="predict" || InpJournalRequests)
      Log(kind+"_request",request_id,0,request);
   else
      Log(kind+"_request",request_id,0,IntegerToString(StringLen(request))+" chars, "+
          IntegerToString(g_hb.min_bars)+" candles up to "+TimeToString(Time[1]));
   string reply="";
   if(!g_transport.Request(request,reply))
     {
      Log(kind+"_failed",request_id,-1,g_transport.LastError());
      return false;
     }
   Log(kind+"_reply",request_id,0,reply);
   if(!doc.Parse(reply))
     {
      Log(kind+"_bad_reply",request_id,-1,"unparseable JSON: "+doc.Error());
      return false;
     }
   if(!AIB_ReadStatus(doc,st))
     {
      Log(kind+"_bad_reply",request_id,-1,"no status in reply");
      return false;
     }
   if(!st.ok)
     {
      Log(kind+"_error",request_id,-1,"server error "+st.code+": "+st.message);
      Print("AIBridge: server error for ",kind," ",request_id,": ",st.code," - ",st.message);
      return false;
     }
   if(st.request_id!=request_id)
     {
      Log(kind+"_bad_reply",request_id,-1,"reply is for request_id '"+st.request_id+"'");
      return false;
     }
   if(st.protocol_version!=AIB_PROTOCOL_VERSION)
     {
      Log(kind+"_bad_reply",request_id,-1,"protocol_version "+IntegerToString(st.protocol_version)+
          ", this EA speaks "+IntegerToString(AIB_PROTOCOL_VERSION));
      return false;
     }
   return true;
  }
//+------------------------------------------------------------------+
//| Heartbeat: liveness, model, min_bars and risk rules.             |
//+------------------------------------------------------------------+
void Heartbeat()
  {
   g_lastHbTick=GetTickCount();
   string rid=NextId("hb");
   string client=AIB_EA_NAME+" "+AIB_EA_VERSION+" acct="+IntegerToString(AccountNumber())+
                 " magic="+IntegerToString(InpMagic)+(IsTesting() ? " tester" : "");
   AibPosition positions[];
   int count=CollectPositions(positions);
   string req=AIB_BuildHeartbeat(rid,g_symbol,g_tf,client,AccountNumber(),InpMagic,UtcOffset(),positions,count,
                                 Digits,g_lotDigits);
   CAibJson doc;
   AibReplyStatus st;
   bool ok=Exchange("heartbeat",rid,req,doc,st);
   if(!ok)
     {
      if(st.code!="")
         g_hbError="server error "+st.code+": "+st.message;
      else if(g_transport.LastError()!="")
         g_hbError=g_transport.LastError();
      else
         g_hbError="unusable reply (see the journal)";
     }
   //--- read straight into g_hb (no struct copies); g_modelVersion keeps the previous version
   else if(!AIB_ReadHeartbeat(doc,g_hb))
     {
      g_hbError="no model / min_bars for "+g_symbol+" "+g_tf;
      Log("heartbeat_bad_reply",rid,-1,g_hbError);
      ok=false;
     }
   if(!ok)
     {
      bool was=g_hbOk;
      g_hbOk=false;
      g_hbFailStreak++;
      if(was || g_hbFailStreak==1)
         Print("AIBridge: heartbeat failed, not trading until one succeeds: ",g_hbError);
      UpdateComment();
      return;
     }
   g_hbError="";
   //--- model version change (the server swapped to a new registered version)
   if(g_modelVersion!="" && g_hb.model_version!=g_modelVersion)
     {
      string change="model v"+g_modelVersion+" "+ShortToString(0x2192)+" v"+g_hb.model_version;
      Print("AIBridge: ",change," (",g_hb.model_name,")");
      Log("model_change",rid,0,change+" "+g_hb.model_name);
     }
   if(!g_hbEverOk || g_hb.model_version!=g_modelVersion)
     {
      Print("AIBridge: server ",InpEndpoint," (aibridge ",g_hb.server_version,") serves ",g_hb.model_name,
            " v",g_hb.model_version,(g_hb.model_alias=="" ? "" : " @"+g_hb.model_alias),", min_bars ",
            g_hb.min_bars);
      if(g_hb.digits>=0 && g_hb.digits!=Digits)
         Log("config_warning",rid,0,"server digits "+IntegerToString(g_hb.digits)+" != chart Digits "+
             IntegerToString(Digits)+": SL/TP distances use the server's point "+Fmt(g_hb.point,8));
     }
   if(g_hb.model_status=="no_champion")
      Log("model_no_champion",rid,0,g_hb.model_error);
   else if(g_hb.model_status!="ok")
      Log("model_reload_failed",rid,0,g_hb.model_error);
   if(!g_hbOk && g_hbEverOk)
      Print("AIBridge: heartbeat back after ",g_hbFailStreak," failure(s)");
   g_modelVersion=g_hb.model_version;
   g_hbOk=true;
   g_hbEverOk=true;
   g_hbFailStreak=0;
   ApplyRiskSettings();
   CheckInstrument(rid);
   CheckClock(rid);
   if(g_hb.has_reconcile && (g_hb.rec_orphans>0 || g_hb.rec_unprotected>0 || g_hb.rec_missing_closes>0))
     {
      string rec="server ledger: "+IntegerToString(g_hb.rec_orphans)+" orphan(s), "+
                 IntegerToString(g_hb.rec_unprotected)+" unprotected, "+IntegerToString(g_hb.rec_missing_closes)+
                 " missing close(s)";
      Log("ledger_mismatch",rid,0,rec);
      Print("AIBridge: WARNING ",rec);
     }
   FlushPendingEvents();
   if(!g_historySynced && ArraySize(g_pendingIds)==0)
      SyncHistory();
   UpdateComment();
  }
//+------------------------------------------------------------------+
//| Instrument handshake: the broker's contract specs must be the    |
//| model's (digits, point, tick size, contract size); otherwise the |
//| SL/TP points, spreads and lot sizes mean something else here.    |
//+------------------------------------------------------------------+
bool SameSpec(double a,double b)
  {
   return MathAbs(a-b)<=1e-9*MathMax(MathAbs(a),MathAbs(b));
  }
//+------------------------------------------------------------------+
void CheckInstrument(string rid)
  {
   string msg="";
   if(InpCheckInstrument && g_hb.has_instrument)
     {
      double b_point=MarketInfo(Symbol(),MODE_POINT);
      double b_tick=MarketInfo(Symbol(),MODE_TICKSIZE);
      double b_contract=MarketInfo(Symbol(),MODE_LOTSIZE);
      int b_digits=(int)MarketInfo(Symbol(),MODE_DIGITS);
      if(g_hb.inst_digits>=0 && g_hb.inst_digits!=b_digits)
         msg+=" digits "+IntegerToString(b_digits)+" vs model "+IntegerToString(g_hb.inst_digits)+";";
      if(g_hb.inst_point>0.0 && !SameSpec(g_hb.inst_point,b_point))
         msg+=" point "+Fmt(b_point,8)+" vs model "+Fmt(g_hb.inst_point,8)+";";
      if(g_hb.inst_tick_size>0.0 && !SameSpec(g_hb.inst_tick_size,b_tick))
         msg+=" tick size "+Fmt(b_tick,8)+" vs model "+Fmt(g_hb.inst_tick_size,8)+";";
      if(g_hb.inst_contract_size>0.0 && !SameSpec(g_hb.inst_contract_size,b_contract))
         msg+=" contract size "+Fmt(b_contract,2)+" vs model "+Fmt(g_hb.inst_contract_size,2)+";";
     }
   bool ok=(msg=="");
   if(!ok)
      msg="instrument mismatch on "+Symbol()+":"+msg+" fix InpModelSymbol/the model or set InpCheckInstrument=false";
   if(ok!=g_instrumentOk || msg!=g_instrumentMsg)
     {
      if(ok)
         Log("instrument_ok",rid,0,"broker specs match the model");
      else
        {
         Print("AIBridge: NOT TRADING - ",msg);
         Log("instrument_mismatch",rid,0,msg);
        }
     }
   g_instrumentOk=ok;
   g_instrumentMsg=msg;
  }
//+------------------------------------------------------------------+
//| Broker clock vs the clock of the model's training data: hour and |
//| weekday are features. The server decides (warn or refuse); the   |
//| EA shows it on the chart and journals every change.              |
//+------------------------------------------------------------------+
void CheckClock(string rid)
  {
   string msg="";
   if(g_hb.clock_check=="mismatch")
      msg="broker UTC offset "+IntegerToString(UtcOffset()/60)+" min, model trained on "+
          (g_hb.has_utc_offset ? IntegerToString(g_hb.utc_offset_s/60)+" min" : "unknown");
   if(msg!=g_clockMsg)
     {
      if(msg!="")
        {
         Print("AIBridge: WARNING clock mismatch: ",msg);
         Log("clock_mismatch",rid,0,msg);
        }
      else if(g_clockMsg!="")
         Log("clock_ok",rid,0,"broker clock agrees with the model");
     }
   g_clockMsg=msg;
  }
//+------------------------------------------------------------------+
//| This EA's open market positions on this symbol (for heartbeats). |
//+------------------------------------------------------------------+
int CollectPositions(AibPosition &positions[])
  {
   int n=0;
   ArrayResize(positions,0);
   for(int i=0; i<OrdersTotal() && n<AIB_MAX_POSITIONS; i++)
     {
      if(!OrderSelect(i,SELECT_BY_POS,MODE_TRADES))
         continue;
      if(OrderMagicNumber()!=InpMagic || OrderSymbol()!=Symbol())
         continue;
      if(OrderType()!=OP_BUY && OrderType()!=OP_SELL)
         continue;
      ArrayResize(positions,n+1);
      positions[n].ticket=OrderTicket();
      positions[n].side=(OrderType()==OP_BUY ? "BUY" : "SELL");
      positions[n].lots=OrderLots();
      positions[n].open_price=OrderOpenPrice();
      positions[n].sl=OrderStopLoss();
      positions[n].tp=OrderTakeProfit();
      positions[n].open_time=(long)OrderOpenTime();
      n++;
     }
   return n;
  }
//+------------------------------------------------------------------+
//| Trade events: reported to the server; kept and re-sent after the |
//| next good heartbeat if the server did not acknowledge them.      |
//+------------------------------------------------------------------+
bool SendTradeEvent(string request_id,const string &json)
  {
   CAibJson doc;
   AibReplyStatus st;
   if(!Exchange("trade_event",request_id,json,doc,st))
      return false;
   Log("trade_event_ack",request_id,0,"event_id "+IntegerToString(AIB_ReadTradeEventAck(doc)));
   return true;
  }
//+------------------------------------------------------------------+
void QueueEvent(string request_id,const string &json)
  {
   int n=ArraySize(g_pendingIds);
   for(int k=0; k<n; k++)
      if(g_pendingIds[k]==request_id)
         return;   // already queued (an event re-reported after a restart)
   if(n>=AIB_MAX_PENDING_EVENTS)
     {
      Log("trade_event_dropped",g_pendingIds[0],-1,"pending queue full: "+g_pendingJson[0]);
      for(int i=1; i<n; i++)
        {
         g_pendingIds[i-1]=g_pendingIds[i];
         g_pendingJson[i-1]=g_pendingJson[i];
        }
      n--;
     }
   ArrayResize(g_pendingIds,n+1);
   ArrayResize(g_pendingJson,n+1);
   g_pendingIds[n]=request_id;
   g_pendingJson[n]=json;
   SavePending();
  }
//+------------------------------------------------------------------+
void FlushPendingEvents()
  {
   int n=ArraySize(g_pendingIds);
   int sent=0;
   while(sent<n && SendTradeEvent(g_pendingIds[sent],g_pendingJson[sent]))
      sent++;
   if(sent==0)
      return;
   for(int i=sent; i<n; i++)
     {
      g_pendingIds[i-sent]=g_pendingIds[i];
      g_pendingJson[i-sent]=g_pendingJson[i];
     }
   ArrayResize(g_pendingIds,n-sent);
   ArrayResize(g_pendingJson,n-sent);
   SavePending();
  }
//+------------------------------------------------------------------+
//| Unacknowledged trade events survive a restart: one line per      |
//| event, "<request_id> <json>", rewritten on every change.         |
//+------------------------------------------------------------------+
void SavePending()
  {
   if(g_pendingFile=="")
      return;
   int h=FileOpen(g_pendingFile,FILE_BIN|FILE_WRITE);
   if(h==INVALID_HANDLE)
     {
      Log("pending_save_failed","",GetLastError(),g_pendingFile);
      return;
     }
   for(int i=0; i<ArraySize(g_pendingIds); i++)
     {
      uchar bytes[];
      int len=AIB_Utf8Encode(g_pendingIds[i]+" "+g_pendingJson[i]+"\n",bytes);
      if(len>0)
         FileWriteArray(h,bytes,0,len);
     }
   FileClose(h);
  }
//+------------------------------------------------------------------+
void LoadPending()
  {
   ArrayResize(g_pendingIds,0);
   ArrayResize(g_pendingJson,0);
   if(g_pendingFile=="" || !FileIsExist(g_pendingFile))
      return;
   int h=FileOpen(g_pendingFile,FILE_BIN|FILE_READ);
   if(h==INVALID_HANDLE)
     {
      Log("pending_load_failed","",GetLastError(),g_pendingFile);
      return;
     }
   int size=(int)FileSize(h);
   uchar bytes[];
   if(size>0)
      FileReadArray(h,bytes,0,size);
   FileClose(h);
   string text=AIB_Utf8Decode(bytes,size);
   int pos=0;
   int total=StringLen(text);
   while(pos<total)
     {
      int eol=StringFind(text,"\n",pos);
      if(eol<0)
         eol=total;
      if(eol>pos)
        {
         string line=StringSubstr(text,pos,eol-pos);
         int sp=StringFind(line," ");
         if(sp>0 && sp<StringLen(line)-1)
           {
            int n=ArraySize(g_pendingIds);
            ArrayResize(g_pendingIds,n+1);
            ArrayResize(g_pendingJson,n+1);
            g_pendingIds[n]=StringSubstr(line,0,sp);
            g_pendingJson[n]=StringSubstr(line,sp+1);
           }
        }
      pos=eol+1;
     }
   if(ArraySize(g_pendingIds)>0)
      Log("pending_loaded","",0,IntegerToString(ArraySize(g_pendingIds))+" unacknowledged trade event(s) from "+
          g_pendingFile);
  }
//+------------------------------------------------------------------+
//+------------------------------------------------------------------+
//| Trade-event ids are stable across restarts and unique across     |
//| charts: account + ticket + event kind + sequence per ticket      |
//| (without a ticket: account + magic + bar time). A re-sent event  |
//| has the same id, so the server stores it once.                   |
//+------------------------------------------------------------------+
string TradeEventId(const AibTradeEvent &e,long bar_time)
  {
   string acct="te-"+IntegerToString(AccountNumber())+"-";
   if(e.ticket>0)
      return acct+IntegerToString(e.ticket)+"-"+e.event+"-"+IntegerToString(e.seq);
   return acct+IntegerToString(InpMagic)+"-"+IntegerToString(bar_time)+"-"+e.event+"-"+IntegerToString(e.seq);
  }
//+------------------------------------------------------------------+
//| Next sequence number of a "modified" event for a ticket (kept in |
//| a terminal global variable, so it survives a restart).           |
//+------------------------------------------------------------------+
long NextModifySeq(long ticket)
  {
   string name=GvName("m"+IntegerToString(ticket));
   double seq=(GlobalVariableCheck(name) ? GlobalVariableGet(name) : 0.0)+1.0;
   GlobalVariableSet(name,seq);
   return (long)seq;
  }
//+------------------------------------------------------------------+
void ReportTradeEvent(AibTradeEvent &e,long bar_time)
  {
   e.symbol=g_symbol;
   e.timeframe=g_tf;
   e.magic=InpMagic;
   e.account=AccountNumber();
   e.model_version=g_modelVersion;
   if(e.seq<=0)
      e.seq=1;
   string rid=TradeEventId(e,bar_time);
   string json=AIB_BuildTradeEvent(rid,e,Digits,g_lotDigits);
   Log("trade_event",rid,e.error_code,e.event+" "+e.side+" ticket "+IntegerToString(e.ticket)+
       " lots "+Fmt(e.lots,g_lotDigits)+" price "+Fmt(e.price,Digits)+(e.reason=="" ? "" : " reason "+e.reason));
   if(!SendTradeEvent(rid,json))
      QueueEvent(rid,json);
  }
//+------------------------------------------------------------------+
//| Orders of this EA (magic) on this symbol.                        |
//+------------------------------------------------------------------+
void CountExposure(int &positions,double &lots)
  {
   positions=0;
   lots=0.0;
   for(int i=OrdersTotal()-1; i>=0; i--)
     {
      if(!OrderSelect(i,SELECT_BY_POS,MODE_TRADES))
         continue;
      if(OrderMagicNumber()!=InpMagic || OrderSymbol()!=Symbol())
         continue;
      if(OrderType()!=OP_BUY && OrderType()!=OP_SELL)
         continue;
      positions++;
      lots+=OrderLots();
     }
  }
//+------------------------------------------------------------------+
void TrackTicket(int ticket)
  {
   int n=ArraySize(g_tickets);
   for(int i=0; i<n; i++)
      if(g_tickets[i]==ticket)
         return;
   ArrayResize(g_tickets,n+1);
   g_tickets[n]=ticket;
  }
//+------------------------------------------------------------------+
void SeedTickets()
  {
   for(int i=OrdersTotal()-1; i>=0; i--)
     {
      if(!OrderSelect(i,SELECT_BY_POS,MODE_TRADES))
         continue;
      if(OrderMagicNumber()==InpMagic && OrderSymbol()==Symbol() &&
         (OrderType()==OP_BUY || OrderType()==OP_SELL))
         TrackTicket(OrderTicket());
     }
  }
//+------------------------------------------------------------------+
//| Report positions of ours that were closed (SL, TP, manually).    |
//+------------------------------------------------------------------+
void CheckClosedOrders()
  {
   for(int i=ArraySize(g_tickets)-1; i>=0; i--)
     {
      int ticket=g_tickets[i];
      if(!OrderSelect(ticket,SELECT_BY_TICKET))
         continue;
      if(OrderCloseTime()==0)
         continue;
      int n=ArraySize(g_tickets);
      g_tickets[i]=g_tickets[n-1];
      ArrayResize(g_tickets,n-1);
      ReportClosed(ticket);
     }
  }
//+------------------------------------------------------------------+
//| Why a position closed: the EA's own reason (signal, time,        |
//| unprotected), else MT4's comment ("[sl]", "[tp]"), else external |
//| (manual, stop-out, another program).                             |
//+------------------------------------------------------------------+
void SetCloseReason(int ticket,string reason)
  {
   int n=ArraySize(g_closeTickets);
   ArrayResize(g_closeTickets,n+1);
   ArrayResize(g_closeReasons,n+1);
   g_closeTickets[n]=ticket;
   g_closeReasons[n]=reason;
  }
//+------------------------------------------------------------------+
string TakeCloseReason(int ticket,string comment)
  {
   int n=ArraySize(g_closeTickets);
   for(int i=0; i<n; i++)
      if(g_closeTickets[i]==ticket)
        {
         string reason=g_closeReasons[i];
         g_closeTickets[i]=g_closeTickets[n-1];
         g_closeReasons[i]=g_closeReasons[n-1];
         ArrayResize(g_closeTickets,n-1);
         ArrayResize(g_closeReasons,n-1);
         return reason;
        }
   if(StringFind(comment,"[sl]")>=0)
      return "sl";
   if(StringFind(comment,"[tp]")>=0)
      return "tp";
   return "external";
  }
//+------------------------------------------------------------------+
//| The ticket MT4 opened for the rest of a partial close            |
//| (comment "to #<ticket>" on the closed part), or 0.               |
//+------------------------------------------------------------------+
long RemainderTicket(string comment)
  {
   int k=StringFind(comment,"to #");
   if(k<0)
      return 0;
   return StringToInteger(StringSubstr(comment,k+4));
  }
//+------------------------------------------------------------------+
//| Report a closed ticket (selected by the caller is not assumed).  |
//+------------------------------------------------------------------+
void ReportClosed(int ticket)
  {
   if(!OrderSelect(ticket,SELECT_BY_TICKET))
      return;
   AibTradeEvent e;
   AIB_TradeEventInit(e);
   e.event="closed";
   e.ticket=ticket;
   e.side=(OrderType()==OP_BUY ? "BUY" : "SELL");
   e.price=OrderClosePrice();
   e.lots=OrderLots();
   e.sl=OrderStopLoss();
   e.tp=OrderTakeProfit();
   e.has_profit=true;
   e.profit=OrderProfit()+OrderSwap()+OrderCommission();
   e.time=(long)OrderCloseTime();
   e.comment=OrderComment();
   e.reason=TakeCloseReason(ticket,e.comment);
   e.remainder_ticket=RemainderTicket(e.comment);
   long remainder=e.remainder_ticket;
   ReportTradeEvent(e,0);
   //--- a partial close leaves a new ticket open: track it and put it in the ledger
   if(remainder>0 && OrderSelect((int)remainder,SELECT_BY_TICKET) && OrderCloseTime()==0)
     {
      TrackTicket((int)remainder);
      AibTradeEvent r;
      AIB_TradeEventInit(r);
      r.event="filled";
      r.ticket=remainder;
      r.side=(OrderType()==OP_BUY ? "BUY" : "SELL");
      r.price=OrderOpenPrice();
      r.lots=OrderLots();
      r.sl=OrderStopLoss();
      r.tp=OrderTakeProfit();
      r.time=(long)OrderOpenTime();
      r.comment="remainder of #"+IntegerToString(ticket);
      ReportTradeEvent(r,0);
     }
  }
//+------------------------------------------------------------------+
//| After the first good heartbeat of a run: (re-)report every open  |
//| position (filled) and the positions closed in the last 7 days.   |
//| Ids are stable, so the server stores each event once; what was   |
//| lost while the EA was down (a close at SL during a restart)      |
//| reaches the ledger.                                              |
//+------------------------------------------------------------------+
void SyncHistory()
  {
   g_historySynced=true;
   int reported=0;
   for(int i=0; i<OrdersTotal(); i++)
     {
      if(!OrderSelect(i,SELECT_BY_POS,MODE_TRADES))
         continue;
      if(OrderMagicNumber()!=InpMagic || OrderSymbol()!=Symbol() || (OrderType()!=OP_BUY && OrderType()!=OP_SELL))
         continue;
      AibTradeEvent e;
      AIB_TradeEventInit(e);
      e.event="filled";
      e.ticket=OrderTicket();
      e.side=(OrderType()==OP_BUY ? "BUY" : "SELL");
      e.price=OrderOpenPrice();
      e.lots=OrderLots();
      e.sl=OrderStopLoss();
      e.tp=OrderTakeProfit();
      e.time=(long)OrderOpenTime();
      e.comment=OrderComment();
      ReportTradeEvent(e,0);
      reported++;
     }
   datetime since=TimeCurrent()-7*86400;
   int closed[];
   for(int j=OrdersHistoryTotal()-1; j>=0; j--)
     {
      if(!OrderSelect(j,SELECT_BY_POS,MODE_HISTORY))
         continue;
      if(OrderMagicNumber()!=InpMagic || OrderSymbol()!=Symbol() || (OrderType()!=OP_BUY && OrderType()!=OP_SELL))
         continue;
      if(OrderCloseTime()<since)
         continue;
      int n=ArraySize(closed);
      ArrayResize(closed,n+1);
      closed[n]=OrderTicket();
     }
   for(int k=0; k<ArraySize(closed); k++)
     {
      ReportClosed(closed[k]);
      reported++;
     }
   Log("history_synced","",0,IntegerToString(reported)+" trade event(s) re-reported (stored once by the server)");
  }
//+------------------------------------------------------------------+
//| Daily drawdown bookkeeping (server day; persisted in terminal    |
//| global variables so a restart mid-day keeps the day's start).    |
//+------------------------------------------------------------------+
void UpdateDay()
  {
   int key=(int)(TimeCurrent()/86400);
   if(key==g_dayKey)
      return;
   g_dayKey=key;
   g_dayStartEquity=AccountEquity();
   g_ddLatched=false;
   GlobalVariableSet(GvName("day"),key);
   GlobalVariableSet(GvName("equity"),g_dayStartEquity);
   GlobalVariableSet(GvName("ddhalt"),0);
   Log("new_day","",0,"day start equity "+Fmt(g_dayStartEquity,2));
  }
//+------------------------------------------------------------------+
//| On every tick and timer: the broker-day change (the day's start  |
//| equity is the equity at that moment) and the drawdown latch.     |
//+------------------------------------------------------------------+
void CheckDrawdown(string request_id)
  {
   UpdateDay();
   if(g_ddLatched)
      return;
   double equity=AccountEquity();
   if(!AIB_DailyDrawdownBreached(g_dayStartEquity,equity,g_maxDD))
      return;
   g_ddLatched=true;
   GlobalVariableSet(GvName("ddhalt"),1);
   Print("AIBridge: daily drawdown limit reached (equity ",Fmt(equity,2)," vs day start ",
         Fmt(g_dayStartEquity,2),"), no new trades until the next server day");
   Log("daily_drawdown_halt",request_id,0,"equity "+Fmt(equity,2)+" day start "+Fmt(g_dayStartEquity,2)+
       " limit "+Fmt(g_maxDD,2)+"%");
   UpdateComment();
  }
//+------------------------------------------------------------------+
void InitDay()
  {
   int key=(int)(TimeCurrent()/86400);
   if(!IsTesting() && GlobalVariableCheck(GvName("day")) && (int)GlobalVariableGet(GvName("day"))==key)
     {
      g_dayKey=key;
      g_dayStartEquity=GlobalVariableGet(GvName("equity"));
      g_ddLatched=(GlobalVariableGet(GvName("ddhalt"))>0.0);
      Log("day_restored","",0,"day start equity "+Fmt(g_dayStartEquity,2)+(g_ddLatched ? ", halted" : ""));
      return;
     }
   g_dayKey=-1;
   UpdateDay();
  }
//+------------------------------------------------------------------+
//| Tick value per lot. Live: the broker's MODE_TICKVALUE. In the    |
//| Strategy Tester MT4 keeps MODE_TICKVALUE at the terminal's       |
//| current rate, so for pairs whose base currency is the account    |
//| currency (USDJPY on a USD account) it is recomputed from the     |
//| bar's price with the shared rule (aibridge.instruments).         |
//+------------------------------------------------------------------+
double TickValue(string &source)
  {
   source="MODE_TICKVALUE";
   double tv=MarketInfo(Symbol(),MODE_TICKVALUE);
   if(IsTesting() && SymbolInfoString(Symbol(),SYMBOL_CURRENCY_BASE)==AccountCurrency() &&
      SymbolInfoString(Symbol(),SYMBOL_CURRENCY_PROFIT)!=AccountCurrency())
     {
      double fixed=MarketInfo(Symbol(),MODE_LOTSIZE)*MarketInfo(Symbol(),MODE_TICKSIZE);
      tv=AIB_TickValueFrom(fixed,AIB_TICK_VALUE_BASE_IS_ACCOUNT,Bid,1.0);
      source="tick_value_from(base=account, Bid)";
     }
   return tv;
  }
//+------------------------------------------------------------------+
//| Send a market order: retries only retryable errors, refreshing   |
//| the quote each time; reports filled / rejected (and modified).   |
//+------------------------------------------------------------------+
void SendOrder(int cmd,double lots,double sl_distance,double tp_distance,string request_id,long bar_time)
  {
   string side=(cmd==OP_BUY ? "BUY" : "SELL");
   //--- the comment carries the signal bar, so an order whose outcome is unknown can be found
   string tag=OrderTag(bar_time);
   string comment=StringSubstr(tag+" v"+g_modelVersion,0,31);
   int attempts=(InpOrderAttempts<1 ? 1 : InpOrderAttempts);
   int ticket=-1;
   int last_error=0;
   double price=0.0;
   double sl=0.0;
   double tp=0.0;
   for(int attempt=1; attempt<=attempts && !IsStopped(); attempt++)
     {
      if(IsTradeContextBusy())
        {
         last_error=AIB_ERR_TRADE_CONTEXT_BUSY;
         Log("order_error",request_id,last_error,AIB_TradeErrorText(last_error)+" - waiting, attempt "+
             IntegerToString(attempt)+"/"+IntegerToString(attempts));
         Sleep(500);
         continue;
        }
      RefreshRates();
      price=NormPrice(cmd==OP_BUY ? Ask : Bid);
      AIB_StopPrices(cmd,price,sl_distance,tp_distance,Digits,sl,tp);
      if(sl>0.0)
         sl=NormPrice(sl);
      if(tp>0.0)
         tp=NormPrice(tp);
      double send_sl=(InpStopsAfterFill ? 0.0 : sl);
      double send_tp=(InpStopsAfterFill ? 0.0 : tp);
      Log("order_attempt",request_id,0,side+" "+Fmt(lots,g_lotDigits)+" @ "+Fmt(price,Digits)+" sl "+
          Fmt(send_sl,Digits)+" tp "+Fmt(send_tp,Digits)+" attempt "+IntegerToString(attempt)+"/"+
          IntegerToString(attempts));
      ResetLastError();
      ticket=OrderSend(Symbol(),cmd,lots,price,InpSlippagePoints,send_sl,send_tp,
                       comment,InpMagic,0,(cmd==OP_BUY ? clrDodgerBlue : clrOrangeRed));
      if(ticket>0)
         break;
      last_error=GetLastError();
      if(AIB_IsUnknownOutcome(last_error))
        {
         //--- the trade server may have opened it: never report or retry before looking
         Log("order_error",request_id,last_error,AIB_TradeErrorText(last_error)+" - looking for the order");
         ticket=FindOrderByTag(tag,cmd);
         if(ticket<=0)
           {
            Sleep(1000);
            ticket=FindOrderByTag(tag,cmd);
           }
         if(ticket>0)
           {
            Log("order_found",request_id,last_error,"ticket "+IntegerToString(ticket)+" opened despite "+
                AIB_TradeErrorText(last_error));
            break;
           }
         Log("order_not_found",request_id,last_error,"no order with comment '"+tag+"' - not retried (could double)");
         break;
        }
      Log("order_error",request_id,last_error,AIB_TradeErrorText(last_error)+
          (AIB_IsRetryableTradeError(last_error) ? " - retrying with a fresh quote" : " - final"));
      if(!AIB_IsRetryableTradeError(last_error))
         break;
      Sleep(250);
     }
   AibTradeEvent e;
   AIB_TradeEventInit(e);
   e.side=side;
   e.lots=lots;
   e.time=(long)TimeCurrent();
   if(ticket<=0)
     {
      e.event="rejected";
      e.price=price;
      e.error_code=last_error;
      e.comment=AIB_TradeErrorText(last_error);
      Log("order_result",request_id,last_error,"rejected: "+AIB_TradeErrorText(last_error));
      g_lastLine=side+" rejected: "+AIB_TradeErrorText(last_error);
      ReportTradeEvent(e,bar_time);
      return;
     }
   TrackTicket(ticket);
   e.event="filled";
   e.ticket=ticket;
   e.price=price;
   e.sl=sl;
   e.tp=tp;
   e.comment=comment;
   if(OrderSelect(ticket,SELECT_BY_TICKET))
     {
      e.price=OrderOpenPrice();
      e.lots=OrderLots();
      e.sl=OrderStopLoss();
      e.tp=OrderTakeProfit();
      e.time=(long)OrderOpenTime();
     }
   Log("order_result",request_id,0,"filled ticket "+IntegerToString(ticket)+" "+side+" "+Fmt(e.lots,g_lotDigits)+
       " @ "+Fmt(e.price,Digits));
   g_lastLine=side+" filled, ticket "+IntegerToString(ticket);
   ReportTradeEvent(e,bar_time);
   if(InpStopsAfterFill && (sl>0.0 || tp>0.0))
      SetStopsAfterFill(ticket,cmd,sl_distance,tp_distance,request_id);
  }
//+------------------------------------------------------------------+
//| "aib <signal bar time>": the order's identity in its comment.    |
//+------------------------------------------------------------------+
string OrderTag(long bar_time)
  {
   return "aib "+IntegerToString(bar_time);
  }
//+------------------------------------------------------------------+
//| An order of ours (magic, symbol, type) whose comment starts with  |
//| tag: open first, then the history (it may already have closed).  |
//+------------------------------------------------------------------+
int FindOrderByTag(string tag,int cmd)
  {
   for(int i=OrdersTotal()-1; i>=0; i--)
     {
      if(!OrderSelect(i,SELECT_BY_POS,MODE_TRADES))
         continue;
      if(OrderMagicNumber()==InpMagic && OrderSymbol()==Symbol() && OrderType()==cmd &&
         StringFind(OrderComment(),tag)==0)
         return OrderTicket();
     }
   int checked=0;
   for(int j=OrdersHistoryTotal()-1; j>=0 && checked<50; j--)
     {
      if(!OrderSelect(j,SELECT_BY_POS,MODE_HISTORY))
         continue;
      checked++;
      if(OrderMagicNumber()==InpMagic && OrderSymbol()==Symbol() && OrderType()==cmd &&
         StringFind(OrderComment(),tag)==0)
         return OrderTicket();
     }
   return -1;
  }
//+------------------------------------------------------------------+
//| Close a position at market (Bid for a buy, Ask for a sell) with  |
//| the same retry rules as entries; the "closed" trade event is     |
//| sent by CheckClosedOrders with this reason. True when closed.    |
//+------------------------------------------------------------------+
bool CloseOrder(int ticket,string reason,string request_id)
  {
   int attempts=(InpOrderAttempts<1 ? 1 : InpOrderAttempts);
   int last_error=0;
   bool done=false;
   for(int attempt=1; attempt<=attempts && !IsStopped() && !done; attempt++)
     {
      if(!OrderSelect(ticket,SELECT_BY_TICKET))
        {
         last_error=GetLastError();
         break;
        }
      if(OrderCloseTime()!=0)
        {
         done=true;   // closed already (SL/TP, or an earlier attempt that timed out but went through)
         break;
        }
      if(IsTradeContextBusy())
        {
         last_error=AIB_ERR_TRADE_CONTEXT_BUSY;
         Log("close_error",request_id,last_error,"ticket "+IntegerToString(ticket)+": "+
             AIB_TradeErrorText(last_error)+" - waiting");
         Sleep(500);
         continue;
        }
      RefreshRates();
      double price=NormPrice(OrderType()==OP_BUY ? Bid : Ask);
      double lots=OrderLots();
      Log("close_attempt",request_id,0,"ticket "+IntegerToString(ticket)+" "+Fmt(lots,g_lotDigits)+" @ "+
          Fmt(price,Digits)+" reason "+reason+" attempt "+IntegerToString(attempt)+"/"+IntegerToString(attempts));
      ResetLastError();
      if(OrderClose(ticket,lots,price,InpSlippagePoints,clrYellow))
        {
         done=true;
         break;
        }
      last_error=GetLastError();
      Log("close_error",request_id,last_error,"ticket "+IntegerToString(ticket)+": "+AIB_TradeErrorText(last_error));
      if(AIB_IsUnknownOutcome(last_error))
        {
         Sleep(1000);
         if(OrderSelect(ticket,SELECT_BY_TICKET) && OrderCloseTime()!=0)
           {
            done=true;
            break;
           }
         continue;   // still open: closing again cannot double anything
        }
      if(!AIB_IsRetryableTradeError(last_error))
         break;
      Sleep(250);
     }
   if(done)
     {
      SetCloseReason(ticket,reason);
      CheckClosedOrders();
      return true;
     }
   string msg="could not close ticket "+IntegerToString(ticket)+" ("+reason+"): "+AIB_TradeErrorText(last_error);
   Print("AIBridge: WARNING ",msg);
   Log("close_failed",request_id,last_error,msg);
   g_lastLine=msg;
   return false;
  }
//+------------------------------------------------------------------+
//| The exit policy at a new bar's open (one trade model: the same   |
//| rule as the backtest, aibridge.risk.exit_reason). signal: +1 BUY,|
//| -1 SELL, 0 HOLD or no decision (then only the time exit acts).   |
//+------------------------------------------------------------------+
void ManageExits(int signal,string request_id)
  {
   int tickets[];
   int reasons[];
   for(int i=0; i<OrdersTotal(); i++)
     {
      if(!OrderSelect(i,SELECT_BY_POS,MODE_TRADES))
         continue;
      if(OrderMagicNumber()!=InpMagic || OrderSymbol()!=Symbol() || (OrderType()!=OP_BUY && OrderType()!=OP_SELL))
         continue;
      int direction=(OrderType()==OP_BUY ? 1 : -1);
      int held=iBarShift(Symbol(),Period(),OrderOpenTime(),false);
      int code=AIB_ExitReason(direction,signal,held,g_closeOnOpposite,g_maxHoldBars);
      if(code==AIB_EXIT_NONE)
         continue;
      int n=ArraySize(tickets);
      ArrayResize(tickets,n+1);
      ArrayResize(reasons,n+1);
      tickets[n]=OrderTicket();
      reasons[n]=code;
     }
   for(int k=0; k<ArraySize(tickets); k++)
     {
      Log("exit_signal",request_id,0,"ticket "+IntegerToString(tickets[k])+" "+AIB_ExitName(reasons[k]));
      CloseOrder(tickets[k],AIB_ExitName(reasons[k]),request_id);
     }
  }
//+------------------------------------------------------------------+
//| ECN accounts: SL/TP from the real fill price via OrderModify.    |
//+------------------------------------------------------------------+
void SetStopsAfterFill(int ticket,int cmd,double sl_distance,double tp_distance,string request_id)
  {
   if(!OrderSelect(ticket,SELECT_BY_TICKET))
      return;
   double open_price=OrderOpenPrice();
   double sl=0.0;
   double tp=0.0;
   int attempts=(InpOrderAttempts<1 ? 1 : InpOrderAttempts);
   int last_error=0;
   bool done=false;
   for(int attempt=1; attempt<=attempts && !IsStopped() && !done; attempt++)
     {
      RefreshRates();
      //--- from the fill price, but never closer to the market than max(STOPLEVEL, FREEZELEVEL)
      //--- plus the spread (MT4 rejects those with 130, or 145 inside the freeze level)
      AIB_StopPrices(cmd,open_price,sl_distance,tp_distance,Digits,sl,tp);
      double min_dist=MathMax(MarketInfo(Symbol(),MODE_STOPLEVEL),MarketInfo(Symbol(),MODE_FREEZELEVEL))*Point+
                      (Ask-Bid);
      if(cmd==OP_BUY)
        {
         if(sl>0.0 && sl>Bid-min_dist)
            sl=Bid-min_dist;
         if(tp>0.0 && tp<Bid+min_dist)
            tp=Bid+min_dist;
        }
      else
        {
         if(sl>0.0 && sl<Ask+min_dist)
            sl=Ask+min_dist;
         if(tp>0.0 && tp>Ask-min_dist)
            tp=Ask-min_dist;
        }
      if(sl>0.0)
         sl=NormPrice(sl);
      if(tp>0.0)
         tp=NormPrice(tp);
      ResetLastError();
      done=OrderModify(ticket,open_price,sl,tp,0,clrNONE);
      if(done)
         break;
      last_error=GetLastError();
      Log("order_error",request_id,last_error,"OrderModify sl "+Fmt(sl,Digits)+" tp "+Fmt(tp,Digits)+": "+
          AIB_TradeErrorText(last_error)+" attempt "+IntegerToString(attempt)+"/"+IntegerToString(attempts));
      if(!AIB_IsRetryableTradeError(last_error) && last_error!=AIB_ERR_INVALID_STOPS &&
         last_error!=AIB_ERR_TRADE_MODIFY_DENIED)
         break;
      Sleep(250);
     }
   AibTradeEvent e;
   AIB_TradeEventInit(e);
   e.event="modified";
   e.ticket=ticket;
   e.seq=NextModifySeq(ticket);
   e.side=(cmd==OP_BUY ? "BUY" : "SELL");
   e.price=open_price;
   e.lots=OrderLots();
   e.sl=(done ? sl : 0.0);
   e.tp=(done ? tp : 0.0);
   e.error_code=(done ? 0 : last_error);
   e.time=(long)TimeCurrent();
   e.comment=(done ? "stops set after fill" : "UNPROTECTED: "+AIB_TradeErrorText(last_error));
   e.reason=(done ? "stops_after_fill" : "unprotected");
   ReportTradeEvent(e,0);
   if(done)
      return;
   string msg="ticket "+IntegerToString(ticket)+" has no stop loss: "+AIB_TradeErrorText(last_error);
   Print("AIBridge: WARNING ",msg);
   Log("unprotected_position",request_id,last_error,msg+(InpCloseUnprotected ? " - closing it" : " - left open"));
   Alert("AIBridge: ",msg,(InpCloseUnprotected ? " - closing it" : " - LEFT OPEN, set the stop by hand"));
   if(InpCloseUnprotected)
      CloseOrder(ticket,"unprotected",request_id);
  }
//+------------------------------------------------------------------+
//| The risk rules, then the order (or the dry-run line).            |
//| Order: min confidence (the server already turns a low-confidence |
//| BUY/SELL into HOLD; this catches a stricter local input), daily  |
//| drawdown latch, SL/TP distances widened to MODE_STOPLEVEL, lot   |
//| size, then AIB_EntryVeto (spread, drawdown halt, hours, lots,    |
//| exposure - the fixed order of aibridge.risk.entry_veto), then    |
//| AccountFreeMarginCheck, then DryRun or OrderSend.                |
//+------------------------------------------------------------------+
void TryTrade(const AibPrediction &p,string request_id)
  {
   int cmd=(p.action=="BUY" ? OP_BUY : OP_SELL);
   if(p.confidence<g_minConfidence)
     {
      RiskBlock("min_confidence",request_id,Fmt(p.confidence,4)+" < "+Fmt(g_minConfidence,4));
      return;
     }
   if(!g_instrumentOk)
     {
      RiskBlock("instrument_mismatch",request_id,g_instrumentMsg);
      return;
     }
   RefreshRates();
   //--- daily drawdown from the day's starting equity (after this bar's exits), latched
   CheckDrawdown(request_id);
   double equity=AccountEquity();
   //--- SL/TP distances in price units: the server's points x the server's point size
   double point=ModelPoint();
   double sl_distance=p.sl_points*point;
   double tp_distance=p.tp_points*point;
   if(sl_distance<=0.0)
     {
      RiskBlock("no_stop_loss",request_id,"sl_points "+Fmt(p.sl_points,1));
      return;
     }
   double stop_level=MarketInfo(Symbol(),MODE_STOPLEVEL)*Point;
   double spread_price=Ask-Bid;
   AIB_WidenToStopLevel(sl_distance,tp_distance,spread_price,stop_level,sl_distance,tp_distance);
   //--- lots from risk money and the (widened) SL distance
   string tv_source="";
   double tick_value=TickValue(tv_source);
   double tick_size=MarketInfo(Symbol(),MODE_TICKSIZE);
   double lot_min=MarketInfo(Symbol(),MODE_MINLOT);
   double lot_max=MarketInfo(Symbol(),MODE_MAXLOT);
   double lot_step=MarketInfo(Symbol(),MODE_LOTSTEP);
   g_lotDigits=AIB_LotDigits(lot_step);
   int lot_reason=AIB_LOT_OK;
   double lots=AIB_LotsForRisk(equity,g_riskPct,sl_distance,tick_size,tick_value,lot_min,lot_max,lot_step,
                               g_useMinLot,lot_reason);
   //--- exposure policy: shrink an order past max_total_lots to the room left (or leave it
   //--- to AIB_EntryVeto's exposure check when skipping)
   int positions=0;
   double open_lots=0.0;
   CountExposure(positions,open_lots);
   double risk_lots=lots;
   lots=AIB_ShrinkToExposure(lots,open_lots,g_maxLots,lot_min,lot_step,g_exposureShrink);
   string shrink_note=(lots<risk_lots ? " shrunk to "+Fmt(lots,g_lotDigits)+" (open "+Fmt(open_lots,2)+
                       " of max "+Fmt(g_maxLots,2)+" lots)" : "");
   Log("lot_size",request_id,0,"equity "+Fmt(equity,2)+" risk "+Fmt(g_riskPct,2)+"% sl "+Fmt(sl_distance,Digits)+
       " tick_size "+Fmt(tick_size,Digits)+" tick_value "+Fmt(tick_value,5)+" ("+tv_source+") lots "+
       Fmt(lot_min,2)+"-"+Fmt(lot_max,2)+" step "+Fmt(lot_step,3)+" -> "+Fmt(risk_lots,g_lotDigits)+" ("+
       AIB_LotReason(lot_reason)+")"+shrink_note);
   //--- the shared veto, in the shared order; the spread in the model's points (one unit
   //--- with max_spread_points, whatever the broker's digits)
   double spread_points=MarketInfo(Symbol(),MODE_SPREAD)*Point/point;
   int hour=TimeHour(TimeCurrent());
   int veto=AIB_EntryVeto(spread_points,g_maxSpread,g_ddLatched,hour,g_tradeStartHour,g_tradeEndHour,
                          lots,positions,open_lots,g_maxPositions,g_maxLots);
   if(veto!=AIB_ENTRY_OK)
     {
      RiskBlock(AIB_EntryReason(veto),request_id,"spread "+Fmt(spread_points,0)+"/"+Fmt(g_maxSpread,0)+
                " pts, hour "+IntegerToString(hour)+" in "+IntegerToString(g_tradeStartHour)+"-"+
                IntegerToString(g_tradeEndHour)+", lots "+Fmt(lots,g_lotDigits)+" ("+AIB_LotReason(lot_reason)+
                "), open "+IntegerToString(positions)+"/"+IntegerToString(g_maxPositions)+" positions "+
                Fmt(open_lots,2)+"/"+Fmt(g_maxLots,2)+" lots"+(g_ddLatched ? ", daily drawdown halt" : ""));
      return;
     }
   ResetLastError();
   double margin_after=AccountFreeMarginCheck(Symbol(),cmd,lots);
   int margin_error=GetLastError();
   if(margin_after<=0.0 || margin_error==AIB_ERR_NOT_ENOUGH_MONEY)
     {
      RiskBlock("margin",request_id,"free margin after "+Fmt(margin_after,2)+", error "+IntegerToString(margin_error));
      return;
     }
   if(InpDryRun)
     {
      double price=(cmd==OP_BUY ? Ask : Bid);
      double sl=0.0;
      double tp=0.0;
      AIB_StopPrices(cmd,NormPrice(price),sl_distance,tp_distance,Digits,sl,tp);
      string text="DRY RUN "+p.action+" "+Fmt(lots,g_lotDigits)+" @ "+Fmt(price,Digits)+" sl "+Fmt(sl,Digits)+
                  " tp "+Fmt(tp,Digits)+" (confidence "+Fmt(p.confidence,3)+")";
      Print("AIBridge: ",text);
      Log("dry_run",request_id,0,text);
      g_lastLine=text;
      UpdateComment();
      return;
     }
   //--- IsTradeAllowed() is also false while the trade context is busy: that is retried in
   //--- SendOrder, not a reason to drop the signal
   if(!IsExpertEnabled() || !IsTradeAllowed(Symbol(),TimeCurrent()))
     {
      RiskBlock("trade_not_allowed",request_id,"AutoTrading is off or the symbol is not tradable now");
      return;
     }
   SendOrder(cmd,lots,sl_distance,tp_distance,request_id,(long)Time[1]);
   UpdateComment();
  }
//+------------------------------------------------------------------+
//| A new bar closed: ask the server, then maybe trade.              |
//+------------------------------------------------------------------+
void OnNewBar()
  {
   string rid=g_symbol+"-"+g_tf+"-"+IntegerToString((long)Time[1]);
   if(!g_hbOk)
     {
      Heartbeat();
      if(!g_hbOk)
        {
         ManageExits(0,rid);   // no decision: the time exit still applies
         SkipBar("no_heartbeat",rid,-1,g_hbError);
         return;
        }
     }
   int need=(int)g_hb.min_bars;
   if(Bars-1<need)
     {
      ManageExits(0,rid);
      SkipBar("not_enough_history",rid,0,IntegerToString(Bars-1)+" closed bars < min_bars "+IntegerToString(need));
      return;
     }
   //--- closed bars only (shift 1..need), oldest first
   AibCandle candles[];
   ArrayResize(candles,need);
   for(int k=0; k<need; k++)
     {
      int shift=need-k;
      candles[k].time=(long)Time[shift];
      candles[k].open=Open[shift];
      candles[k].high=High[shift];
      candles[k].low=Low[shift];
      candles[k].close=Close[shift];
      candles[k].volume=(long)Volume[shift];
     }
   int spread=(int)MarketInfo(Symbol(),MODE_SPREAD);
   string req=AIB_BuildPredict(rid,g_symbol,g_tf,spread,UtcOffset(),candles,need,Digits);
   CAibJson doc;
   AibReplyStatus st;
   if(!Exchange("predict",rid,req,doc,st))
     {
      ManageExits(0,rid);
      string why=(st.code!="" ? "server error "+st.code+": "+st.message : g_transport.LastError());
      SkipBar("predict_failed",rid,-1,why);
      if(st.code=="too_few_bars")
         Heartbeat();   // the model (and its min_bars) may have changed
      return;
     }
   AibPrediction p;
   if(!AIB_ReadPrediction(doc,p))
     {
      ManageExits(0,rid);
      SkipBar("bad_predict_reply",rid,-1,"action '"+p.action+"'");
      return;
     }
   if(p.bar_time!=(long)Time[1])
     {
      ManageExits(0,rid);
      SkipBar("stale_reply",rid,-1,"bar_time "+IntegerToString(p.bar_time)+" != "+IntegerToString((long)Time[1]));
      return;
     }
   string decision=p.action+" conf "+Fmt(p.confidence,3)+" (buy "+Fmt(p.p_buy,3)+" sell "+Fmt(p.p_sell,3)+
                   " hold "+Fmt(p.p_hold,3)+") sl "+Fmt(p.sl_points,0)+" pts tp "+Fmt(p.tp_points,0)+
                   " pts reason "+p.reason+" model v"+p.model_version+" rtt "+
                   IntegerToString((int)g_transport.LastRttMs())+" ms";
   Log("decision",rid,0,decision);
   g_lastLine=TimeToString(Time[1])+" "+decision;
   if(p.model_version!=g_modelVersion)
     {
      //--- the server swapped models since our last heartbeat: refresh model + risk now
      Log("model_change_seen",rid,0,"predict answered by v"+p.model_version+", heartbeat said v"+g_modelVersion);
      Heartbeat();
     }
   //--- exits first (opposite signal, time), then the entry - the backtest's order
   int signal=(p.action=="BUY" ? 1 : (p.action=="SELL" ? -1 : 0));
   ManageExits(signal,rid);
   if(!g_hbOk)
     {
      SkipBar("no_heartbeat",rid,-1,g_hbError);
      return;
     }
   if(p.action=="HOLD")
     {
      UpdateComment();
      return;
     }
   TryTrade(p,rid);
  }
//+------------------------------------------------------------------+
//| Expert initialization                                            |
//+------------------------------------------------------------------+
int OnInit()
  {
   //--- an input or timeframe change re-runs OnInit without unloading: start from "no heartbeat"
   g_hbOk=false;
   g_hbFailStreak=0;
   g_symbol=(InpModelSymbol=="" ? Symbol() : InpModelSymbol);
   g_tf=AIB_TimeframeName(Period());
   if(g_tf=="")
     {
      Print("AIBridge: unsupported chart period ",Period()," minutes");
      return INIT_PARAMETERS_INCORRECT;
     }
   if(!IsDllsAllowed())
     {
      Print("AIBridge: enable 'Allow DLL imports' (Tools > Options > Expert Advisors and the EA's Common tab)");
      return INIT_FAILED;
     }
   if(InpHeartbeatSec<1 || InpRequestTimeoutMs<50 || InpRetries<0)
     {
      Print("AIBridge: InpHeartbeatSec >= 1, InpRequestTimeoutMs >= 50 and InpRetries >= 0 are required");
      return INIT_PARAMETERS_INCORRECT;
     }
   g_lotDigits=AIB_LotDigits(MarketInfo(Symbol(),MODE_LOTSTEP));
   //--- one journal per chart (symbol, timeframe, magic) unless a file is named
   string journal=InpJournalFile;
   if(journal=="")
      journal="aibridge_"+Symbol()+"_"+g_tf+"_"+IntegerToString(InpMagic)+".csv";
   g_journal.Open(journal,g_symbol,g_tf,InpMagic);
   g_pendingFile=journal+".pending";
   g_historySynced=false;
   g_instrumentOk=true;
   g_instrumentMsg="";
   g_clockMsg="";
   Log("init","",0,AIB_EA_NAME+" "+AIB_EA_VERSION+" endpoint "+InpEndpoint+" timeout "+
       IntegerToString(InpRequestTimeoutMs)+" ms x "+IntegerToString(1+InpRetries)+" attempts, heartbeat "+
       IntegerToString(InpHeartbeatSec)+" s, dry_run "+(InpDryRun ? "true" : "false")+", zmq "+g_transport.Version()+
       (IsTesting() ? ", strategy tester" : ""));
   ApplyRiskSettings();
   InitDay();
   SeedTickets();
   LoadPending();
   if(!g_transport.Init(InpEndpoint,InpRequestTimeoutMs,InpRetries))
     {
      Print("AIBridge: ",g_transport.LastError());
      Log("init_failed","",-1,g_transport.LastError());
      return INIT_PARAMETERS_INCORRECT;
     }
   Heartbeat();
   if(!g_hbOk)
      Print("AIBridge: no heartbeat from ",InpEndpoint," - running, but not trading until one succeeds");
   if(!EventSetTimer(InpHeartbeatSec))
      Print("AIBridge: EventSetTimer failed, error ",GetLastError());
   g_lastBarTime=Time[0];   // act from the next closed bar on
   UpdateComment();
   return INIT_SUCCEEDED;
  }
//+------------------------------------------------------------------+
//| Expert deinitialization: timer off, socket closed (linger 0)     |
//+------------------------------------------------------------------+
void OnDeinit(const int reason)
  {
   EventKillTimer();
   Log("deinit","",0,"reason "+IntegerToString(reason)+", "+IntegerToString(ArraySize(g_pendingIds))+
       " trade event(s) not acknowledged, socket re-opens "+IntegerToString(g_transport.Reopens()));
   g_transport.Shutdown();
   g_journal.Close();
   Comment("");
  }
//+------------------------------------------------------------------+
//| Timer: heartbeat (the Strategy Tester never calls OnTimer)       |
//+------------------------------------------------------------------+
void OnTimer()
  {
   CheckDrawdown("");
   CheckClosedOrders();   // closes first, so the heartbeat's positions match the ledger
   Heartbeat();
  }
//+------------------------------------------------------------------+
//| Tick: drawdown (every tick), closed orders, tester heartbeat,    |
//| new-bar detection                                                |
//+------------------------------------------------------------------+
void OnTick()
  {
   CheckDrawdown("");
   CheckClosedOrders();
   if(IsTesting() && GetTickCount()-g_lastHbTick>=(uint)InpHeartbeatSec*1000)
      Heartbeat();
   if(Time[0]==g_lastBarTime)
      return;
   g_lastBarTime=Time[0];
   OnNewBar();
  }
//+------------------------------------------------------------------+
