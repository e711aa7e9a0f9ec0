// Sender over loopback: hello first on every connection, 4-byte little-endian framing, control
// messages reach the inbox, and the sender reconnects to a listener that closes and reopens.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "check.h"
#include "json.h"
#include "sender.h"

using namespace wfgta;

namespace {

int listen_on(int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return -1;
    ::listen(fd, 4);
    return fd;
}

int port_of(int fd) {
    sockaddr_in a{};
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    return ntohs(a.sin_port);
}

int accept_within(int lfd, int ms) {
    pollfd p{lfd, POLLIN, 0};
    if (::poll(&p, 1, ms) != 1) return -1;
    return ::accept(lfd, nullptr, nullptr);
}

bool read_exact(int fd, void* buf, size_t n, int ms) {
    char* p = static_cast<char*>(buf);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (n > 0) {
        int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        deadline - std::chrono::steady_clock::now()).count());
        pollfd pf{fd, POLLIN, 0};
        if (left <= 0 || ::poll(&pf, 1, left) != 1) return false;
        ssize_t r = ::recv(fd, p, n, 0);
        if (r <= 0) return false;
        p += r;
        n -= static_cast<size_t>(r);
    }
    return true;
}

// One framed message; "" on timeout. The length prefix must be little-endian.
std::string read_frame(int fd, int ms = 3000) {
    unsigned char len[4];
    if (!read_exact(fd, len, 4, ms)) return "";
    uint32_t n = len[0] | (len[1] << 8) | (len[2] << 16) | (static_cast<uint32_t>(len[3]) << 24);
    std::string s(n, '\0');
    if (!read_exact(fd, s.data(), n, ms)) return "";
    return s;
}

}  // namespace

TEST(sender, framing_is_little_endian_length) {
    std::string f = frame_message(std::string(300, 'a'));
    CHECK(f.size() == 304);
    CHECK(static_cast<unsigned char>(f[0]) == 300 % 256 && static_cast<unsigned char>(f[1]) == 1 && f[2] == 0 &&
          f[3] == 0);
    FrameReader r;
    std::vector<std::string> out;
    std::string two = frame_message("{\"a\":1}") + frame_message("{\"b\":2}");
    for (char c : two) CHECK(r.feed(&c, 1, out));  // byte by byte
    CHECK(out.size() == 2 && out[0] == "{\"a\":1}" && out[1] == "{\"b\":2}");
    // An oversized frame is skipped, the next one still arrives; an absurd length is refused.
    out.clear();
    std::string big = frame_message(std::string(kMaxFrameBytes + 1, 'x')) + frame_message("{}");
    CHECK(r.feed(big.data(), big.size(), out));
    CHECK(out.size() == 1 && out[0] == "{}" && r.skipped() == 1);
    std::string evil = "\xff\xff\xff\x7f";
    CHECK(!r.feed(evil.data(), evil.size(), out));
}

