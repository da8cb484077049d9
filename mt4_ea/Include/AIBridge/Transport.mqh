//+------------------------------------------------------------------+
//| AIBridge/Transport.mqh                                           |
//| REQ client on the mql-zmq wrapper (release 1.5) with the zguide  |
//| "Lazy Pirate" pattern: bounded waits, close + reopen on timeout, |
//| N retries, then give up and let the caller skip the bar.         |
//|                                                                  |
//| Rules this file follows (from the wrapper's sources and its      |
//| users' issues; every wrapper call is listed in                   |
//| mt4_ea/mql-zmq-api.txt):                                         |
//|  * one Context per EA, one heap Socket created in Init() and     |
//|    only re-created after a failed request - never per tick;      |
//|  * never a blocking recv: Socket::poll() with the timeout, then  |
//|    recv(msg,true) (ZMQ_DONTWAIT) only when poll saw input;       |
//|    ZMQ_RCVTIMEO/ZMQ_SNDTIMEO are also set as a second guard      |
//|    (setTimeout() is the CONNECT timeout and is not used);        |
//|  * a REQ socket that sent and got no reply is stuck (EFSM on the |
//|    next send): delete it and create a new one;                   |
//|  * linger 0 so closing never waits for an unsent request, and    |
//|    Shutdown() (from OnDeinit) closes the socket before the       |
//|    Context is terminated when the EA unloads;                    |
//|  * ZmqMsg is only a local passed by reference (returning one by  |
//|    value crashes MT4); bytes are converted explicitly (Text.mqh).|
//+------------------------------------------------------------------+
#property strict

#include <Zmq/Zmq.mqh>
#include <AIBridge/Text.mqh>

//--- One ZeroMQ context for this EA instance. A global object: created (zmq_ctx_new) when
//--- the EA is loaded, terminated (zmq_ctx_term) when it is unloaded - after OnDeinit has
//--- closed the socket, so the term never waits. It survives an input/timeframe change
//--- (MT4 then calls OnDeinit + OnInit without unloading), which only re-creates the socket.
//--- Not the wrapper's named/shared context on purpose: that one coordinates EAs through
//--- terminal global variables and a spin lock, which we do not need for one REQ socket.
Context g_aibZmqContext;

//+------------------------------------------------------------------+
//| Lazy-pirate REQ client                                           |
//+------------------------------------------------------------------+
class CAibTransport
  {
private:
   Socket           *m_sock;
   string            m_endpoint;
   int               m_timeout_ms;
   int               m_retries;
   string            m_error;
   int               m_attempts;
   int               m_reopens;
   uint              m_rtt_ms;

   bool              Open();
   void              Close();
   string            ZmqError();

public:
                     CAibTransport();
                    ~CAibTransport();
   bool              Init(string endpoint,int timeout_ms,int retries);
   bool              Request(const string &request,string &reply);
   void              Shutdown();
   string            LastError() const { return m_error; }
   int               LastAttempts() const { return m_attempts; }
   int               Reopens() const { return m_reopens; }
   uint              LastRttMs() const { return m_rtt_ms; }
   string            Endpoint() const { return m_endpoint; }
  };
//+------------------------------------------------------------------+
CAibTransport::CAibTransport()
  {
   m_sock=NULL;
   m_endpoint="";
   m_timeout_ms=1000;
   m_retries=2;
   m_error="";
   m_attempts=0;
   m_reopens=0;
   m_rtt_ms=0;
  }
//+------------------------------------------------------------------+
CAibTransport::~CAibTransport()
  {
   Close();
  }
//+------------------------------------------------------------------+
string CAibTransport::ZmqError()
  {
   int code=Zmq::errorNumber();
   return Zmq::errorMessage(code)+" (zmq errno "+IntegerToString(code)+")";
  }
//+------------------------------------------------------------------+
//| Create the REQ socket and connect it (connect is asynchronous:   |
//| it succeeds even when no server listens yet).                    |
//+------------------------------------------------------------------+
bool CAibTransport::Open()
  {
   Close();
   m_sock=new Socket(g_aibZmqContext,ZMQ_REQ);
   if(CheckPointer(m_sock)!=POINTER_DYNAMIC || !m_sock.valid())
     {
      m_error="cannot create a ZMQ_REQ socket: "+ZmqError();
      Close();
      return false;
     }
   m_sock.setLinger(0);
   m_sock.setSendTimeout(m_timeout_ms);
   m_sock.setReceiveTimeout(m_timeout_ms);
   if(!m_sock.connect(m_endpoint))
     {
      m_error="cannot connect to "+m_endpoint+": "+ZmqError();
      Close();
      return false;
     }
   return true;
  }
//+------------------------------------------------------------------+
//| Delete the socket (~Socket calls zmq_close; linger is 0).        |
//+------------------------------------------------------------------+
void CAibTransport::Close()
  {
   if(CheckPointer(m_sock)==POINTER_DYNAMIC)
      delete m_sock;
   m_sock=NULL;
  }
//+------------------------------------------------------------------+
bool CAibTransport::Init(string endpoint,int timeout_ms,int retries)
  {
   m_endpoint=endpoint;
   m_timeout_ms=(timeout_ms<50 ? 50 : timeout_ms);
   m_retries=(retries<0 ? 0 : retries);
   return Open();
  }
//+------------------------------------------------------------------+
void CAibTransport::Shutdown()
  {
   Close();
  }
//+------------------------------------------------------------------+
//| One request, one reply. At most (1 + retries) attempts of at     |
//| most timeout_ms each; on false, LastError() says why and the     |
//| socket has been reset so the next call starts clean.             |
//+------------------------------------------------------------------+
bool CAibTransport::Request(const string &request,string &reply)
  {
   reply="";
   m_error="";
   m_attempts=0;
   uchar payload[];
   if(AIB_Utf8Encode(request,payload)<=0)
     {
      m_error="empty request";
      return false;
     }
   int total=1+m_retries;
   for(int attempt=1; attempt<=total && !IsStopped(); attempt++)
     {
      m_attempts=attempt;
      if(m_sock==NULL && !Open())
         return false;   // cannot even create/connect a socket: retrying will not help
      uint started=GetTickCount();
      if(!m_sock.send(payload,true))
         m_error="send failed: "+ZmqError();
      else
        {
         PollItem items[1];
         m_sock.fillPollItem(items[0],ZMQ_POLLIN);
         int ready=Socket::poll(items,m_timeout_ms);
         if(ready>0 && items[0].hasInput())
           {
            ZmqMsg msg;
            if(m_sock.recv(msg,true))
              {
               m_rtt_ms=GetTickCount()-started;
               if(msg.more())
                 {
                  //--- a REP server never sends multipart replies; reset rather than desync
                  m_error="unexpected multipart reply";
                  Close();
                  m_reopens++;
                  return false;
                 }
               int size=(int)msg.size();
               uchar bytes[];
               if(size>0)
                  msg.getData(bytes);
               reply=AIB_Utf8Decode(bytes,size);
               return true;
              }
            m_error="recv failed: "+ZmqError();
           }
         else if(ready<0)
            m_error="poll failed: "+ZmqError();
         else
            m_error="no reply within "+IntegerToString(m_timeout_ms)+" ms";
        }
      m_error+=" (attempt "+IntegerToString(attempt)+"/"+IntegerToString(total)+")";
      //--- Lazy Pirate: the REQ socket is now waiting for a reply that may never come and
      //--- would refuse the next send (EFSM). Throw it away and start with a fresh one.
      Close();
      m_reopens++;
     }
   return false;
  }
//+------------------------------------------------------------------+
