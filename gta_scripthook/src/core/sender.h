// The TCP client to the collector: a sender thread drains a bounded queue (the game thread never
// blocks; overflow is dropped and counted), sends hello first on every (re)connect, reconnects
// every second while the collector is gone, frames every message with a 4-byte little-endian
// length, and reads start/stop control messages into a thread-safe inbox.
#pragma once
#include <atomic>
#include <condition_variable>
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
    Sender(std::string host, int port, size_t capacity = 2048);
    ~Sender() override;
    void start();
    // Stops the thread; first keeps sending queued messages for up to flush_ms while connected.
    void stop(int flush_ms = 0);
    // Asks the thread to stop without joining (for DllMain, where joining could deadlock).
    void request_stop();

    bool offer(std::string json, bool control = false) override {
        return queue_.try_push(std::move(json), control ? kControlReserve : 0);
    }
    static constexpr size_t kControlReserve = 64;
    uint64_t dropped() const override { return queue_.dropped(); }
    std::vector<std::string> take_control() override;
    void set_hello(std::string json) override;
    void set_endpoint(const std::string& host, int port) override;

    bool connected() const { return connected_.load(); }
    uint64_t connections() const { return connections_.load(); }
    int reconnect_ms = 1000;

private:
    void run();
    bool connect_once();
    void disconnect();
    bool send_payload(const std::string& s);
    bool pump_incoming();
    void sleep_ms(int ms);

    std::string host_;
    int port_;
    BoundedQueue<std::string> queue_;
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
    std::string pending_;  // a message whose send failed, resent after the next hello
};

}  // namespace wfgta
