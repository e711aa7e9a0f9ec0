// Key inference on synthetic dynamics: accelerate, cruise, brake, reverse, turn; no chatter on
// noise or inside the hysteresis band; on-foot octants relative to the camera.
#include <cstdint>

#include "check.h"
#include "keys.h"

using namespace wfgta;

namespace {

constexpr double kDt = 1.0 / 30.0;

struct Noise {
    uint64_t s = 12345;
    double next(double amp) {  // uniform in [-amp, amp]
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        return amp * (static_cast<double>(s >> 11) / 9007199254740992.0 * 2 - 1);
    }
};

int changes(const KeyState& a, const KeyState& b) {
    return (a.w != b.w) + (a.s != b.s) + (a.a != b.a) + (a.d != b.d) + (a.shift != b.shift);
}

}  // namespace

TEST(keys, accelerate_then_brake) {
    KeyInference k;
    double v = 0;
    KeyState st;
    for (int i = 0; i < 60; ++i) { v += 3.0 * kDt; st = k.drive(kDt, v, 0); }
    CHECK(st.w && !st.s && !st.a && !st.d);
    CHECK(k.estimate().throttle > 0.5);
    for (int i = 0; i < 30; ++i) { v -= 6.0 * kDt; st = k.drive(kDt, v, 0); }
    CHECK(st.s && !st.w);
    CHECK(k.estimate().brake > 0.5);
}

TEST(keys, coasting_releases_both) {
    KeyInference k;
    double v = 12;
    KeyState st;
    // Coasting: deceleration equals the modelled resistance, so no effort either way.
    for (int i = 0; i < 90; ++i) {
        v -= (0.15 + 0.0008 * v * v) * kDt;
        st = k.drive(kDt, v, 0);
    }
    CHECK(!st.w && !st.s);
}

TEST(keys, reverse_is_s) {
    KeyInference k;
    double v = 0;
    KeyState st;
    for (int i = 0; i < 45; ++i) { v -= 2.0 * kDt; st = k.drive(kDt, v, 0); }
    CHECK(v < -2);
    CHECK(st.s && !st.w);
    CHECK(k.estimate().throttle < -0.3);
}

TEST(keys, turns_left_and_right) {
    const double L = 2.7;
    for (double steer : {0.5, -0.5}) {
        KeyInference k;
        KeyState st;
        double v = 10;
        double yaw_rate = rad2deg(v / L * std::tan(deg2rad(steer * 35)));
        for (int i = 0; i < 30; ++i) st = k.drive(kDt, v, yaw_rate);
        CHECK(steer > 0 ? (st.a && !st.d) : (st.d && !st.a));
        CHECK_NEAR(k.estimate().steering, steer, 0.02);
    }
    // Reversing with the wheel to the left turns the body clockwise; still A.
    KeyInference k;
    KeyState st;
    double v = -3;
    double yaw_rate = rad2deg(v / L * std::tan(deg2rad(0.6 * 35)));
    for (int i = 0; i < 30; ++i) st = k.drive(kDt, v, yaw_rate);
    CHECK(st.a && !st.d);
}

TEST(keys, no_chatter_on_noise) {
    KeyInference k;
    Noise n;
    KeyState prev = k.drive(kDt, 10, 0);
    int flips = 0;
    for (int i = 0; i < 900; ++i) {
        KeyState st = k.drive(kDt, 10 + n.next(0.01), n.next(1.0));
        if (i > 15) flips += changes(prev, st);
        prev = st;
    }
    CHECK_MSG(flips == 0, std::to_string(flips) + " key changes on noise");
}

TEST(keys, hysteresis_band_and_min_hold) {
    KeyInference k;
    double v = 5;
    KeyState st;
    for (int i = 0; i < 20; ++i) { v += 3.0 * kDt; st = k.drive(kDt, v, 0); }
    CHECK(st.w);
    // Effort wandering between the off and on thresholds keeps W held.
    int flips = 0;
    KeyState prev = st;
    for (int i = 0; i < 300; ++i) {
        double resist = 0.15 + 0.0008 * v * v;
        double effort = (i % 2) ? 0.32 : 0.55;
        v += (effort - resist) * kDt;
        st = k.drive(kDt, v, 0);
        flips += changes(prev, st);
        prev = st;
    }
    CHECK(st.w);
    CHECK(flips == 0);
    // A hard alternation is limited by the minimum hold (0.15 s = 4.5 frames at 30 fps).
    KeyInference k2(KeyParams{});
    flips = 0;
    prev = k2.drive(kDt, 10, 0);
    double vv = 10;
    for (int i = 0; i < 300; ++i) {
        vv += ((i / 2) % 2 ? 8.0 : -8.0) * kDt;
        KeyState s2 = k2.drive(kDt, vv, 0);
        flips += changes(prev, s2);
        prev = s2;
    }
    CHECK_MSG(flips <= 300 * kDt / 0.15 * 2 + 2, std::to_string(flips));
}

TEST(keys, on_foot_octants_relative_to_camera) {
    struct Case { double cam; Vec3 vel; const char* keys; };
    const Case cases[] = {
        {0, {0, 1.4, 0}, "w"},      {0, {1.4, 0, 0}, "d"},       {0, {-1.4, 0, 0}, "a"},
        {0, {0, -1.4, 0}, "s"},     {0, {1, 1, 0}, "wd"},        {0, {-1, -1, 0}, "sa"},
        {90, {-1.4, 0, 0}, "w"},    {90, {0, 1.4, 0}, "d"},      {180, {0, 1.4, 0}, "s"},
        {-90, {0, -1.4, 0}, "d"},
    };
    for (const Case& c : cases) {
        KeyInference k;
        KeyState st;
        for (int i = 0; i < 10; ++i) st = k.on_foot(kDt, c.vel, c.cam);
        std::string got = std::string(st.w ? "w" : "") + (st.s ? "s" : "") + (st.a ? "a" : "") + (st.d ? "d" : "");
        std::string want = c.keys;
        std::string want_sorted = std::string(want.find('w') != std::string::npos ? "w" : "") +
                                  (want.find('s') != std::string::npos ? "s" : "") +
                                  (want.find('a') != std::string::npos ? "a" : "") +
                                  (want.find('d') != std::string::npos ? "d" : "");
        CHECK_MSG(got == want_sorted, "cam " + std::to_string(c.cam) + ": got " + got + " want " + want_sorted);
        CHECK(!st.shift);
    }
    KeyInference k;
    KeyState st;
    for (int i = 0; i < 10; ++i) st = k.on_foot(kDt, {0, 3.5, 0}, 0);
    CHECK(st.w && st.shift);
    for (int i = 0; i < 10; ++i) st = k.on_foot(kDt, {0, 0.1, 0}, 0);
    CHECK(!st.w && !st.s && !st.a && !st.d && !st.shift);
}

TEST(keys, on_foot_no_chatter_at_octant_border) {
    KeyInference k;
    Noise n;
    KeyState prev;
    int flips = 0;
    for (int i = 0; i < 600; ++i) {
        double ang = deg2rad(22.5 + n.next(5));  // right on the W / W+D border
        KeyState st = k.on_foot(kDt, {1.4 * std::sin(ang), 1.4 * std::cos(ang), 0}, 0);
        if (i > 0) flips += changes(prev, st);
        prev = st;
    }
    CHECK_MSG(flips == 0, std::to_string(flips));
}
