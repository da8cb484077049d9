//+------------------------------------------------------------------+
//| AIBridge/Risk.mqh                                                |
//| Pre-trade risk rules: spread, daily drawdown, exposure, hours.   |
//|                                                                  |
//| ONE SOURCE OF TRUTH: src/aibridge/risk.py. Each function is a    |
//| statement-by-statement port of the Python function named in its  |
//| "mirrors:" line (checked by tests/test_ea_sources.py, which also |
//| runs both on the same cases via g++ and an MQL4 shim).           |
//| Pure functions: the EA gathers spread, equity and open orders    |
//| and passes them in.                                              |
//+------------------------------------------------------------------+
#property strict

//--- pre-trade veto codes, in the order the checks run (aibridge.risk.ENTRY_*)
#define AIB_ENTRY_OK       0
#define AIB_ENTRY_SPREAD   1
#define AIB_ENTRY_DRAWDOWN 2
#define AIB_ENTRY_HOURS    3
#define AIB_ENTRY_LOTS     4
#define AIB_ENTRY_EXPOSURE 5

//--- market exit codes at a bar's open (aibridge.risk.EXIT_*)
#define AIB_EXIT_NONE      0
#define AIB_EXIT_SIGNAL    3
#define AIB_EXIT_TIME      4

//+------------------------------------------------------------------+
//| Name of a veto code, for the journal.                            |
//| mirrors: aibridge.risk.ENTRY_REASONS                             |
//+------------------------------------------------------------------+
string AIB_EntryReason(int code)
  {
   if(code==AIB_ENTRY_OK)
      return "ok";
   if(code==AIB_ENTRY_SPREAD)
      return "spread_too_wide";
   if(code==AIB_ENTRY_DRAWDOWN)
      return "daily_drawdown_halt";
   if(code==AIB_ENTRY_HOURS)
      return "outside_trading_hours";
   if(code==AIB_ENTRY_LOTS)
      return "lot_size_zero";
   if(code==AIB_ENTRY_EXPOSURE)
      return "exposure_limit";
   return "unknown";
  }

//+------------------------------------------------------------------+
//| True when the current spread allows a new trade;                 |
//| max_spread_points <= 0 disables the check.                       |
//| mirrors: aibridge.risk.spread_ok                                 |
//+------------------------------------------------------------------+
bool AIB_SpreadOk(double spread_points,double max_spread_points)
  {
   if(max_spread_points<=0.0)
      return true;
   return spread_points<=max_spread_points;
  }
//+------------------------------------------------------------------+
//| True when today's loss from the day's starting equity reached    |
//| max_dd_pct percent. The EA latches it for the rest of the day.   |
//| max_dd_pct <= 0 disables; a non-positive day start always halts. |
//| mirrors: aibridge.risk.daily_drawdown_breached                   |
//+------------------------------------------------------------------+
bool AIB_DailyDrawdownBreached(double day_start_equity,double equity,double max_dd_pct)
  {
   if(max_dd_pct<=0.0)
      return false;
   if(day_start_equity<=0.0)
      return true;
   return (day_start_equity-equity)>=day_start_equity*max_dd_pct/100.0;
  }
//+------------------------------------------------------------------+
//| True when one more position of new_lots stays within both        |
//| exposure limits (the EA counts its own magic on this symbol).    |
//| mirrors: aibridge.risk.exposure_ok                               |
//+------------------------------------------------------------------+
bool AIB_ExposureOk(int open_positions,double total_lots,double new_lots,
                    int max_open_positions,double max_total_lots)
  {
   if(open_positions+1>max_open_positions)
      return false;
   return total_lots+new_lots<=max_total_lots+1e-9;
  }
//+------------------------------------------------------------------+
//| True when hour (server time, 0-23) is inside [start, end),       |
//| wrapping past midnight; start == end means no restriction.       |
//| mirrors: aibridge.risk.trading_hour_ok                           |
//+------------------------------------------------------------------+
bool AIB_TradingHourOk(int hour,int start_hour,int end_hour)
  {
   if(start_hour==end_hour)
      return true;
   if(start_hour<end_hour)
      return start_hour<=hour && hour<end_hour;
   return hour>=start_hour || hour<end_hour;
  }
//+------------------------------------------------------------------+
//| All pre-trade checks in one fixed order; returns the first       |
//| failing AIB_ENTRY_* code. The order is part of the contract (it  |
//| decides which reason the journal shows): spread, daily drawdown  |
//| halt, trading hours, lot size, exposure. dd_halted is the day's  |
//| latched AIB_DailyDrawdownBreached flag; lots comes from          |
//| AIB_LotsForRisk.                                                 |
//| mirrors: aibridge.risk.entry_veto                                |
//+------------------------------------------------------------------+
int AIB_EntryVeto(double spread_points,double max_spread_points,bool dd_halted,int hour,
                  int start_hour,int end_hour,double lots,int open_positions,double total_lots,
                  int max_open_positions,double max_total_lots)
  {
   if(!AIB_SpreadOk(spread_points,max_spread_points))
      return AIB_ENTRY_SPREAD;
   if(dd_halted)
      return AIB_ENTRY_DRAWDOWN;
   if(!AIB_TradingHourOk(hour,start_hour,end_hour))
      return AIB_ENTRY_HOURS;
   if(lots<=0.0)
      return AIB_ENTRY_LOTS;
   if(!AIB_ExposureOk(open_positions,total_lots,lots,max_open_positions,max_total_lots))
      return AIB_ENTRY_EXPOSURE;
   return AIB_ENTRY_OK;
  }
//+------------------------------------------------------------------+
//| Should a position of direction (+1 long, -1 short) close at this  |
//| bar's open? signal: the decision of the bar that just closed     |
//| (+1 BUY, -1 SELL, 0 HOLD/none); bars_held: bars since the entry  |
//| bar. An opposite signal wins over the time exit.                 |
//| mirrors: aibridge.risk.exit_reason                               |
//+------------------------------------------------------------------+
int AIB_ExitReason(int direction,int signal,int bars_held,bool close_on_opposite,int max_hold_bars)
  {
   if(close_on_opposite && signal==-direction)
      return AIB_EXIT_SIGNAL;
   if(max_hold_bars>0 && bars_held>=max_hold_bars)
      return AIB_EXIT_TIME;
   return AIB_EXIT_NONE;
  }
//+------------------------------------------------------------------+
