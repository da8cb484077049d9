//+------------------------------------------------------------------+
//| AIBridge/Transport.mqh                                           |
//| REQ client on the libzmq C API (libzmq.dll, #import) with the    |
//| zguide "Lazy Pirate" pattern: bounded waits, close + reopen on   |
//| timeout, N retries, then give up and let the caller skip the bar.|
//|                                                                  |
//| No wrapper library: the functions below are declared exactly as |
//| libzmq 4.3's zmq.h exports them, with MQL types of the same size |
//| (tests/test_ea_transport.py checks names, arity and which        |
//| parameters are pointers against zmq.h, for MQL4 and MQL5).       |
//|                                                                  |
//| Rules this file follows:                                         |
//|  * one context per EA: created in Init(), terminated in          |
//|    Shutdown() (OnDeinit) after the socket has been closed;       |
//|  * one REQ socket, created in Init() and only re-created after a |
//|    failed request - never per tick;                              |
//|  * never a blocking recv: zmq_poll() bounded by the timeout,     |
//|    then zmq_msg_recv(ZMQ_DONTWAIT) only when poll saw input;     |
//|    ZMQ_RCVTIMEO/ZMQ_SNDTIMEO are also set as a second guard;     |
//|  * a REQ socket that sent and got no reply is stuck (EFSM on the |
//|    next send): close it and create a new one;                    |
//|  * linger 0 so closing never waits for an unsent request and     |
//|    zmq_ctx_term() returns at once;                               |
//|  * every zmq_msg_init() is paired with zmq_msg_close(); bytes    |
//|    are copied out of the message before it is closed, and        |
//|    converted explicitly (UTF-8, Text.mqh).                       |
//+------------------------------------------------------------------+
#property strict

#include <AIBridge/Text.mqh>

//--- C types as MQL types of the same size.
//--- MT4 (terminal.exe) is a 32-bit Windows process: void* and size_t are 4 bytes.
//--- MT5 is a 64-bit process: void* and size_t are 8 bytes (Windows x64 is LLP64).
//--- C `long` (zmq_poll's timeout) is 4 bytes on Windows in BOTH cases -> MQL int.
//--- Pointers are compared with 0 only: a 32-bit address above 2 GB is a negative int.
#ifdef __MQL5__
#define AIB_PTR    long
#define AIB_SIZE_T ulong
#else
#define AIB_PTR    int
#define AIB_SIZE_T uint
#endif

//--- constants from zmq.h (libzmq 4.x; unchanged since 3.x)
#define AIB_ZMQ_REQ       3
#define AIB_ZMQ_LINGER    17
#define AIB_ZMQ_RCVTIMEO  27
#define AIB_ZMQ_SNDTIMEO  28
#define AIB_ZMQ_DONTWAIT  1
#define AIB_ZMQ_POLLIN    1
#define AIB_EINTR         4

//--- zmq_msg_t: 64 opaque bytes (zmq.h: `unsigned char _[64]`, aligned to the pointer size;
//--- x86/x64 tolerate any alignment). Only ever a local, passed by reference (a pointer).
struct AibZmqMsg
  {
   uchar             opaque[64];
  };

//--- zmq_pollitem_t {void *socket; zmq_fd_t fd; short events; short revents;}, zmq_fd_t =
//--- SOCKET (UINT_PTR) on Windows. Byte layout:
//---   MT4, 32-bit: socket @0 (4) | fd @4 (4) | events @8 (2) | revents @10 (2)   = 12 bytes
//---   MT5, 64-bit: socket @0 (8) | fd @8 (8) | events @16 (2) | revents @18 (2)
//---                | padding @20 (4, C aligns the struct to 8)                  = 24 bytes
//--- MQL packs structs to 1 byte by default, so the MT5 padding is an explicit member.
//--- fd is only read when socket is 0 (raw sockets); we always poll a ZeroMQ socket.
struct AibZmqPollItem
  {
   AIB_PTR           socket;
   AIB_PTR           fd;
   short             events;
   short             revents;
#ifdef __MQL5__
   int               padding;
#endif
  };

