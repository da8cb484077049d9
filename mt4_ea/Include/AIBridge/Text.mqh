//+------------------------------------------------------------------+
//| AIBridge/Text.mqh                                                |
//| UTF-16 <-> UTF-8 at the byte boundary, and CSV fields.           |
//|                                                                  |
//| MQL4 strings are UTF-16; ZeroMQ frames and the journal file are  |
//| UTF-8 bytes. These two functions are the only places where the   |
//| EA converts, and they do it explicitly with CP_UTF8: libzmq sees |
//| only byte arrays (Transport.mqh).                                |
//| Pure MQL, C++-compatible subset (compiled by the tests).         |
//+------------------------------------------------------------------+
#property strict

//+------------------------------------------------------------------+
//| UTF-16 MQL string -> UTF-8 bytes, without the terminating 0.     |
//| Returns the number of bytes.                                     |
//+------------------------------------------------------------------+
int AIB_Utf8Encode(const string &text,uchar &bytes[])
  {
   ArrayResize(bytes,0);
   if(StringLen(text)==0)
      return 0;
   int n=StringToCharArray(text,bytes,0,WHOLE_ARRAY,CP_UTF8);
   while(n>0 && bytes[n-1]==0)
      n--;
   ArrayResize(bytes,n);
   return n;
  }
//+------------------------------------------------------------------+
//| First `size` UTF-8 bytes -> UTF-16 MQL string.                   |
//+------------------------------------------------------------------+
string AIB_Utf8Decode(const uchar &bytes[],int size)
  {
   if(size<=0 || ArraySize(bytes)<size)
      return "";
   return CharArrayToString(bytes,0,size,CP_UTF8);
  }
//+------------------------------------------------------------------+
//| One CSV field (RFC 4180): quoted when it holds , " CR or LF.     |
//+------------------------------------------------------------------+
string AIB_CsvField(string value)
  {
   bool quote=false;
   string out="";
   int n=StringLen(value);
   for(int i=0; i<n; i++)
     {
      ushort c=StringGetCharacter(value,i);
      if(c==',' || c==10 || c==13)
         quote=true;
      if(c=='"')
        {
         quote=true;
         out+="\"\"";
        }
      else
         out+=StringSubstr(value,i,1);
     }
   if(quote)
      return "\""+out+"\"";
   return out;
  }
//+------------------------------------------------------------------+
