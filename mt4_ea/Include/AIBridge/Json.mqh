//+------------------------------------------------------------------+
//| AIBridge/Json.mqh                                                |
//| A small, dependency-free JSON writer and reader for the EA.      |
//|                                                                  |
//| Why our own and not JAson's CJAVal: the protocol's replies are   |
//| small and almost flat, and we want exact control of number       |
//| formatting (prices with the symbol's Digits, never 8 forced      |
//| digits), of empty strings (JAson turns "" into null), and of     |
//| failure (a malformed reply must be reported, never crash).       |
//|                                                                  |
//| Encoding: MQL4 strings are UTF-16. This file works on MQL        |
//| strings only; Transport.mqh converts UTF-16 <-> UTF-8 bytes      |
//| explicitly (StringToCharArray / CharArrayToString, CP_UTF8) at   |
//| the socket boundary. \uXXXX escapes are decoded to UTF-16 code   |
//| units (a surrogate pair stays a pair, which is what MQL needs).  |
//|                                                                  |
//| Reader model: CAibJson::Parse flattens the document into          |
//| (path, value, type) rows. Paths join object keys with '.' and    |
//| array indexes with [i]:                                          |
//|   {"model":{"version":"4"},"models":[{"symbol":"EURUSD"}]}       |
//|   -> "model" (object), "model.version" = "4",                    |
//|      "models" (array), "models[0]" (object),                     |
//|      "models[0].symbol" = "EURUSD"                               |
//| so nested replies cost nothing more than one GetString("a.b").   |
//|                                                                  |
//| This file sticks to the subset of MQL4 that is also C++ (no      |
//| pointers, explicit conversions, definitions before use), so      |
//| tests/test_ea_sources.py compiles it with g++ and a small shim   |
//| and runs it against the golden protocol fixtures.                |
//+------------------------------------------------------------------+
#property strict

#define AIB_JSON_STRING 1
#define AIB_JSON_NUMBER 2
#define AIB_JSON_BOOL   3
#define AIB_JSON_NULL   4
#define AIB_JSON_OBJECT 5
#define AIB_JSON_ARRAY  6

#define AIB_JSON_MAX_DEPTH 32

//+------------------------------------------------------------------+
//| Four upper-case hex digits of a UTF-16 code unit.                |
//+------------------------------------------------------------------+
string AIB_Hex4(int code)
  {
   string digits="0123456789ABCDEF";
   string out="";
   for(int shift=12; shift>=0; shift-=4)
     {
      int nibble=(code>>shift)&15;
      out+=StringSubstr(digits,nibble,1);
     }
   return out;
  }
//+------------------------------------------------------------------+
//| JSON string literal (with quotes) for an MQL string.             |
//+------------------------------------------------------------------+
string AIB_JsonQuote(string value)
  {
   string out="\"";
   int n=StringLen(value);
   for(int i=0; i<n; i++)
     {
      ushort c=StringGetCharacter(value,i);
      if(c=='"')
         out+="\\\"";
      else if(c=='\\')
         out+="\\\\";
      else if(c==10)
         out+="\\n";
      else if(c==13)
         out+="\\r";
      else if(c==9)
         out+="\\t";
      else if(c<32)
         out+="\\u"+AIB_Hex4((int)c);
      else
         out+=StringSubstr(value,i,1);
     }
   out+="\"";
   return out;
  }
//+------------------------------------------------------------------+
//| JSON number text for a double; null for NaN/inf (JSON has none). |
//+------------------------------------------------------------------+
string AIB_JsonNumber(double value,int digits)
  {
   if(!MathIsValidNumber(value))
      return "null";
   return DoubleToString(value,digits);
  }
//+------------------------------------------------------------------+
//| Value of a JSON number literal already checked by the parser.    |
//| The mantissa goes through StringToDouble; an exponent is applied |
//| with MathPow so "1e-05" (what Python emits for small numbers)    |
//| is read correctly whatever StringToDouble does with exponents.   |
//+------------------------------------------------------------------+
double AIB_JsonNumberToDouble(string text)
  {
   int n=StringLen(text);
   int epos=-1;
   for(int i=0; i<n; i++)
     {
      ushort c=StringGetCharacter(text,i);
      if(c=='e' || c=='E')
        {
         epos=i;
         break;
        }
     }
   if(epos<0)
      return StringToDouble(text);
   double mantissa=StringToDouble(StringSubstr(text,0,epos));
   int exponent=(int)StringToInteger(StringSubstr(text,epos+1));
   if(StringGetCharacter(text,epos+1)=='+')
      exponent=(int)StringToInteger(StringSubstr(text,epos+2));
   return mantissa*MathPow(10.0,exponent);
  }
