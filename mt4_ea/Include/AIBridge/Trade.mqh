//+------------------------------------------------------------------+
//| AIBridge/Trade.mqh                                               |
//| Which OrderSend errors are worth a retry, error texts, and the   |
//| SL/TP prices for a market order. Pure MQL (compiled by tests).   |
//+------------------------------------------------------------------+
#property strict

//--- MT4 trade server return codes used here (numeric so nothing clashes with the
//--- terminal's own predefined names)
#define AIB_ERR_NO_ERROR            0
#define AIB_ERR_NO_RESULT           1
#define AIB_ERR_COMMON_ERROR        2
#define AIB_ERR_SERVER_BUSY         4
#define AIB_ERR_NO_CONNECTION       6
#define AIB_ERR_MALFUNCTIONAL_TRADE 9
#define AIB_ERR_TRADE_TIMEOUT       128
#define AIB_ERR_INVALID_PRICE       129
#define AIB_ERR_INVALID_STOPS       130
#define AIB_ERR_INVALID_TRADE_VOLUME 131
#define AIB_ERR_MARKET_CLOSED       132
#define AIB_ERR_TRADE_DISABLED      133
#define AIB_ERR_NOT_ENOUGH_MONEY    134
#define AIB_ERR_PRICE_CHANGED       135
#define AIB_ERR_OFF_QUOTES          136
#define AIB_ERR_BROKER_BUSY         137
#define AIB_ERR_REQUOTE             138
#define AIB_ERR_TOO_MANY_REQUESTS   141
#define AIB_ERR_TRADE_MODIFY_DENIED 145
#define AIB_ERR_TRADE_CONTEXT_BUSY  146
#define AIB_ERR_TRADE_EXPIRATION_DENIED 147
#define AIB_ERR_TRADE_TOO_MANY_ORDERS 148

//--- MT4 order types (OP_BUY / OP_SELL values)
#define AIB_OP_BUY  0
#define AIB_OP_SELL 1

//+------------------------------------------------------------------+
//| Retry only what a fresh quote can fix: requote, off quotes,      |
//| price changed, invalid price, trade context busy. Everything     |
//| else (invalid stops/volume, no money, market closed, trade       |
//| disabled) is final, and the ambiguous outcomes below are never   |
//| retried blindly: the order may exist (AIB_IsUnknownOutcome).     |
//+------------------------------------------------------------------+
bool AIB_IsRetryableTradeError(int err)
  {
   return err==AIB_ERR_REQUOTE || err==AIB_ERR_OFF_QUOTES || err==AIB_ERR_INVALID_PRICE ||
          err==AIB_ERR_PRICE_CHANGED || err==AIB_ERR_TRADE_CONTEXT_BUSY;
  }
//+------------------------------------------------------------------+
//| Errors after which the trade server may or may not have executed |
//| the request (timeout, lost connection, common error, no result): |
//| the EA looks for the order before it reports anything.           |
//+------------------------------------------------------------------+
bool AIB_IsUnknownOutcome(int err)
  {
   return err==AIB_ERR_NO_ERROR || err==AIB_ERR_NO_RESULT || err==AIB_ERR_COMMON_ERROR ||
          err==AIB_ERR_NO_CONNECTION || err==AIB_ERR_MALFUNCTIONAL_TRADE ||
          err==AIB_ERR_TRADE_TIMEOUT;
  }
