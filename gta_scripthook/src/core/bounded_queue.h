// A bounded FIFO between the game thread (producer, never waits) and the sender thread:
// a push onto a full queue drops the new item and counts it.
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>

namespace wfgta {

template <typename T>
class BoundedQueue {
public:
    explicit BoundedQueue(size_t capacity) : capacity_(capacity) {}

    // Returns false (and counts a drop) when full; never blocks beyond the short lock.
    // `reserve` lets an item go beyond the capacity by that many slots (control replies).
    bool try_push(T item, size_t reserve = 0) {
        {
            std::lock_guard<std::mutex> lk(m_);
            if (q_.size() >= capacity_ + reserve) {
                ++dropped_;
                return false;
            }
            q_.push_back(std::move(item));
        }
        cv_.notify_one();
        return true;
    }
    // Waits up to `timeout` for an item.
    std::optional<T> pop_for(std::chrono::milliseconds timeout) {
        std::unique_lock<std::mutex> lk(m_);
        if (!cv_.wait_for(lk, timeout, [&] { return !q_.empty() || woken_; })) return std::nullopt;
        woken_ = false;
        if (q_.empty()) return std::nullopt;
        T item = std::move(q_.front());
        q_.pop_front();
        return item;
    }
    std::optional<T> try_pop() { return pop_for(std::chrono::milliseconds(0)); }
    // Wakes a waiting pop_for (used to stop the consumer).
    void wake() {
        {
            std::lock_guard<std::mutex> lk(m_);
            woken_ = true;
        }
        cv_.notify_all();
    }
    uint64_t dropped() const {
        std::lock_guard<std::mutex> lk(m_);
        return dropped_;
    }
    size_t size() const {
        std::lock_guard<std::mutex> lk(m_);
        return q_.size();
    }
    size_t capacity() const { return capacity_; }

private:
    const size_t capacity_;
    mutable std::mutex m_;
    std::condition_variable cv_;
    std::deque<T> q_;
    uint64_t dropped_ = 0;
    bool woken_ = false;
};

}  // namespace wfgta
