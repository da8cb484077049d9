// dll_kernel32.cpp -- the stand-in's kernel32.dll for AIBridge/Transport.mqh, and the
// terminal's 32-bit address space that both stand-in DLLs share.
//
// Transport.mqh imports (its `#import "kernel32.dll"` block, turned into namespace
// mqldll_kernel32 by the rewriter):
//   void RtlMoveMemory(uchar &dst[],AIB_PTR src,AIB_SIZE_T len);
//   int  lstrlenA(AIB_PTR str);
// The definitions below have exactly the converted parameter types: if Transport.mqh's
// declaration changes and this file does not, the link fails (the point of the exercise).
//
// ---- Pointers as MQL4 sees them (the "address space", namespace mt4mem) --------------
// terminal.exe is a 32-bit process: a void* a DLL returns is an MQL `int`. Here pointers
// are 64-bit, so every pointer handed to MQL code is registered in a table and replaced by
// a 32-bit address:
//     address = 0x80000000 | slot << 24 | offset       slot 1..127, offset < 16 MiB
// i.e. always a NEGATIVE int (like a real address above 2 GB in a large-address-aware
// terminal): MQL code that tests `ptr>0` instead of `ptr!=0` breaks here too. 0 is NULL.
// A slot is a region {real pointer, size, owner}:
//   * ZeroMQ context and socket handles: size 1, freed by zmq_ctx_term / zmq_close;
//   * zmq_msg_data(): the message bytes, owned by the AibZmqMsg, freed when that message is
//     re-initialised, received into or closed (a later read is a use-after-free);
//   * zmq_strerror(): libzmq's static strings, never freed, one slot per string.
// Every read through an address is bounds-checked against its region, and every write into
// an MQL array against the array's size. Where the real terminal would read or write out of
// bounds (or crash with an access violation), the stand-in prints why and aborts.
// Under __MQL5__ pointers are `long` (64-bit) and pass through unchanged.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "mt4.hpp"  // MqlArr<T>, uchar, uint, ulong

#ifdef __MQL5__
#define AIB_PTR long
#define AIB_SIZE_T ulong
#else
#define AIB_PTR int
#define AIB_SIZE_T uint
#endif

namespace mt4mem {

[[noreturn]] void Fatal(const char *who, const char *what) {
  std::fprintf(stderr, "stand-in %s: %s (the terminal would read or write out of bounds)\n",
               who, what);
  std::fflush(stderr);
  std::abort();
}

#ifndef __MQL5__
namespace {
struct Region {
  const unsigned char *real;
  size_t size;
  const void *owner;  // nullptr: pinned (static data)
  bool used;
};
constexpr unsigned kSlots = 128;  // slot 0 is never used
constexpr size_t kMaxRegion = (size_t)1 << 24;
Region g_regions[kSlots];

unsigned SlotOf(AIB_PTR addr, const char *who) {
  unsigned u = (unsigned)addr;
  unsigned slot = (u >> 24) & 0x7Fu;
  if ((u & 0x80000000u) == 0 || slot == 0 || slot >= kSlots || !g_regions[slot].used) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "address 0x%08x was never returned by a DLL or is freed", u);
    Fatal(who, buf);
  }
  return slot;
}
}  // namespace
#endif

// Register `size` bytes at `real` (owner: who frees it, nullptr = never); returns the
// address MQL code sees. nullptr -> 0.
AIB_PTR Map(const void *real, size_t size, const void *owner) {
  if (real == nullptr) return 0;
#ifdef __MQL5__
  (void)size;
  (void)owner;
  return (AIB_PTR)(long)real;
#else
  if (size >= kMaxRegion) Fatal("Map", "region larger than 16 MiB");
  unsigned free_slot = 0;
  for (unsigned s = 1; s < kSlots; ++s) {
    Region &r = g_regions[s];
    if (r.used && r.real == real && r.size == size && r.owner == owner) return (AIB_PTR)(0x80000000u | s << 24);
    if (!r.used && free_slot == 0) free_slot = s;
  }
  if (free_slot == 0) Fatal("Map", "127 live pointers: handles or messages are leaking");
  g_regions[free_slot] = Region{(const unsigned char *)real, size, owner, true};
  return (AIB_PTR)(0x80000000u | free_slot << 24);
#endif
}

// Real pointer for `len` bytes at `addr` (0 -> nullptr); *avail = bytes left in the region.
const void *Resolve(AIB_PTR addr, size_t len, size_t *avail, const char *who) {
  if (addr == 0) {
    if (avail) *avail = 0;
    return nullptr;
  }
#ifdef __MQL5__
  (void)len;
  (void)who;
  if (avail) *avail = (size_t)-1;
  return (const void *)(long)addr;
#else
  unsigned slot = SlotOf(addr, who);
  size_t offset = (unsigned)addr & 0x00FFFFFFu;
  const Region &r = g_regions[slot];
  if (offset > r.size || len > r.size - offset) {
    char buf[128];
    std::snprintf(buf, sizeof buf, "%zu bytes at offset %zu of a %zu-byte region", len, offset,
                  r.size);
    Fatal(who, buf);
  }
  if (avail) *avail = r.size - offset;
  return r.real + offset;
#endif
}

// Forget one address (a closed socket, a terminated context).
void Unmap(AIB_PTR addr, const char *who) {
#ifdef __MQL5__
  (void)addr;
  (void)who;
#else
  if (addr == 0) return;
  g_regions[SlotOf(addr, who)].used = false;
#endif
}

// Forget every region `owner` owns (the data of a message that is closed or reused).
void UnmapOwner(const void *owner) {
#ifdef __MQL5__
  (void)owner;
#else
  for (Region &r : g_regions)
    if (r.used && r.owner == owner) r.used = false;
#endif
}

// Regions still registered, pinned ones (static strings) excluded: 0 after a clean
// Shutdown() means every socket, context and message was closed.
int LiveRegions() {
  int n = 0;
#ifndef __MQL5__
  for (const Region &r : g_regions) n += (r.used && r.owner != nullptr);
#endif
  return n;
}

}  // namespace mt4mem

namespace mqldll_kernel32 {

// void RtlMoveMemory(uchar &dst[],AIB_PTR src,AIB_SIZE_T len);
// MT4 passes the array's data pointer: writing past ArraySize(dst) corrupts the terminal.
void RtlMoveMemory(MqlArr<uchar> &dst, AIB_PTR src, AIB_SIZE_T len) {
  if ((size_t)len > dst.v.size()) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "%zu bytes into an MQL array of %zu", (size_t)len,
                  dst.v.size());
    mt4mem::Fatal("RtlMoveMemory", buf);
  }
  if (len == 0) return;
  const unsigned char *p = (const unsigned char *)mt4mem::Resolve(src, (size_t)len, nullptr,
                                                                   "RtlMoveMemory");
  if (p == nullptr) mt4mem::Fatal("RtlMoveMemory", "source is NULL");
  std::copy(p, p + len, dst.v.begin());
}

// int lstrlenA(AIB_PTR str);  (lstrlenA(NULL) is 0, as on Windows)
int lstrlenA(AIB_PTR str) {
  size_t avail = 0;
  const char *p = (const char *)mt4mem::Resolve(str, 0, &avail, "lstrlenA");
  if (p == nullptr) return 0;
  if (avail == (size_t)-1) return (int)std::strlen(p);  // __MQL5__: a plain pointer
  const void *nul = std::memchr(p, 0, avail);
  if (nul == nullptr) mt4mem::Fatal("lstrlenA", "no terminating NUL inside the region");
  return (int)((const char *)nul - p);
}

}  // namespace mqldll_kernel32
