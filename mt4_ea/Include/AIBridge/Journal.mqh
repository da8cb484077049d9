//+------------------------------------------------------------------+
//| AIBridge/Journal.mqh                                             |
//| Append-only CSV journal in MQL4/Files/ (the Strategy Tester      |
//| writes to tester/files/ instead). UTF-8 without BOM, CRLF lines, |
//| RFC 4180 quoting, flushed after every line so a terminal crash   |
//| loses nothing already written.                                   |
//|                                                                  |
//| Columns (AIB_JOURNAL_HEADER):                                    |
//|   time_local   PC clock, yyyy.mm.dd hh:mi:ss                     |
//|   time_server  broker server clock (TimeCurrent)                 |
//|   time_gmt     TimeGMT() (PC clock converted to GMT)             |
//|   symbol, timeframe, magic                                       |
//|   model_version  last version seen in a heartbeat ("" if none)   |
//|   event        see mt4_ea/README.md (request, reply, decision,   |
//|                risk_block, order_attempt, order_result, ...)     |
//|   request_id   protocol request id, or the order ticket          |
//|   error_code   MT4 GetLastError() / 0; -1 for a transport error  |
//|   detail       free text or the raw JSON reply                   |
//+------------------------------------------------------------------+
#property strict

#include <AIBridge/Text.mqh>

#define AIB_JOURNAL_HEADER "time_local,time_server,time_gmt,symbol,timeframe,magic,model_version,event,request_id,error_code,detail"

class CAibJournal
  {
private:
   int               m_handle;
   string            m_file;
   string            m_symbol;
   string            m_timeframe;
   int               m_magic;

   void              WriteLine(string line)
     {
      if(m_handle==INVALID_HANDLE)
         return;
      uchar bytes[];
      int n=AIB_Utf8Encode(line+"\r\n",bytes);
      if(n>0)
         FileWriteArray(m_handle,bytes,0,n);
      FileFlush(m_handle);
     }

public:
                     CAibJournal() { m_handle=INVALID_HANDLE; m_file=""; m_symbol=""; m_timeframe=""; m_magic=0; }
                    ~CAibJournal() { Close(); }

   bool              Open(string file,string symbol,string timeframe,int magic)
     {
      Close();
      m_file=file;
      m_symbol=symbol;
      m_timeframe=timeframe;
      m_magic=magic;
      m_handle=FileOpen(file,FILE_BIN|FILE_READ|FILE_WRITE|FILE_SHARE_READ);
      if(m_handle==INVALID_HANDLE)
        {
         Print("AIBridge: cannot open journal MQL4/Files/",file,", error ",GetLastError());
         return false;
        }
      bool fresh=(FileSize(m_handle)==0);
      FileSeek(m_handle,0,SEEK_END);
      if(fresh)
         WriteLine(AIB_JOURNAL_HEADER);
      return true;
     }
   void              Close()
     {
      if(m_handle!=INVALID_HANDLE)
         FileClose(m_handle);
      m_handle=INVALID_HANDLE;
     }
   bool              IsOpen() const { return m_handle!=INVALID_HANDLE; }
   string            FileName() const { return m_file; }

   void              Write(string event,string model_version,string request_id,int error_code,string detail)
     {
      string line=TimeToString(TimeLocal(),TIME_DATE|TIME_SECONDS);
      line+=","+TimeToString(TimeCurrent(),TIME_DATE|TIME_SECONDS);
      line+=","+TimeToString(TimeGMT(),TIME_DATE|TIME_SECONDS);
      line+=","+AIB_CsvField(m_symbol);
      line+=","+AIB_CsvField(m_timeframe);
      line+=","+IntegerToString(m_magic);
      line+=","+AIB_CsvField(model_version);
      line+=","+AIB_CsvField(event);
      line+=","+AIB_CsvField(request_id);
      line+=","+IntegerToString(error_code);
      line+=","+AIB_CsvField(detail);
      WriteLine(line);
     }
  };
//+------------------------------------------------------------------+
