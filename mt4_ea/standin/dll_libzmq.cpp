// dll_libzmq.cpp -- the stand-in's libzmq.dll: the functions AIBridge/Transport.mqh declares
// in its `#import "libzmq.dll"` block, with the parameter types the rewriter gives them
// (namespace mqldll_libzmq; `const uchar &a[]` -> `const MqlArr<uchar> &a`; struct
// references stay references), forwarding to the REAL libzmq C API (pyzmq's bundled
// libzmq.so, linked by the build) and marshalling the way the terminal does:
//   * pointers are 32-bit `int` addresses from the shared table in dll_kernel32.cpp
//     (namespace mt4mem; `long` pointers unchanged under __MQL5__);
//   * an MQL uchar array is passed as a pointer to its bytes: copied to a contiguous buffer,
//     with a check that the C side does not read past ArraySize (MT4 would read garbage);
//   * AibZmqMsg (64 opaque bytes) is copied into an aligned zmq_msg_t for the call and back
//     (zmq_msg_t is relocatable: libzmq itself moves it by assignment); a data pointer into
//     the inline bytes of a small message is translated to the same offset in AibZmqMsg;
//   * AibZmqPollItem (12 bytes on MT4, 24 on MT5) is translated to the real zmq_pollitem_t.
// A mismatch between these definitions and Transport.mqh's declarations is a link error.
//
// The two MQL structs are declared again here, identical to Transport.mqh (the dll is a
// separate translation unit and the .mqh is MQL; tests/test_ea_transport.py compares the
// two declarations token by token, and the static_asserts pin the byte layout).
#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "mt4.hpp"  // MqlArr<T>, uchar, uint, ulong

#ifdef __MQL5__
#define AIB_PTR long
#define AIB_SIZE_T ulong
#else
#define AIB_PTR int
#define AIB_SIZE_T uint
#endif

// ---- identical to Transport.mqh
struct AibZmqMsg
  {
   uchar             opaque[64];
  };
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
// ---- end of the copy
static_assert(sizeof(AibZmqMsg) == 64, "zmq_msg_t is 64 bytes");
#ifdef __MQL5__
static_assert(sizeof(AibZmqPollItem) == 24, "zmq_pollitem_t on 64-bit Windows is 24 bytes");
static_assert(offsetof(AibZmqPollItem, revents) == 18, "revents at byte 18 on 64-bit");
#else
static_assert(sizeof(AibZmqPollItem) == 12, "zmq_pollitem_t on 32-bit Windows is 12 bytes");
static_assert(offsetof(AibZmqPollItem, revents) == 10, "revents at byte 10 on 32-bit");
#endif

// ---- the real libzmq C API (zmq.h 4.3.5, the non-Windows branch of its types)
extern "C" {
typedef struct zmq_msg_t {
  unsigned char _[64] __attribute__((aligned(sizeof(void *))));
} zmq_msg_t;
typedef struct zmq_pollitem_t {
  void *socket;
  int fd;
  short events;
  short revents;
} zmq_pollitem_t;
int zmq_errno(void);
const char *zmq_strerror(int errnum_);
void zmq_version(int *major_, int *minor_, int *patch_);
void *zmq_ctx_new(void);
int zmq_ctx_term(void *context_);
void *zmq_socket(void *, int type_);
int zmq_close(void *s_);
int zmq_connect(void *s_, const char *addr_);
int zmq_setsockopt(void *s_, int option_, const void *optval_, size_t optvallen_);
int zmq_send(void *s_, const void *buf_, size_t len_, int flags_);
int zmq_msg_init(zmq_msg_t *msg_);
int zmq_msg_recv(zmq_msg_t *msg_, void *s_, int flags_);
void *zmq_msg_data(zmq_msg_t *msg_);
size_t zmq_msg_size(const zmq_msg_t *msg_);
int zmq_msg_more(const zmq_msg_t *msg_);
int zmq_msg_close(zmq_msg_t *msg_);
int zmq_poll(zmq_pollitem_t *items_, int nitems_, long timeout_);
}

// ---- the address space (dll_kernel32.cpp)
namespace mt4mem {
[[noreturn]] void Fatal(const char *who, const char *what);
AIB_PTR Map(const void *real, size_t size, const void *owner);
const void *Resolve(AIB_PTR addr, size_t len, size_t *avail, const char *who);
void Unmap(AIB_PTR addr, const char *who);
void UnmapOwner(const void *owner);
}  // namespace mt4mem

namespace {
const char kHandle = 0;  // owner tag of context/socket handles

void *Handle(AIB_PTR h, const char *who) {
  return const_cast<void *>(mt4mem::Resolve(h, 1, nullptr, who));
}

// An AibZmqMsg seen as an aligned zmq_msg_t for the duration of one call.
struct MsgView {
  zmq_msg_t m;
  AibZmqMsg &mql;
  explicit MsgView(AibZmqMsg &x) : mql(x) { std::memcpy(&m, &x, sizeof m); }
  ~MsgView() { std::memcpy(&mql, &m, sizeof m); }
  MsgView(const MsgView &) = delete;
  MsgView &operator=(const MsgView &) = delete;
};

// The bytes of an MQL array the C side will read: at most ArraySize elements.
std::vector<unsigned char> Bytes(const MqlArr<uchar> &a, size_t len, const char *who) {
  if (len > a.v.size()) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "reads %zu bytes from an MQL array of %zu", len, a.v.size());
    mt4mem::Fatal(who, buf);
  }
  return std::vector<unsigned char>(a.v.begin(), a.v.begin() + (std::ptrdiff_t)len);
}
}  // namespace

