// The few TCP calls the sender needs, over POSIX sockets or Winsock (_WIN32).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace wfgta::net {

using Socket = intptr_t;
constexpr Socket kInvalid = -1;

bool init();  // WSAStartup on Windows; no-op elsewhere
// Connects with a timeout; kInvalid on failure. TCP_NODELAY and a 2 s send timeout are set.
Socket connect_tcp(const std::string& host, int port, int timeout_ms);
// Sends everything or returns false.
bool send_all(Socket s, const void* data, size_t n);
// Waits up to timeout_ms for data; 1 readable, 0 timeout, -1 error.
int wait_readable(Socket s, int timeout_ms);
// recv(); returns bytes read, 0 on orderly close, -1 on error.
long recv_some(Socket s, void* buf, size_t n);
void close_socket(Socket s);

}  // namespace wfgta::net