//--- libzmq.dll (MQL4/Libraries; 32-bit build for MT4, 64-bit for MT5; needs libsodium.dll
//--- next to it when built with CURVE). C prototypes in the comments, from zmq.h 4.3.5.
#import "libzmq.dll"
int        zmq_errno();                                     // int zmq_errno (void)
AIB_PTR    zmq_strerror(int errnum);                        // const char *zmq_strerror (int)
void       zmq_version(int &major,int &minor,int &patch);   // void zmq_version (int*, int*, int*)
AIB_PTR    zmq_ctx_new();                                   // void *zmq_ctx_new (void)
int        zmq_ctx_term(AIB_PTR context);                   // int zmq_ctx_term (void*)
AIB_PTR    zmq_socket(AIB_PTR context,int type);            // void *zmq_socket (void*, int)
int        zmq_close(AIB_PTR socket);                       // int zmq_close (void*)
int        zmq_connect(AIB_PTR socket,const uchar &endpoint[]);                  // (void*, const char*)
int        zmq_setsockopt(AIB_PTR socket,int option,int &optval,AIB_SIZE_T optvallen); // (void*, int, const void*, size_t)
int        zmq_send(AIB_PTR socket,const uchar &buf[],AIB_SIZE_T len,int flags);  // (void*, const void*, size_t, int)
int        zmq_msg_init(AibZmqMsg &msg);                    // int zmq_msg_init (zmq_msg_t*)
int        zmq_msg_recv(AibZmqMsg &msg,AIB_PTR socket,int flags);  // int zmq_msg_recv (zmq_msg_t*, void*, int)
AIB_PTR    zmq_msg_data(AibZmqMsg &msg);                    // void *zmq_msg_data (zmq_msg_t*)
AIB_SIZE_T zmq_msg_size(AibZmqMsg &msg);                    // size_t zmq_msg_size (const zmq_msg_t*)
int        zmq_msg_more(AibZmqMsg &msg);                    // int zmq_msg_more (const zmq_msg_t*)
int        zmq_msg_close(AibZmqMsg &msg);                   // int zmq_msg_close (zmq_msg_t*)
int        zmq_poll(AibZmqPollItem &items,int nitems,int timeout);  // (zmq_pollitem_t*, int, long)
#import

//--- kernel32.dll: copy bytes from a pointer libzmq returned (message data, error text)
//--- into an MQL array; the array must already hold len bytes.
#import "kernel32.dll"
void       RtlMoveMemory(uchar &dst[],AIB_PTR src,AIB_SIZE_T len);  // (VOID*, const VOID*, SIZE_T)
int        lstrlenA(AIB_PTR str);                                   // int lstrlenA (LPCSTR)
#import

//+------------------------------------------------------------------+
//| "Resource temporarily unavailable (zmq errno 11)" for a code     |
//| zmq_errno() returned.                                            |
//+------------------------------------------------------------------+
string AIB_ZmqErrorText(int code)
  {
   string text="";
   AIB_PTR chars=zmq_strerror(code);
   if(chars!=0)
     {
      int n=lstrlenA(chars);
      if(n>0)
        {
         uchar bytes[];
         ArrayResize(bytes,n);
         RtlMoveMemory(bytes,chars,(AIB_SIZE_T)n);
         text=CharArrayToString(bytes,0,n);
        }
     }
   if(text=="")
      text="unknown error";
   return text+" (zmq errno "+IntegerToString(code)+")";
  }

//+------------------------------------------------------------------+
//| Lazy-pirate REQ client                                           |
//+------------------------------------------------------------------+
class CAibTransport
  {
private:
   AIB_PTR           m_ctx;
   AIB_PTR           m_sock;
   string            m_endpoint;
   int               m_timeout_ms;
   int               m_retries;
   string            m_error;
   int               m_attempts;
   int               m_reopens;
   uint              m_rtt_ms;

   bool              Open();
   void              Close();
   bool              SetIntOption(int option,int value,string name);
   int               ReadReply(string &reply,uint started);
   string            ZmqError();

public:
                     CAibTransport();
                    ~CAibTransport();
   bool              Init(string endpoint,int timeout_ms,int retries);
   bool              Request(const string &request,string &reply);
   void              Shutdown();
   string            Version();
   string            LastError() const { return m_error; }
   int               LastAttempts() const { return m_attempts; }
   int               Reopens() const { return m_reopens; }
   uint              LastRttMs() const { return m_rtt_ms; }
   string            Endpoint() const { return m_endpoint; }
  };
//+------------------------------------------------------------------+
CAibTransport::CAibTransport()
  {
   m_ctx=0;
   m_sock=0;
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
   Shutdown();
  }
//+------------------------------------------------------------------+
//| Text of the last libzmq error. Call it right after the failing   |
//| zmq_* call: zmq_errno() is overwritten by the next call.         |
//+------------------------------------------------------------------+
string CAibTransport::ZmqError()
  {
   return AIB_ZmqErrorText(zmq_errno());
  }
//+------------------------------------------------------------------+
//| "4.3.5": version of the libzmq.dll the terminal loaded.          |
//+------------------------------------------------------------------+
string CAibTransport::Version()
  {
   int major=0,minor=0,patch=0;
   zmq_version(major,minor,patch);
   return IntegerToString(major)+"."+IntegerToString(minor)+"."+IntegerToString(patch);
  }
//+------------------------------------------------------------------+
bool CAibTransport::SetIntOption(int option,int value,string name)
  {
   int optval=value;
   if(zmq_setsockopt(m_sock,option,optval,(AIB_SIZE_T)4)==0)
      return true;
   m_error="cannot set "+name+": "+ZmqError();
   return false;
  }
