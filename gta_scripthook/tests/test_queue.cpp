// Bounded queue: FIFO, a full queue drops and counts without blocking the producer.
#include <chrono>
#include <string>
#include <thread>

#include "bounded_queue.h"
#include "check.h"
#include "sender.h"

using namespace wfgta;

TEST(queue, fifo_and_drop_counting) {
    BoundedQueue<int> q(3);
    for (int i = 0; i < 5; ++i) q.try_push(i);
    CHECK(q.size() == 3);
    CHECK(q.dropped() == 2);
    CHECK(!q.try_push(9));
    CHECK(q.dropped() == 3);
    CHECK(q.try_push(10, 1));  // a control reply may use the reserve
    CHECK(!q.try_push(11, 1));
    CHECK(q.dropped() == 4);
    CHECK(*q.try_pop() == 0);
    CHECK(*q.try_pop() == 1);
    CHECK(*q.try_pop() == 2);
    CHECK(*q.try_pop() == 10);
    CHECK(!q.try_pop());
}

TEST(queue, producer_never_blocks) {
    BoundedQueue<std::string> q(16);
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 100000; ++i) q.try_push("x");
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    CHECK(q.dropped() == 100000 - 16);
    CHECK_MSG(ms < 500, std::to_string(ms) + " ms");
}

TEST(queue, pop_waits_and_wakes) {
    BoundedQueue<int> q(4);
    std::thread t([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(30));
        q.try_push(7);
    });
    auto v = q.pop_for(std::chrono::milliseconds(2000));
    t.join();
    CHECK(v && *v == 7);
    q.wake();
    auto t0 = std::chrono::steady_clock::now();
    CHECK(!q.pop_for(std::chrono::milliseconds(2000)));
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(500));
}

TEST(queue, sender_without_collector_drops_and_counts) {
    Sender s("127.0.0.1", 1, 4);  // nothing listens on port 1
    s.set_hello("{}");
    s.start();
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 10; ++i) s.offer("{\"type\":\"frame\"}");
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(100));
    CHECK(s.dropped() == 6);
    CHECK(!s.connected());
    s.stop();
}
