// Socket shim: POSIX and Winsock behind one small API.
#include "socket_shim.h"

#include <cstring>

#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>
#else
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cerrno>
#endif

namespace wfgta::net {

#ifdef _WIN32
using Native = SOCKET;
static Native to_native(Socket s) { return static_cast<Native>(s); }
static bool would_block() { int e = WSAGetLastError(); return e == WSAEWOULDBLOCK || e == WSAEINPROGRESS; }
static void set_nonblocking(Native s, bool on) { u_long v = on ? 1 : 0; ioctlsocket(s, FIONBIO, &v); }
bool init() {
    WSADATA d;
    return WSAStartup(MAKEWORD(2, 2), &d) == 0;
}
void close_socket(Socket s) { if (s != kInvalid) closesocket(to_native(s)); }
#else
using Native = int;
static Native to_native(Socket s) { return static_cast<Native>(s); }
static bool would_block() { return errno == EINPROGRESS || errno == EWOULDBLOCK || errno == EAGAIN; }
static void set_nonblocking(Native s, bool on) {
    int fl = fcntl(s, F_GETFL, 0);
    fcntl(s, F_SETFL, on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK));
}
bool init() { return true; }
void close_socket(Socket s) { if (s != kInvalid) ::close(to_native(s)); }
#endif

static int wait_fd(Native s, bool for_write, int timeout_ms) {
#ifdef _WIN32
    fd_set set;
    FD_ZERO(&set);
    FD_SET(s, &set);
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    int r = select(0, for_write ? nullptr : &set, for_write ? &set : nullptr, nullptr, &tv);
    return r > 0 ? 1 : (r == 0 ? 0 : -1);
#else
    pollfd p{s, static_cast<short>(for_write ? POLLOUT : POLLIN), 0};
    int r = ::poll(&p, 1, timeout_ms);
    if (r < 0) return errno == EINTR ? 0 : -1;
    return r > 0 ? 1 : 0;
#endif
}

Socket connect_tcp(const std::string& host, int port, int timeout_ms) {
    addrinfo hints{};
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    std::string service = std::to_string(port);
    if (getaddrinfo(host.c_str(), service.c_str(), &hints, &res) != 0 || !res) return kInvalid;
    Native s = ::socket(res->ai_family, res->ai_socktype, res->ai_protocol);
#ifdef _WIN32
    if (s == INVALID_SOCKET) { freeaddrinfo(res); return kInvalid; }
#else
    if (s < 0) { freeaddrinfo(res); return kInvalid; }
#endif
    set_nonblocking(s, true);
    int r = ::connect(s, res->ai_addr, static_cast<int>(res->ai_addrlen));
    freeaddrinfo(res);
    bool ok = r == 0;
    if (!ok && would_block() && wait_fd(s, true, timeout_ms) == 1) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(s, SOL_SOCKET, SO_ERROR, reinterpret_cast<char*>(&err), &len);
        ok = err == 0;
    }
    if (!ok) {
        close_socket(static_cast<Socket>(s));
        return kInvalid;
    }
    set_nonblocking(s, false);
    int one = 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, reinterpret_cast<const char*>(&one), sizeof one);
    // A collector that stops reading must not wedge the sender thread for ever.
#ifdef _WIN32
    DWORD send_timeout_ms = 2000;
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, reinterpret_cast<const char*>(&send_timeout_ms), sizeof send_timeout_ms);
#else
    timeval send_timeout{2, 0};
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof send_timeout);
#endif
#ifdef SO_NOSIGPIPE
    setsockopt(s, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#endif
    return static_cast<Socket>(s);
}

bool send_all(Socket s, const void* data, size_t n) {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
#ifdef _WIN32
        int r = ::send(to_native(s), p, static_cast<int>(n), 0);
#else
        ssize_t r = ::send(to_native(s), p, n, MSG_NOSIGNAL);
        if (r < 0 && errno == EINTR) continue;
#endif
        if (r <= 0) return false;
        p += r;
        n -= static_cast<size_t>(r);
    }
    return true;
}

int wait_readable(Socket s, int timeout_ms) { return wait_fd(to_native(s), false, timeout_ms); }

long recv_some(Socket s, void* buf, size_t n) {
#ifdef _WIN32
    int r = ::recv(to_native(s), static_cast<char*>(buf), static_cast<int>(n), 0);
#else
    ssize_t r;
    do {
        r = ::recv(to_native(s), buf, n, 0);
    } while (r < 0 && errno == EINTR);
#endif
    return r < 0 ? -1 : static_cast<long>(r);
}

}  // namespace wfgta::net