TEST(sender, hello_first_and_reconnect) {
    int lfd = listen_on(0);
    CHECK(lfd >= 0);
    int port = port_of(lfd);
    Sender s("127.0.0.1", port, 64);
    s.reconnect_ms = 200;
    s.set_hello("{\"type\":\"hello\",\"n\":1}");
    s.start();

    int c1 = accept_within(lfd, 3000);
    CHECK(c1 >= 0);
    CHECK(read_frame(c1) == "{\"type\":\"hello\",\"n\":1}");
    s.offer("{\"type\":\"frame\",\"seq\":1}");
    CHECK(read_frame(c1) == "{\"type\":\"frame\",\"seq\":1}");

    std::string start = frame_message("{\"type\":\"start\",\"session\":\"abc\"}");
    CHECK(::send(c1, start.data(), start.size(), 0) == static_cast<ssize_t>(start.size()));
    std::vector<std::string> inbox;
    for (int i = 0; i < 200 && inbox.empty(); ++i) {
        inbox = s.take_control();
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    CHECK(inbox.size() == 1 && json_parse(inbox[0]).get_string("session") == "abc");

    // The collector goes away: connection and listener closed.
    ::close(c1);
    ::close(lfd);
    for (int i = 0; i < 200 && s.connected(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    CHECK(!s.connected());
    s.set_hello("{\"type\":\"hello\",\"n\":2}");
    s.offer("{\"type\":\"frame\",\"seq\":2}");  // queued while disconnected
    s.offer("{\"type\":\"frame\",\"seq\":3}");
    std::this_thread::sleep_for(std::chrono::milliseconds(300));

    // ...and comes back on the same port.
    lfd = listen_on(port);
    CHECK(lfd >= 0);
    int c2 = accept_within(lfd, 5000);
    CHECK(c2 >= 0);
    CHECK(read_frame(c2) == "{\"type\":\"hello\",\"n\":2}");
    CHECK(read_frame(c2) == "{\"type\":\"frame\",\"seq\":2}");
    CHECK(read_frame(c2) == "{\"type\":\"frame\",\"seq\":3}");
    CHECK(s.connections() == 2);
    CHECK(s.dropped() == 0);
    s.stop();
    ::close(c2);
    ::close(lfd);
}

namespace {

std::string frame_json(int seq) { return "{\"type\":\"frame\",\"seq\":" + std::to_string(seq) + "}"; }

void send_to(int fd, const std::string& json) {
    std::string f = frame_message(json);
    CHECK(::send(fd, f.data(), f.size(), 0) == static_cast<ssize_t>(f.size()));
}

template <typename Pred>
bool wait_until(Pred p, int ms = 3000) {
    for (int i = 0; i < ms / 5; ++i) {
        if (p()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return p();
}

}  // namespace

TEST(sender, unacked_frames_are_resent_after_reconnect) {
    int lfd = listen_on(0);
    CHECK(lfd >= 0);
    int port = port_of(lfd);
    Sender s("127.0.0.1", port, 64);
    s.reconnect_ms = 100;
    s.set_hello("{\"type\":\"hello\",\"run\":\"0123456789abcdef\"}");
    s.start();

    int c1 = accept_within(lfd, 3000);
    CHECK(c1 >= 0);
    CHECK(read_frame(c1) == "{\"type\":\"hello\",\"run\":\"0123456789abcdef\"}");
    for (int seq = 1; seq <= 5; ++seq) CHECK(s.offer_frame(seq, frame_json(seq)));
    s.offer("{\"type\":\"status\",\"n\":1}", true);  // not a frame: never kept
    for (int seq = 1; seq <= 5; ++seq) CHECK(read_frame(c1) == frame_json(seq));
    CHECK(read_frame(c1) == "{\"type\":\"status\",\"n\":1}");
    CHECK(wait_until([&] { return s.unacked() == 5; }));

    // Acks are consumed by the sender (the script never sees them); one naming a seq outside the
    // window (never sent, or another run's) releases nothing.
    send_to(c1, "{\"type\":\"ack\",\"seq\":99}");
    send_to(c1, "{\"type\":\"ack\",\"seq\":0}");
    send_to(c1, "{\"type\":\"ack\"}");
    send_to(c1, "{\"type\":\"ack\",\"seq\":2}");
    CHECK(wait_until([&] { return s.unacked() == 3; }));
    send_to(c1, "{\"type\":\"ack\",\"seq\":1}");  // already covered: ignored
    send_to(c1, "{\"type\":\"stop\"}");
    std::vector<std::string> inbox;
    CHECK(wait_until([&] {
        for (auto& m : s.take_control()) inbox.push_back(m);
        return !inbox.empty();
    }));
    CHECK(inbox.size() == 1 && inbox[0] == "{\"type\":\"stop\"}");
    CHECK(s.unacked() == 3);

    // The collector dies with 3, 4 and 5 unacknowledged; 6 is produced while it is gone.
    ::close(c1);
    ::close(lfd);
    CHECK(wait_until([&] { return !s.connected(); }));
    s.offer_frame(6, frame_json(6));
    std::this_thread::sleep_for(std::chrono::milliseconds(150));

    // A new collector on the same port: hello, then exactly 3, 4, 5 in order, then 6 and new ones.
    lfd = listen_on(port);
    CHECK(lfd >= 0);
    int c2 = accept_within(lfd, 5000);
    CHECK(c2 >= 0);
    CHECK(read_frame(c2) == "{\"type\":\"hello\",\"run\":\"0123456789abcdef\"}");
    for (int seq = 3; seq <= 6; ++seq) CHECK(read_frame(c2) == frame_json(seq));
    s.offer_frame(7, frame_json(7));
    CHECK(read_frame(c2) == frame_json(7));
    CHECK(wait_until([&] { return s.unacked() == 5; }));  // 3..7
    send_to(c2, "{\"type\":\"ack\",\"seq\":7}");
    CHECK(wait_until([&] { return s.unacked() == 0; }));

    // Acknowledged ones are not resent: a third connection gets the hello and then only 8.
    ::close(c2);  // the listener stays: the sender is back at once
    int c3 = accept_within(lfd, 5000);
    CHECK(c3 >= 0);
    CHECK(read_frame(c3) == "{\"type\":\"hello\",\"run\":\"0123456789abcdef\"}");
    s.offer_frame(8, frame_json(8));
    CHECK(read_frame(c3) == frame_json(8));
    CHECK(read_frame(c3, 300).empty());
    CHECK(s.connections() == 3);
    CHECK(s.dropped() == 0 && s.evicted() == 0);
    s.stop();
    ::close(c3);
    ::close(lfd);
}

TEST(sender, full_window_drops_the_oldest_and_counts_it) {
    int lfd = listen_on(0);
    CHECK(lfd >= 0);
    int port = port_of(lfd);
    Sender s("127.0.0.1", port, 64, 4);  // a window of 4
    s.reconnect_ms = 100;
    s.set_hello("{\"type\":\"hello\"}");
    s.start();

    int c1 = accept_within(lfd, 3000);
    CHECK(c1 >= 0);
    CHECK(read_frame(c1) == "{\"type\":\"hello\"}");
    for (int seq = 1; seq <= 10; ++seq) s.offer_frame(seq, frame_json(seq));
    for (int seq = 1; seq <= 10; ++seq) CHECK(read_frame(c1) == frame_json(seq));
    CHECK(wait_until([&] { return s.evicted() == 6; }));
    CHECK(s.unacked() == 4 && s.dropped() == 6);
    send_to(c1, "{\"type\":\"ack\",\"seq\":3}");  // pushed out already: nothing to release
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    CHECK(s.unacked() == 4);

    ::close(c1);  // the listener stays: the sender is back at once
    int c2 = accept_within(lfd, 5000);
    CHECK(c2 >= 0);
    CHECK(read_frame(c2) == "{\"type\":\"hello\"}");
    for (int seq = 7; seq <= 10; ++seq) CHECK(read_frame(c2) == frame_json(seq));
    CHECK(read_frame(c2, 300).empty());
    s.stop();
    ::close(c2);
    ::close(lfd);
}
