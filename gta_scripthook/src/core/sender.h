// The TCP client to the collector: a sender thread drains a bounded queue (the game thread never
// blocks; overflow is dropped and counted), sends hello first on every (re)connect, reconnects
// every second while the collector is gone, frames every message with a 4-byte little-endian
// length, and reads start/stop control messages into a thread-safe inbox.
//
// Acknowledged delivery: a frame message (offer_frame) stays in a bounded window of unacked
// messages after it is written to the socket, until the collector's {"type": "ack", "seq": N}
// covers it (seq <= N). On every (re)connect the window is resent, in seq order, right after the
// hello and before anything new. A full window drops its oldest message and counts it in
// dropped(). Acks are consumed here (they never reach the inbox); an ack whose seq is not in the
// window is ignored.
#pragma once
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bounded_queue.h"
#include "message_sink.h"
#include "socket_shim.h"

namespace wfgta {

constexpr size_t kMaxFrameBytes = 65536;           // longer incoming frames are skipped
constexpr uint64_t kMaxTrustedFrame = 16u << 20;   // beyond this the stream is dropped

// 4-byte little-endian length + payload.
std::string frame_message(const std::string& payload);

// Splits complete frames off the front of a receive buffer. Oversized frames (> kMaxFrameBytes)
// are skipped; returns false when the stream cannot be trusted (length > kMaxTrustedFrame).
class FrameReader {
public:
    bool feed(const char* data, size_t n, std::vector<std::string>& out);
    uint64_t skipped() const { return skipped_; }

private:
    std::string buf_;
    uint64_t skip_left_ = 0;
    uint64_t skipped_ = 0;
};

class Sender : public MessageSink {
public:
    static constexpr size_t kDefaultWindow = 4096;
    Sender(std::string host, int port, size_t capacity = 2048, size_t window = kDefaultWindow);
    ~Sender() override;
    void start();
    // Stops the thread; first keeps sending queued messages for up to flush_ms while connected.
    void stop(int flush_ms = 0);
    // Asks the thread to stop without joining (for DllMain, where joining could deadlock).
    void request_stop();

    bool offer(std::string json, bool control = false) override {
        return queue_.try_push(Outgoing{std::move(json), 0}, control ? kControlReserve : 0);
    }
    bool offer_frame(uint64_t seq, std::string json) override {
        return queue_.try_push(Outgoing{std::move(json), seq});
    }
    static constexpr size_t kControlReserve = 64;
    uint64_t dropped() const override { return queue_.dropped() + evicted_.load(); }
    std::vector<std::string> take_control() override;
    void set_hello(std::string json) override;
    void set_endpoint(const std::string& host, int port) override;

    bool connected() const { return connected_.load(); }
    uint64_t connections() const { return connections_.load(); }
    // Frame messages sent and not yet acknowledged (the window's size).
    size_t unacked() const { return unacked_count_.load(); }
    // Frame messages pushed out of the full window unacknowledged (part of dropped()).
    uint64_t evicted() const { return evicted_.load(); }
    int reconnect_ms = 1000;

private:
    struct Outgoing {
        std::string json;
        uint64_t seq = 0;  // a frame message's seq; 0: not a frame message (hello, status)
    };
    void run();
    void keep_unacked(Outgoing msg);
    // True when `text` is an ack (applied to the window, or ignored); false for anything else.
    bool take_ack(const std::string& text);
    bool connect_once();
    void disconnect();
    bool send_payload(const std::string& s);
    bool pump_incoming();
    void sleep_ms(int ms);

    std::string host_;
    int port_;
    BoundedQueue<Outgoing> queue_;
    std::thread thread_;
    std::atomic<bool> stop_{false}, endpoint_changed_{false}, connected_{false};
    std::atomic<int> flush_ms_{0};
    std::atomic<uint64_t> connections_{0};
    mutable std::mutex m_;  // hello_, inbox_, host_, port_
    std::condition_variable cv_;
    std::string hello_;
    std::vector<std::string> inbox_;
    net::Socket sock_ = net::kInvalid;
    FrameReader reader_;
    std::string pending_;  // a non-frame message whose send failed, resent after the window
    // Sent frame messages awaiting an ack, in seq order (sender thread only).
    std::deque<Outgoing> unacked_;
    const size_t window_;
    std::atomic<size_t> unacked_count_{0};
    std::atomic<uint64_t> evicted_{0};
};

}  // namespace wfgta