//+------------------------------------------------------------------+
//| Short text for the journal (no stdlib.ex4 import needed).        |
//+------------------------------------------------------------------+
string AIB_TradeErrorText(int err)
  {
   switch(err)
     {
      case AIB_ERR_NO_ERROR:
         return "no error";
      case AIB_ERR_NO_RESULT:
         return "no result (order state unknown)";
      case AIB_ERR_COMMON_ERROR:
         return "common error (order state unknown)";
      case AIB_ERR_SERVER_BUSY:
         return "trade server busy";
      case AIB_ERR_NO_CONNECTION:
         return "no connection with the trade server (order state unknown)";
      case AIB_ERR_MALFUNCTIONAL_TRADE:
         return "malfunctional trade operation (order state unknown)";
      case AIB_ERR_TRADE_TIMEOUT:
         return "trade timeout (order state unknown)";
      case AIB_ERR_INVALID_PRICE:
         return "invalid price";
      case AIB_ERR_INVALID_STOPS:
         return "invalid stops";
      case AIB_ERR_INVALID_TRADE_VOLUME:
         return "invalid trade volume";
      case AIB_ERR_MARKET_CLOSED:
         return "market closed";
      case AIB_ERR_TRADE_DISABLED:
         return "trade disabled";
      case AIB_ERR_NOT_ENOUGH_MONEY:
         return "not enough money";
      case AIB_ERR_PRICE_CHANGED:
         return "price changed";
      case AIB_ERR_OFF_QUOTES:
         return "off quotes";
      case AIB_ERR_BROKER_BUSY:
         return "broker busy";
      case AIB_ERR_REQUOTE:
         return "requote";
      case AIB_ERR_TOO_MANY_REQUESTS:
         return "too many requests";
      case AIB_ERR_TRADE_MODIFY_DENIED:
         return "modification denied: too close to market (freeze level)";
      case AIB_ERR_TRADE_CONTEXT_BUSY:
         return "trade context busy";
      case AIB_ERR_TRADE_EXPIRATION_DENIED:
         return "expirations denied by broker";
      case AIB_ERR_TRADE_TOO_MANY_ORDERS:
         return "too many orders";
     }
   return "error "+IntegerToString(err);
  }
//+------------------------------------------------------------------+
//| SL/TP prices for a market order opened at `price`, distances in  |
//| price units (<= 0: none -> 0.0), normalised to digits.           |
//+------------------------------------------------------------------+
void AIB_StopPrices(int cmd,double price,double sl_distance,double tp_distance,int digits,
                    double &sl,double &tp)
  {
   sl=0.0;
   tp=0.0;
   if(cmd==AIB_OP_BUY)
     {
      if(sl_distance>0.0)
         sl=NormalizeDouble(price-sl_distance,digits);
      if(tp_distance>0.0)
         tp=NormalizeDouble(price+tp_distance,digits);
     }
   else
     {
      if(sl_distance>0.0)
         sl=NormalizeDouble(price+sl_distance,digits);
      if(tp_distance>0.0)
         tp=NormalizeDouble(price-tp_distance,digits);
     }
  }
//+------------------------------------------------------------------+
//| Decimals of a lot step (0.01 -> 2, 0.1 -> 1, 1 -> 0, 0.001 -> 3).|
//+------------------------------------------------------------------+
int AIB_LotDigits(double lot_step)
  {
   int d=0;
   double s=lot_step;
   while(d<8 && MathAbs(s-MathRound(s))>1e-9)
     {
      s*=10.0;
      d++;
     }
   return d;
  }
//+------------------------------------------------------------------+
//| A price on the broker's tick grid (MODE_TICKSIZE), then to       |
//| digits. tick_size <= 0: digits only.                             |
//+------------------------------------------------------------------+
double AIB_NormalizeToTick(double price,double tick_size,int digits)
  {
   if(tick_size<=0.0)
      return NormalizeDouble(price,digits);
   return NormalizeDouble(MathRound(price/tick_size)*tick_size,digits);
  }
//+------------------------------------------------------------------+
//| Name of a market exit code (Risk.mqh AIB_EXIT_*), for the        |
//| journal and the "closed" trade event's reason.                   |
//+------------------------------------------------------------------+
string AIB_ExitName(int code)
  {
   if(code==3)
      return "signal";
   if(code==4)
      return "time";
   return "none";
  }
//+------------------------------------------------------------------+