//+------------------------------------------------------------------+
//| Streaming JSON writer: keys in call order, no whitespace.         |
//| Builders in Protocol.mqh call only these methods, so             |
//| tests/test_ea_sources.py can rebuild each message's key tree     |
//| from the source and compare it with the golden fixture.          |
//+------------------------------------------------------------------+
class CAibJsonWriter
  {
private:
   string            m_buf;
   bool              m_first[];
   int               m_depth;

   void              Sep()
     {
      if(m_depth<=0)
         return;
      if(m_first[m_depth-1])
         m_first[m_depth-1]=false;
      else
         m_buf+=",";
     }
   void              Push()
     {
      m_depth++;
      ArrayResize(m_first,m_depth,16);
      m_first[m_depth-1]=true;
     }
   void              KeyRaw(string key)
     {
      Sep();
      m_buf+=AIB_JsonQuote(key)+":";
     }

public:
                     CAibJsonWriter() { m_buf=""; m_depth=0; }
   void              Reset() { m_buf=""; m_depth=0; ArrayResize(m_first,0,16); }
   string            Text() const { return m_buf; }
   int               Depth() const { return m_depth; }

   //--- containers
   void              ObjBegin() { Sep(); m_buf+="{"; Push(); }
   void              ObjBeginKey(string key) { KeyRaw(key); m_buf+="{"; Push(); }
   void              ObjEnd() { m_buf+="}"; m_depth--; }
   void              ArrBegin() { Sep(); m_buf+="["; Push(); }
   void              ArrBeginKey(string key) { KeyRaw(key); m_buf+="["; Push(); }
   void              ArrEnd() { m_buf+="]"; m_depth--; }

   //--- object members
   void              Str(string key,string value) { KeyRaw(key); m_buf+=AIB_JsonQuote(value); }
   void              Num(string key,double value,int digits) { KeyRaw(key); m_buf+=AIB_JsonNumber(value,digits); }
   void              Int(string key,long value) { KeyRaw(key); m_buf+=IntegerToString(value); }
   void              Bool(string key,bool value) { KeyRaw(key); m_buf+=(value ? "true" : "false"); }
   void              Null(string key) { KeyRaw(key); m_buf+="null"; }

   //--- array elements
   void              ValStr(string value) { Sep(); m_buf+=AIB_JsonQuote(value); }
   void              ValNum(double value,int digits) { Sep(); m_buf+=AIB_JsonNumber(value,digits); }
   void              ValInt(long value) { Sep(); m_buf+=IntegerToString(value); }
  };
