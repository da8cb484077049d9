//+------------------------------------------------------------------+
//| AIBridge/LotSize.mqh                                             |
//| Lot sizing, tick value and stop-level rules.                     |
//|                                                                  |
//| ONE SOURCE OF TRUTH: src/aibridge/risk.py and                    |
//| src/aibridge/instruments.py. Every function here is a statement- |
//| by-statement port of the Python function named in its            |
//| "mirrors:" line; tests/test_ea_sources.py checks that the named  |
//| function exists and, with g++ and a small MQL4 shim, that both   |
//| give identical results on a table of contract specs (EURUSD,     |
//| USDJPY, GBPJPY, XAUUSD with min/max/step edges).                 |
//| Change the Python first, then this file, in the same commit.     |
//|                                                                  |
//| Pure functions on plain numbers: no MarketInfo here. The EA      |
//| reads MODE_TICKVALUE, MODE_TICKSIZE, MODE_LOTSTEP, MODE_MINLOT,  |
//| MODE_MAXLOT, MODE_STOPLEVEL and passes them in.                  |
//+------------------------------------------------------------------+
#property strict

//--- lot sizing outcome codes (aibridge.risk.LOT_*)
#define AIB_LOT_OK            0
#define AIB_LOT_CLAMPED_MAX   1
#define AIB_LOT_BELOW_MIN     2
#define AIB_LOT_RAISED_TO_MIN 3
#define AIB_LOT_INVALID_INPUT 4

//--- floating-point guard when flooring to the lot step (aibridge.risk._STEP_EPS)
#define AIB_STEP_EPS     1e-7
//--- decimals kept on a lot size (aibridge.risk._LOT_DECIMALS)
#define AIB_LOT_DECIMALS 8

//--- tick value rules (aibridge.instruments.TICK_VALUE_*)
#define AIB_TICK_VALUE_FIXED              0
#define AIB_TICK_VALUE_BASE_IS_ACCOUNT    1
#define AIB_TICK_VALUE_CROSS              2

//+------------------------------------------------------------------+
//| Name of a lot sizing outcome code, for the journal.              |
//| mirrors: aibridge.risk.LOT_REASONS                               |
//+------------------------------------------------------------------+
string AIB_LotReason(int code)
  {
   if(code==AIB_LOT_OK)
      return "ok";
   if(code==AIB_LOT_CLAMPED_MAX)
      return "clamped_to_max_lot";
   if(code==AIB_LOT_BELOW_MIN)
      return "below_min_lot";
   if(code==AIB_LOT_RAISED_TO_MIN)
      return "raised_to_min_lot";
   if(code==AIB_LOT_INVALID_INPUT)
      return "invalid_input";
   return "unknown";
  }
//+------------------------------------------------------------------+
//| Tick value per 1.0 lot in the account currency.                  |
//| fixed_tick_value = contract size x tick size (or broker's value) |
//| mirrors: aibridge.instruments.tick_value_from                    |
//+------------------------------------------------------------------+
double AIB_TickValueFrom(double fixed_tick_value,int mode,double price,double quote_to_account)
  {
   if(mode==AIB_TICK_VALUE_BASE_IS_ACCOUNT)
      return fixed_tick_value/price;
   if(mode==AIB_TICK_VALUE_CROSS)
      return fixed_tick_value*quote_to_account;
   return fixed_tick_value;
  }