//+------------------------------------------------------------------+
//| Create the REQ socket and connect it (connect is asynchronous:   |
//| it succeeds even when no server listens yet).                    |
//+------------------------------------------------------------------+
bool CAibTransport::Open()
  {
   Close();
   if(m_ctx==0)
     {
      m_error="transport not initialised (Init not called, or Shutdown done)";
      return false;
     }
   m_sock=zmq_socket(m_ctx,AIB_ZMQ_REQ);
   if(m_sock==0)
     {
      m_error="cannot create a ZMQ_REQ socket: "+ZmqError();
      return false;
     }
   if(!SetIntOption(AIB_ZMQ_LINGER,0,"ZMQ_LINGER") ||
      !SetIntOption(AIB_ZMQ_SNDTIMEO,m_timeout_ms,"ZMQ_SNDTIMEO") ||
      !SetIntOption(AIB_ZMQ_RCVTIMEO,m_timeout_ms,"ZMQ_RCVTIMEO"))
     {
      Close();
      return false;
     }
   uchar endpoint[];
   int n=AIB_Utf8Encode(m_endpoint,endpoint);
   ArrayResize(endpoint,n+1);
   endpoint[n]=0;   // a C string
   if(zmq_connect(m_sock,endpoint)!=0)
     {
      m_error="cannot connect to "+m_endpoint+": "+ZmqError();
      Close();
      return false;
     }
   return true;
  }
//+------------------------------------------------------------------+
//| Close the socket (linger 0: pending messages are dropped).       |
//+------------------------------------------------------------------+
void CAibTransport::Close()
  {
   if(m_sock!=0)
      zmq_close(m_sock);
   m_sock=0;
  }
//+------------------------------------------------------------------+
bool CAibTransport::Init(string endpoint,int timeout_ms,int retries)
  {
   m_endpoint=endpoint;
   m_timeout_ms=(timeout_ms<50 ? 50 : timeout_ms);
   m_retries=(retries<0 ? 0 : retries);
   m_error="";
   if(m_ctx==0)
     {
      m_ctx=zmq_ctx_new();
      if(m_ctx==0)
        {
         m_error="cannot create a ZeroMQ context: "+ZmqError();
         return false;
        }
     }
   return Open();
  }
//+------------------------------------------------------------------+
//| Socket first, then the context (zmq_ctx_term waits for open      |
//| sockets; with none left it returns at once).                     |
//+------------------------------------------------------------------+
void CAibTransport::Shutdown()
  {
   Close();
   if(m_ctx==0)
      return;
   for(int i=0; i<10; i++)
      if(zmq_ctx_term(m_ctx)==0 || zmq_errno()!=AIB_EINTR)
         break;
   m_ctx=0;
  }
//+------------------------------------------------------------------+
//| Receive the reply poll announced. 1: reply set; 0: recv failed   |
//| (m_error set); -1: multipart reply (m_error set).                |
//+------------------------------------------------------------------+
int CAibTransport::ReadReply(string &reply,uint started)
  {
   AibZmqMsg msg;
   if(zmq_msg_init(msg)!=0)
     {
      m_error="zmq_msg_init failed: "+ZmqError();
      return 0;
     }
   if(zmq_msg_recv(msg,m_sock,AIB_ZMQ_DONTWAIT)<0)
     {
      m_error="recv failed: "+ZmqError();
      zmq_msg_close(msg);
      return 0;
     }
   m_rtt_ms=GetTickCount()-started;
   bool more=(zmq_msg_more(msg)!=0);
   int size=(int)zmq_msg_size(msg);
   uchar bytes[];
   if(!more && size>0)
     {
      ArrayResize(bytes,size);
      RtlMoveMemory(bytes,zmq_msg_data(msg),(AIB_SIZE_T)size);
     }
   zmq_msg_close(msg);
   if(more)
     {
      //--- a REP server never sends multipart replies; reset rather than desync
      m_error="unexpected multipart reply";
      return -1;
     }
   reply=AIB_Utf8Decode(bytes,size);
   return 1;
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
   int len=AIB_Utf8Encode(request,payload);
   if(len<=0)
     {
      m_error="empty request";
      return false;
     }
   int total=1+m_retries;
   for(int attempt=1; attempt<=total && !IsStopped(); attempt++)
     {
      m_attempts=attempt;
      if(m_sock==0 && !Open())
         return false;   // cannot even create/connect a socket: retrying will not help
      uint started=GetTickCount();
      if(zmq_send(m_sock,payload,(AIB_SIZE_T)len,AIB_ZMQ_DONTWAIT)!=len)
         m_error="send failed: "+ZmqError();
      else
        {
         AibZmqPollItem item;
         item.socket=m_sock;
         item.fd=0;
         item.events=(short)AIB_ZMQ_POLLIN;
         item.revents=0;
         int ready=zmq_poll(item,1,m_timeout_ms);
         if(ready>0 && (item.revents&AIB_ZMQ_POLLIN)!=0)
           {
            int got=ReadReply(reply,started);
            if(got>0)
               return true;
            if(got<0)
              {
               Close();
               m_reopens++;
               return false;
              }
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