//+------------------------------------------------------------------+
//| Flattening JSON reader (see the header comment for paths).        |
//+------------------------------------------------------------------+
class CAibJson
  {
private:
   string            m_text;
   int               m_len;
   int               m_pos;
   string            m_error;
   string            m_keys[];
   string            m_vals[];
   int               m_types[];
   int               m_count;

   bool              Fail(string message)
     {
      if(m_error=="")
         m_error=message+" at offset "+IntegerToString(m_pos);
      return false;
     }
   void              Add(string path,string value,int type)
     {
      if(m_count>=ArraySize(m_keys))
        {
         int grow=m_count*2+16;
         ArrayResize(m_keys,grow);
         ArrayResize(m_vals,grow);
         ArrayResize(m_types,grow);
        }
      m_keys[m_count]=path;
      m_vals[m_count]=value;
      m_types[m_count]=type;
      m_count++;
     }
   ushort            Peek() const
     {
      if(m_pos>=m_len)
         return 0;
      return StringGetCharacter(m_text,m_pos);
     }
   void              SkipWs()
     {
      while(m_pos<m_len)
        {
         ushort c=StringGetCharacter(m_text,m_pos);
         if(c==' ' || c==9 || c==10 || c==13)
            m_pos++;
         else
            break;
        }
     }
   bool              ParseLiteral(string word)
     {
      int n=StringLen(word);
      if(m_pos+n>m_len || StringSubstr(m_text,m_pos,n)!=word)
         return Fail("unexpected token");
      m_pos+=n;
      return true;
     }
   bool              ParseHex4(int &code)
     {
      if(m_pos+4>m_len)
         return Fail("short \\u escape");
      code=0;
      for(int i=0; i<4; i++)
        {
         ushort c=StringGetCharacter(m_text,m_pos+i);
         int v=-1;
         if(c>='0' && c<='9')
            v=(int)c-'0';
         else if(c>='a' && c<='f')
            v=(int)c-'a'+10;
         else if(c>='A' && c<='F')
            v=(int)c-'A'+10;
         if(v<0)
            return Fail("bad \\u escape");
         code=code*16+v;
        }
      m_pos+=4;
      return true;
     }
   bool              ParseString(string &out)
     {
      out="";
      if(Peek()!='"')
         return Fail("expected string");
      m_pos++;
      int start=m_pos;
      while(m_pos<m_len)
        {
         ushort c=StringGetCharacter(m_text,m_pos);
         if(c=='"')
           {
            if(m_pos>start)   // never StringSubstr(...,0): old builds return the rest
               out+=StringSubstr(m_text,start,m_pos-start);
            m_pos++;
            return true;
           }
         if(c<32)
            return Fail("control character in string");
         if(c!='\\')
           {
            m_pos++;
            continue;
           }
         //--- escape: flush the plain run, then decode
         if(m_pos>start)
            out+=StringSubstr(m_text,start,m_pos-start);
         m_pos++;
         if(m_pos>=m_len)
            return Fail("unterminated escape");
         ushort e=StringGetCharacter(m_text,m_pos);
         m_pos++;
         if(e=='"')
            out+="\"";
         else if(e=='\\')
            out+="\\";
         else if(e=='/')
            out+="/";
         else if(e=='b')
            out+=ShortToString(8);
         else if(e=='f')
            out+=ShortToString(12);
         else if(e=='n')
            out+=ShortToString(10);
         else if(e=='r')
            out+=ShortToString(13);
         else if(e=='t')
            out+=ShortToString(9);
         else if(e=='u')
           {
            int code=0;
            if(!ParseHex4(code))
               return false;
            out+=ShortToString((ushort)code);
           }
         else
            return Fail("bad escape");
         start=m_pos;
        }
      return Fail("unterminated string");
     }
   bool              IsDigitAt(int pos) const
     {
      if(pos>=m_len)
         return false;
      ushort c=StringGetCharacter(m_text,pos);
      return (c>='0' && c<='9');
     }
   bool              ParseNumber(string &out)
     {
      int start=m_pos;
      if(Peek()=='-')
         m_pos++;
      if(!IsDigitAt(m_pos))
         return Fail("bad number");
      while(IsDigitAt(m_pos))
         m_pos++;
      if(Peek()=='.')
        {
         m_pos++;
         if(!IsDigitAt(m_pos))
            return Fail("bad fraction");
         while(IsDigitAt(m_pos))
            m_pos++;
        }
      if(Peek()=='e' || Peek()=='E')
        {
         m_pos++;
         if(Peek()=='+' || Peek()=='-')
            m_pos++;
         if(!IsDigitAt(m_pos))
            return Fail("bad exponent");
         while(IsDigitAt(m_pos))
            m_pos++;
        }
      out=StringSubstr(m_text,start,m_pos-start);
      return true;
     }
   bool              ParseArray(string path,int depth)
     {
      Add(path,"",AIB_JSON_ARRAY);
      m_pos++;  // '['
      SkipWs();
      if(Peek()==']')
        {
         m_pos++;
         return true;
        }
      int index=0;
      while(true)
        {
         if(!ParseValue(path+"["+IntegerToString(index)+"]",depth+1))
            return false;
         index++;
         SkipWs();
         ushort c=Peek();
         if(c==',')
           {
            m_pos++;
            continue;
           }
         if(c==']')
           {
            m_pos++;
            return true;
           }
         return Fail("expected ',' or ']'");
        }
      return false;
     }
   bool              ParseObject(string path,int depth)
     {
      Add(path,"",AIB_JSON_OBJECT);
      m_pos++;  // '{'
      SkipWs();
      if(Peek()=='}')
        {
         m_pos++;
         return true;
        }
      while(true)
        {
         SkipWs();
         string key="";
         if(!ParseString(key))
            return false;
         SkipWs();
         if(Peek()!=':')
            return Fail("expected ':'");
         m_pos++;
         string child=(path=="" ? key : path+"."+key);
         if(!ParseValue(child,depth+1))
            return false;
         SkipWs();
         ushort c=Peek();
         if(c==',')
           {
            m_pos++;
            continue;
           }
         if(c=='}')
           {
            m_pos++;
            return true;
           }
         return Fail("expected ',' or '}'");
        }
      return false;
     }
   bool              ParseValue(string path,int depth)
     {
      if(depth>AIB_JSON_MAX_DEPTH)
         return Fail("nesting too deep");
      SkipWs();
      ushort c=Peek();
      if(c=='{')
         return ParseObject(path,depth);
      if(c=='[')
         return ParseArray(path,depth);
      if(c=='"')
        {
         string s="";
         if(!ParseString(s))
            return false;
         Add(path,s,AIB_JSON_STRING);
         return true;
        }
      if(c=='t')
        {
         if(!ParseLiteral("true"))
            return false;
         Add(path,"true",AIB_JSON_BOOL);
         return true;
        }
      if(c=='f')
        {
         if(!ParseLiteral("false"))
            return false;
         Add(path,"false",AIB_JSON_BOOL);
         return true;
        }
      if(c=='n')
        {
         if(!ParseLiteral("null"))
            return false;
         Add(path,"",AIB_JSON_NULL);
         return true;
        }
      if(c=='-' || (c>='0' && c<='9'))
        {
         string num="";
         if(!ParseNumber(num))
            return false;
         Add(path,num,AIB_JSON_NUMBER);
         return true;
        }
      if(m_pos>=m_len)
         return Fail("unexpected end of input");
      return Fail("unexpected character");
     }

public:
                     CAibJson() { m_len=0; m_pos=0; m_count=0; m_error=""; m_text=""; }

   //--- parse a whole document; false (and Error()) on any syntax error
   bool              Parse(const string &text)
     {
      m_text=text;
      m_len=StringLen(text);
      m_pos=0;
      m_count=0;
      m_error="";
      if(!ParseValue("",0))
         return false;
      SkipWs();
      if(m_pos!=m_len)
         return Fail("trailing characters");
      return true;
     }
   string            Error() const { return m_error; }
   int               Count() const { return m_count; }
   string            KeyAt(int i) const { return m_keys[i]; }
   string            ValueAt(int i) const { return m_vals[i]; }
   int               TypeAt(int i) const { return m_types[i]; }

   int               Find(string path) const
     {
      for(int i=0; i<m_count; i++)
         if(m_keys[i]==path)
            return i;
      return -1;
     }
   bool              Has(string path) const { return Find(path)>=0; }
   int               Type(string path) const
     {
      int i=Find(path);
      return (i<0 ? 0 : m_types[i]);
     }
   bool              IsNull(string path) const { return Type(path)==AIB_JSON_NULL; }

   //--- typed getters: the default comes back for a missing key, null or a wrong type
   string            GetString(string path,string def) const
     {
      int i=Find(path);
      if(i<0 || m_types[i]!=AIB_JSON_STRING)
         return def;
      return m_vals[i];
     }
   double            GetDouble(string path,double def) const
     {
      int i=Find(path);
      if(i<0 || m_types[i]!=AIB_JSON_NUMBER)
         return def;
      return AIB_JsonNumberToDouble(m_vals[i]);
     }
   long              GetLong(string path,long def) const
     {
      int i=Find(path);
      if(i<0 || m_types[i]!=AIB_JSON_NUMBER)
         return def;
      return (long)MathRound(AIB_JsonNumberToDouble(m_vals[i]));
     }
   bool              GetBool(string path,bool def) const
     {
      int i=Find(path);
      if(i<0 || m_types[i]!=AIB_JSON_BOOL)
         return def;
      return m_vals[i]=="true";
     }
   //--- a number or a string, as text (model versions may be either)
   string            GetText(string path,string def) const
     {
      int i=Find(path);
      if(i<0 || (m_types[i]!=AIB_JSON_STRING && m_types[i]!=AIB_JSON_NUMBER))
         return def;
      return m_vals[i];
     }
  };
//+------------------------------------------------------------------+