//+------------------------------------------------------------------+
//| Lots that lose risk_pct % of equity if the stop sl_distance      |
//| (price units) away is hit:                                       |
//|   lots = risk money / (SL distance in ticks x tick value per lot)|
//| floored to the lot step (never rounded up), clamped to           |
//| [lot_min, lot_max]. Returns the lots (0.0 = no trade) and the    |
//| outcome code in `reason`.                                        |
//| Python's round(x, 8) and NormalizeDouble(x, 8) agree on these    |
//| values (both give the double nearest the 8-decimal number).     |
//| mirrors: aibridge.risk.lots_for_risk_raw                         |
//+------------------------------------------------------------------+
double AIB_LotsForRisk(double equity,double risk_pct,double sl_distance,double tick_size,
                       double tick_value,double lot_min,double lot_max,double lot_step,
                       bool use_min_lot,int &reason)
  {
   if(equity<=0.0 || risk_pct<=0.0 || sl_distance<=0.0 || tick_size<=0.0 ||
      tick_value<=0.0 || lot_step<=0.0)
     {
      reason=AIB_LOT_INVALID_INPUT;
      return 0.0;
     }
   double risk_money=equity*risk_pct/100.0;
   double loss_per_lot=(sl_distance/tick_size)*tick_value;
   double raw_lots=risk_money/loss_per_lot;
   double steps=MathFloor(raw_lots/lot_step+AIB_STEP_EPS);
   double lots=NormalizeDouble(steps*lot_step,AIB_LOT_DECIMALS);
   if(lots>lot_max)
     {
      //--- the maximum itself is floored to the step too
      reason=AIB_LOT_CLAMPED_MAX;
      return NormalizeDouble(MathFloor(lot_max/lot_step+AIB_STEP_EPS)*lot_step,AIB_LOT_DECIMALS);
     }
   if(lots<lot_min-AIB_STEP_EPS*lot_step)
     {
      if(use_min_lot)
        {
         reason=AIB_LOT_RAISED_TO_MIN;
         return lot_min;
        }
      reason=AIB_LOT_BELOW_MIN;
      return 0.0;
     }
   reason=AIB_LOT_OK;
   return lots;
  }
//+------------------------------------------------------------------+
//| Lots of a new order after the exposure policy: with shrink an    |
//| order that would take the open lots past max_total_lots is cut   |
//| to the room left, floored to the lot step; otherwise (or when    |
//| the room is below lot_min) lots is returned unchanged and        |
//| AIB_ExposureOk vetoes it. Runs between AIB_LotsForRisk and       |
//| AIB_EntryVeto.                                                   |
//| mirrors: aibridge.risk.shrink_to_exposure                        |
//+------------------------------------------------------------------+
double AIB_ShrinkToExposure(double lots,double total_lots,double max_total_lots,double lot_min,
                            double lot_step,bool shrink)
  {
   if(!shrink || lots<=0.0 || lot_step<=0.0)
      return lots;
   if(total_lots+lots<=max_total_lots+1e-9)
      return lots;
   double room=max_total_lots-total_lots;
   double shrunk=NormalizeDouble(MathFloor(room/lot_step+AIB_STEP_EPS)*lot_step,AIB_LOT_DECIMALS);
   if(shrunk<lot_min-AIB_STEP_EPS*lot_step || shrunk<=0.0)
      return lots;
   return shrunk;
  }
//+------------------------------------------------------------------+
//| Widen SL/TP distances (from the open price, price units) so MT4  |
//| accepts them (MODE_STOPLEVEL is measured from the closing side): |
//| SL needs >= stop_level + spread, TP needs >= stop_level - spread.|
//| A distance <= 0 (no SL / no TP) is kept as is.                   |
//| mirrors: aibridge.risk.widen_to_stop_level                       |
//+------------------------------------------------------------------+
void AIB_WidenToStopLevel(double sl_distance,double tp_distance,double spread_price,
                          double stop_level_price,double &sl_out,double &tp_out)
  {
   double sl=sl_distance;
   double tp=tp_distance;
   if(sl>0.0 && sl<stop_level_price+spread_price)
      sl=stop_level_price+spread_price;
   if(tp>0.0 && tp<stop_level_price-spread_price)
      tp=stop_level_price-spread_price;
   sl_out=sl;
   tp_out=tp;
  }
//+------------------------------------------------------------------+
//| Round a price to the symbol's digits.                            |
//| mirrors: aibridge.risk.normalize_price                           |
//+------------------------------------------------------------------+
double AIB_NormalizePrice(double price,int digits)
  {
   return NormalizeDouble(price,digits);
  }
//+------------------------------------------------------------------+
