// Where the script's messages go and its control messages come from: the TCP Sender in the
// plugin and the sim host, a recording fake in tests.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace wfgta {

class MessageSink {
public:
    virtual ~MessageSink() = default;
    // Queues one JSON message; false when it was dropped (queue full). Never blocks.
    // Status replies pass `control`: they may use a small reserve beyond the frame capacity, so
    // a queue kept full by frames still carries the answer to start/stop.
    virtual bool offer(std::string json, bool control = false) = 0;
    // Queues one frame message carrying `seq` (>= 1, increasing). The TCP Sender keeps it after
    // sending until the collector acknowledges it (docs/gta.md, `ack`) and resends it after a
    // reconnect; other sinks treat it as any message.
    virtual bool offer_frame(uint64_t seq, std::string json) {
        (void)seq;
        return offer(std::move(json));
    }
    // Messages dropped so far (queue overflow, and for the Sender unacknowledged frames pushed out
    // of its window).
    virtual uint64_t dropped() const = 0;
    // Control messages (JSON text) received since the last call.
    virtual std::vector<std::string> take_control() = 0;
    // The hello to send first on every (re)connect.
    virtual void set_hello(std::string json) = 0;
    // The collector address (a change reconnects).
    virtual void set_endpoint(const std::string& host, int port) { (void)host; (void)port; }
};

}  // namespace wfgta