namespace mqldll_libzmq {

int zmq_errno() { return ::zmq_errno(); }

AIB_PTR zmq_strerror(int errnum) {
  const char *s = ::zmq_strerror(errnum);
  return mt4mem::Map(s, std::strlen(s) + 1, nullptr);  // static text: pinned
}

void zmq_version(int &major, int &minor, int &patch) { ::zmq_version(&major, &minor, &patch); }

AIB_PTR zmq_ctx_new() { return mt4mem::Map(::zmq_ctx_new(), 1, &kHandle); }

int zmq_ctx_term(AIB_PTR context) {
  int rc = ::zmq_ctx_term(Handle(context, "zmq_ctx_term"));
  if (rc == 0) mt4mem::Unmap(context, "zmq_ctx_term");
  return rc;
}

AIB_PTR zmq_socket(AIB_PTR context, int type) {
  return mt4mem::Map(::zmq_socket(Handle(context, "zmq_socket"), type), 1, &kHandle);
}

int zmq_close(AIB_PTR socket) {
  int rc = ::zmq_close(Handle(socket, "zmq_close"));
  if (rc == 0) mt4mem::Unmap(socket, "zmq_close");
  return rc;
}

// The terminal passes the array's bytes; libzmq reads a C string: the NUL must be inside.
int zmq_connect(AIB_PTR socket, const MqlArr<uchar> &endpoint) {
  std::vector<unsigned char> b = Bytes(endpoint, endpoint.v.size(), "zmq_connect");
  if (std::find(b.begin(), b.end(), 0) == b.end())
    mt4mem::Fatal("zmq_connect", "endpoint array is not NUL-terminated");
  return ::zmq_connect(Handle(socket, "zmq_connect"), (const char *)b.data());
}

int zmq_setsockopt(AIB_PTR socket, int option, int &optval, AIB_SIZE_T optvallen) {
  if ((size_t)optvallen > sizeof optval) mt4mem::Fatal("zmq_setsockopt", "optvallen > 4");
  return ::zmq_setsockopt(Handle(socket, "zmq_setsockopt"), option, &optval, optvallen);
}

int zmq_send(AIB_PTR socket, const MqlArr<uchar> &buf, AIB_SIZE_T len, int flags) {
  std::vector<unsigned char> b = Bytes(buf, (size_t)len, "zmq_send");
  return ::zmq_send(Handle(socket, "zmq_send"), b.data(), b.size(), flags);
}

int zmq_msg_init(AibZmqMsg &msg) {
  mt4mem::UnmapOwner(&msg);
  MsgView v(msg);
  return ::zmq_msg_init(&v.m);
}

int zmq_msg_recv(AibZmqMsg &msg, AIB_PTR socket, int flags) {
  mt4mem::UnmapOwner(&msg);  // the previous content is released by libzmq
  MsgView v(msg);
  return ::zmq_msg_recv(&v.m, Handle(socket, "zmq_msg_recv"), flags);
}

AIB_PTR zmq_msg_data(AibZmqMsg &msg) {
  MsgView v(msg);
  const unsigned char *data = (const unsigned char *)::zmq_msg_data(&v.m);
  size_t size = ::zmq_msg_size(&v.m);
  const unsigned char *view = (const unsigned char *)&v.m;
  if (data >= view && data < view + sizeof v.m)  // small message: bytes inside zmq_msg_t
    data = (const unsigned char *)&msg + (data - view);
  return mt4mem::Map(data, size, &msg);
}

AIB_SIZE_T zmq_msg_size(AibZmqMsg &msg) {
  MsgView v(msg);
  return (AIB_SIZE_T)::zmq_msg_size(&v.m);
}

int zmq_msg_more(AibZmqMsg &msg) {
  MsgView v(msg);
  return ::zmq_msg_more(&v.m);
}

int zmq_msg_close(AibZmqMsg &msg) {
  mt4mem::UnmapOwner(&msg);
  MsgView v(msg);
  return ::zmq_msg_close(&v.m);
}

// One struct by reference = a pointer to one zmq_pollitem_t: nitems above 1 would make
// libzmq read past it.
int zmq_poll(AibZmqPollItem &items, int nitems, int timeout) {
  if (nitems > 1) mt4mem::Fatal("zmq_poll", "nitems > 1 with one AibZmqPollItem");
  zmq_pollitem_t real;
  real.socket = items.socket == 0 ? nullptr : Handle(items.socket, "zmq_poll");
  real.fd = (int)items.fd;
  real.events = items.events;
  real.revents = 0;
  int rc = ::zmq_poll(&real, nitems, (long)timeout);
  items.revents = real.revents;
  return rc;
}

}  // namespace mqldll_libzmq
