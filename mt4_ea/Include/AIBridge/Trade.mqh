//+------------------------------------------------------------------+
//| AIBridge/Trade.mqh                                               |
//| Which OrderSend errors are worth a retry, error texts, and the   |
//| SL/TP prices for a market order. Pure MQL (compiled by tests).   |
//+------------------------------------------------------------------+
#property strict

//--- MT4 trade server return codes used here (numeric so nothing clashes with the
//--- terminal's own predefined names)
#define AIB_ERR_NO_ERROR            0
#define AIB_ERR_SERVER_BUSY         4
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
#define AIB_ERR_TRADE_CONTEXT_BUSY  146
#define AIB_ERR_TRADE_EXPIRATION_DENIED 147
#define AIB_ERR_TRADE_TOO_MANY_ORDERS 148

//--- MT4 order types (OP_BUY / OP_SELL values)
#define AIB_OP_BUY  0
#define AIB_OP_SELL 1

//+------------------------------------------------------------------+
//| Retry only what a fresh quote can fix: requote, off quotes,      |
//| price changed, trade context busy. Everything else (invalid      |
//| stops/volume, no money, market closed, trade disabled, and the   |
//| ambiguous 128 trade timeout, where the order may have been       |
//| filled) is final: retrying could not succeed or could double a   |
//| position.                                                        |
//+------------------------------------------------------------------+
bool AIB_IsRetryableTradeError(int err)
  {
   return err==AIB_ERR_REQUOTE || err==AIB_ERR_OFF_QUOTES ||
          err==AIB_ERR_PRICE_CHANGED || err==AIB_ERR_TRADE_CONTEXT_BUSY;
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
      case AIB_ERR_SERVER_BUSY:
         return "trade server busy";
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
