// mqlzmq_mock.hpp -- the subset of the mql-zmq 1.5 API listed in mt4_ea/mql-zmq-api.txt,
// re-implemented in C++ on the real libzmq (the copy bundled with pyzmq), so that
// tests/test_ea_sources.py can compile AIBridge/Transport.mqh and run its lazy-pirate logic
// against real sockets. Every public name here must be in mql-zmq-api.txt (a test checks),
// and each body does what the wrapper's body does (see the file named in that list).
#pragma once
#include <chrono>
#include <cstring>

#include "mql4_shim.hpp"

extern "C" {
typedef struct {
  unsigned char _[64];
} zmq_msg_t;
typedef struct {
  void *socket;
  int fd;
  short events;
  short revents;
} zmq_pollitem_t;
void *zmq_ctx_new(void);
int zmq_ctx_term(void *context);
void *zmq_socket(void *context, int type);
int zmq_close(void *s);
int zmq_connect(void *s, const char *addr);
int zmq_setsockopt(void *s, int option, const void *optval, size_t optvallen);
int zmq_send(void *s, const void *buf, size_t len, int flags);
int zmq_msg_init(zmq_msg_t *msg);
int zmq_msg_close(zmq_msg_t *msg);
int zmq_msg_recv(zmq_msg_t *msg, void *s, int flags);
void *zmq_msg_data(zmq_msg_t *msg);
size_t zmq_msg_size(const zmq_msg_t *msg);
int zmq_msg_more(const zmq_msg_t *msg);
int zmq_poll(zmq_pollitem_t *items, int nitems, long timeout);
int zmq_errno(void);
const char *zmq_strerror(int errnum);
void zmq_version(int *major, int *minor, int *patch);
}

#define ZMQ_REQ 3
#define ZMQ_POLLIN 1
#define ZMQ_DONTWAIT 1
#define ZMQ_LINGER 17
#define ZMQ_RCVTIMEO 27
#define ZMQ_SNDTIMEO 28

// ---- MQL runtime bits Transport.mqh uses
enum ENUM_POINTER_TYPE { POINTER_INVALID = 0, POINTER_DYNAMIC = 1, POINTER_AUTOMATIC = 2 };
template <class T>
ENUM_POINTER_TYPE CheckPointer(T *p) { return p ? POINTER_DYNAMIC : POINTER_INVALID; }
inline bool IsStopped() { return false; }
inline uint GetTickCount() {
  using namespace std::chrono;
  return (uint)duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

// ---- Include/Zmq/Context.mqh
class Context {
 public:
  void *m_ref;
  Context(string shared = "") {
    (void)shared;
    m_ref = zmq_ctx_new();
  }
  ~Context() { zmq_ctx_term(m_ref); }
  void *ref() const { return m_ref; }
};

// ---- Include/Zmq/Socket.mqh: struct PollItem
struct PollItem {
  void *socket;
  int fd;  // SOCKET (uintptr) on Windows, int on Linux: layout of zmq_pollitem_t here
  short events;
  short revents;
  bool hasInput() const { return (revents & ZMQ_POLLIN) != 0; }
};

// ---- Include/Zmq/ZmqMsg.mqh
struct ZmqMsg {
  zmq_msg_t m;
  ZmqMsg() { zmq_msg_init(&m); }
  ~ZmqMsg() { zmq_msg_close(&m); }
  size_t size() { return zmq_msg_size(&m); }
  bool more() { return 1 == zmq_msg_more(&m); }
  void getData(MqlArr<uchar> &data) {
    size_t n = size();
    if ((size_t)ArraySize(data) < n) ArrayResize(data, (int)n);
    const uchar *src = (const uchar *)zmq_msg_data(&m);
    for (size_t i = 0; i < (size_t)ArraySize(data) && i < n; ++i) data[(int)i] = src[i];
  }
};

// ---- Include/Zmq/Socket.mqh + SocketOptions.mqh
class Socket {
  void *m_ref;

 public:
  Socket(const Context &ctx, int type) : m_ref(zmq_socket(ctx.ref(), type)) {}
  virtual ~Socket() { zmq_close(m_ref); }
  bool valid() const { return m_ref != nullptr; }
  bool connect(string addr) { return 0 == zmq_connect(m_ref, addr.c_str()); }
  bool send(const MqlArr<uchar> &buf, bool nowait = false) {
    std::string bytes(buf.v.begin(), buf.v.end());
    return -1 != zmq_send(m_ref, bytes.data(), bytes.size(), nowait ? ZMQ_DONTWAIT : 0);
  }
  bool recv(ZmqMsg &msg, bool nowait = false) {
    return -1 != zmq_msg_recv(&msg.m, m_ref, nowait ? ZMQ_DONTWAIT : 0);
  }
  template <size_t N>
  static int poll(PollItem (&arr)[N], long timeout) {
    return zmq_poll(reinterpret_cast<zmq_pollitem_t *>(arr), (int)N, timeout);
  }
  void fillPollItem(PollItem &item, short events) {
    item.socket = m_ref;
    item.fd = 0;
    item.events = events;
    item.revents = 0;
  }
  bool setLinger(int value) { return 0 == zmq_setsockopt(m_ref, ZMQ_LINGER, &value, sizeof value); }
  bool setSendTimeout(int value) {
    return 0 == zmq_setsockopt(m_ref, ZMQ_SNDTIMEO, &value, sizeof value);
  }
  bool setReceiveTimeout(int value) {
    return 0 == zmq_setsockopt(m_ref, ZMQ_RCVTIMEO, &value, sizeof value);
  }
};

// ---- Include/Zmq/Zmq.mqh
class Zmq {
 public:
  static int errorNumber() { return zmq_errno(); }
  static string errorMessage(int error = 0) {
    return zmq_strerror(error > 0 ? error : zmq_errno());
  }
  static string getVersion() {
    int a, b, c;
    zmq_version(&a, &b, &c);
    return std::to_string(a) + "." + std::to_string(b) + "." + std::to_string(c);
  }
};
