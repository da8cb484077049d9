// transport_main.cpp -- runs AIBridge/Transport.mqh, compiled by g++ through the MQL
// rewriter and linked with the stand-in DLLs (dll_libzmq.cpp on the real libzmq,
// dll_kernel32.cpp), for tests/test_ea_transport.py.
//
// Usage: transport_main ENDPOINT TIMEOUT_MS RETRIES < commands
// Prints "version<TAB>x.y.z" (CAibTransport::Version()) and "init<TAB>ok|<error>", then one
// line per command:
//   <request>       ok|fail <TAB> attempts <TAB> reopens <TAB> elapsed_ms <TAB> reply-or-error
//   @sleep MS       (nothing; sleeps)
//   @shutdown       "shutdown<TAB>live=<n>": Shutdown(), then the pointers still registered
//   @init           "init<TAB>ok|<error>": Init() again with the same arguments
// At the end: Shutdown() and "end<TAB>live=<n>" (n = sockets, contexts, messages not
// closed; 0 when the transport pairs every create with its close).
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "transport_gen.hpp"  // mt4.hpp + Text.mqh + Transport.mqh, rewritten to C++

namespace mt4mem {
int LiveRegions();
}

int main(int argc, char **argv) {
  if (argc < 4) return 2;
  const string endpoint = argv[1];
  const int timeout_ms = std::atoi(argv[2]), retries = std::atoi(argv[3]);
  CAibTransport t;
  std::cout << "version\t" << t.Version() << std::endl;
  bool ok = t.Init(endpoint, timeout_ms, retries);
  std::cout << "init\t" << (ok ? string("ok") : t.LastError()) << std::endl;
  string line;
  while (std::getline(std::cin, line)) {
    if (line.rfind("@sleep ", 0) == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(std::atoi(line.c_str() + 7)));
      continue;
    }
    if (line == "@shutdown") {
      t.Shutdown();
      std::cout << "shutdown\tlive=" << mt4mem::LiveRegions() << std::endl;
      continue;
    }
    if (line == "@init") {
      ok = t.Init(endpoint, timeout_ms, retries);
      std::cout << "init\t" << (ok ? string("ok") : t.LastError()) << std::endl;
      continue;
    }
    string reply;
    auto t0 = std::chrono::steady_clock::now();
    bool done = t.Request(line, reply);
    long dt = (long)std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - t0)
                  .count();
    std::cout << (done ? "ok" : "fail") << "\t" << t.LastAttempts() << "\t" << t.Reopens() << "\t"
              << dt << "\t" << (done ? reply : t.LastError()) << std::endl;
  }
  t.Shutdown();
  std::cout << "end\tlive=" << mt4mem::LiveRegions() << std::endl;
  return 0;
}
