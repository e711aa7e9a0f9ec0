// Sender thread, framing and the control inbox.
#include "sender.h"

#include <algorithm>
#include <chrono>

#include "json.h"

namespace wfgta {

std::string frame_message(const std::string& payload) {
    uint32_t n = static_cast<uint32_t>(payload.size());
    std::string out(4, '\0');
    for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
    return out + payload;
}

bool FrameReader::feed(const char* data, size_t n, std::vector<std::string>& out) {
    buf_.append(data, n);
    for (;;) {
        if (skip_left_ > 0) {
            size_t k = static_cast<size_t>(std::min<uint64_t>(skip_left_, buf_.size()));
            buf_.erase(0, k);
            skip_left_ -= k;
            if (skip_left_ > 0) return true;
        }
        if (buf_.size() < 4) return true;
        uint64_t len = 0;
        for (int i = 0; i < 4; ++i) len |= static_cast<uint64_t>(static_cast<unsigned char>(buf_[i])) << (8 * i);
        if (len > kMaxTrustedFrame) return false;
        if (len > kMaxFrameBytes) {
            buf_.erase(0, 4);
            skip_left_ = len;
            ++skipped_;
            continue;
        }
        if (buf_.size() < 4 + len) return true;
        out.push_back(buf_.substr(4, static_cast<size_t>(len)));
        buf_.erase(0, 4 + static_cast<size_t>(len));
    }
}

Sender::Sender(std::string host, int port, size_t capacity, size_t window)
    : host_(std::move(host)), port_(port), queue_(capacity), window_(std::max<size_t>(window, 1)) {
    net::init();
}

Sender::~Sender() { stop(); }

void Sender::start() {
    if (thread_.joinable()) return;
    stop_ = false;
    thread_ = std::thread([this] { run(); });
}

void Sender::request_stop() {
    {
        std::lock_guard<std::mutex> lk(m_);
        stop_ = true;
    }
    cv_.notify_all();
    queue_.wake();
}

void Sender::stop(int flush_ms) {
    flush_ms_ = flush_ms;
    request_stop();
    if (thread_.joinable()) thread_.join();
}

std::vector<std::string> Sender::take_control() {
    std::lock_guard<std::mutex> lk(m_);
    std::vector<std::string> out;
    out.swap(inbox_);
    return out;
}

void Sender::set_hello(std::string json) {
    std::lock_guard<std::mutex> lk(m_);
    hello_ = std::move(json);
}

void Sender::set_endpoint(const std::string& host, int port) {
    {
        std::lock_guard<std::mutex> lk(m_);
        if (host == host_ && port == port_) return;
        host_ = host;
        port_ = port;
    }
    endpoint_changed_ = true;
}

void Sender::sleep_ms(int ms) {
    std::unique_lock<std::mutex> lk(m_);
    cv_.wait_for(lk, std::chrono::milliseconds(ms), [&] { return stop_.load(); });
}

bool Sender::send_payload(const std::string& s) {
    std::string f = frame_message(s);
    return net::send_all(sock_, f.data(), f.size());
}

bool Sender::connect_once() {
    std::string host, hello;
    int port;
    {
        std::lock_guard<std::mutex> lk(m_);
        host = host_;
        port = port_;
        hello = hello_;
    }
    sock_ = net::connect_tcp(host, port, 500);
    if (sock_ == net::kInvalid) return false;
    reader_ = FrameReader();
    // hello, then every unacknowledged frame message in seq order, then what failed last time.
    bool ok = send_payload(hello);
    for (auto it = unacked_.begin(); ok && it != unacked_.end(); ++it) ok = send_payload(it->json);
    if (!ok || (!pending_.empty() && !send_payload(pending_))) {
        disconnect();
        return false;
    }
    pending_.clear();
    connected_ = true;
    ++connections_;
    return true;
}

void Sender::disconnect() {
    net::close_socket(sock_);
    sock_ = net::kInvalid;
    connected_ = false;
}

bool Sender::pump_incoming() {
    char buf[4096];
    while (net::wait_readable(sock_, 0) == 1) {
        long n = net::recv_some(sock_, buf, sizeof buf);
        if (n <= 0) return false;
        std::vector<std::string> msgs;
        if (!reader_.feed(buf, static_cast<size_t>(n), msgs)) return false;
        msgs.erase(std::remove_if(msgs.begin(), msgs.end(), [this](const std::string& m) { return take_ack(m); }),
                   msgs.end());
        if (!msgs.empty()) {
            std::lock_guard<std::mutex> lk(m_);
            for (auto& m : msgs) inbox_.push_back(std::move(m));
        }
    }
    return true;
}

bool Sender::take_ack(const std::string& text) {
    if (text.find("\"ack\"") == std::string::npos) return false;  // cheap pre-check
    JsonValue msg;
    try {
        msg = json_parse(text);
    } catch (const std::exception&) {
        return false;  // the script reports it as a bad control message
    }
    if (msg.get_string("type") != "ack") return false;
    const JsonValue* s = msg.get("seq");
    if (!s || s->type != JsonValue::Type::Number || !(s->num >= 1) || s->num > 9007199254740992.0) return true;
    auto n = static_cast<uint64_t>(s->num);
    if (static_cast<double>(n) != s->num) return true;
    // Only an ack naming a message still in the window counts: anything else (an old or foreign
    // seq, another run's) must not release messages the collector may not have.
    auto hit = std::find_if(unacked_.begin(), unacked_.end(), [n](const Outgoing& o) { return o.seq == n; });
    if (hit == unacked_.end()) return true;
    unacked_.erase(unacked_.begin(), hit + 1);
    unacked_count_ = unacked_.size();
    return true;
}

void Sender::keep_unacked(Outgoing msg) {
    unacked_.push_back(std::move(msg));
    while (unacked_.size() > window_) {
        unacked_.pop_front();
        ++evicted_;
    }
    unacked_count_ = unacked_.size();
}

void Sender::run() {
    while (!stop_) {
        if (endpoint_changed_.exchange(false) && sock_ != net::kInvalid) disconnect();
        if (sock_ == net::kInvalid && !connect_once()) {
            sleep_ms(reconnect_ms);
            continue;
        }
        if (!pump_incoming()) {
            disconnect();
            continue;
        }
        auto msg = queue_.pop_for(std::chrono::milliseconds(20));
        if (!msg) continue;
        bool ok = send_payload(msg->json);
        // A frame message is kept whether or not its send went through: either way only an ack
        // says the collector has it.
        if (msg->seq != 0) keep_unacked(std::move(*msg));
        else if (!ok) pending_ = std::move(msg->json);
        if (!ok) disconnect();
    }
    // Flush what is queued while the collector is still there.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(flush_ms_.load());
    while (sock_ != net::kInvalid && std::chrono::steady_clock::now() < deadline) {
        auto msg = queue_.try_pop();
        if (!msg) break;
        if (!send_payload(msg->json)) break;
    }
    if (sock_ != net::kInvalid) disconnect();
}

}  // namespace wfgta
