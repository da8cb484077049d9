// transport_driver.cpp -- runs AIBridge/Transport.mqh (compiled on mqlzmq_mock.hpp) for
// tests/test_ea_sources.py. Usage: transport_driver ENDPOINT TIMEOUT_MS RETRIES < requests
// (one request per line; "@sleep MS" pauses). Per request prints one line:
// ok|fail <TAB> attempts <TAB> reopens <TAB> elapsed_ms <TAB> reply-or-error
#include <iostream>
#include <thread>

#include "gen_transport.hpp"

int main(int argc, char **argv) {
  if (argc < 4) return 2;
  CAibTransport t;
  if (!t.Init(argv[1], std::atoi(argv[2]), std::atoi(argv[3]))) {
    std::cout << "init_failed\t" << t.LastError() << "\n";
    return 0;
  }
  string line;
  while (std::getline(std::cin, line)) {
    if (line.rfind("@sleep ", 0) == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(std::atoi(line.c_str() + 7)));
      continue;
    }
    string reply;
    uint t0 = GetTickCount();
    bool ok = t.Request(line, reply);
    uint dt = GetTickCount() - t0;
    std::cout << (ok ? "ok" : "fail") << "\t" << t.LastAttempts() << "\t" << t.Reopens() << "\t"
              << dt << "\t" << (ok ? reply : t.LastError()) << std::endl;
  }
  t.Shutdown();
  return 0;
}
