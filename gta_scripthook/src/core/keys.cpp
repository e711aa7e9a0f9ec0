// Key inference from dynamics, with hysteresis.
#include "keys.h"

#include <algorithm>
#include <cmath>

namespace wfgta {

bool Latch::update(bool want_on, bool want_off, double dt, double min_hold) {
    held_ += dt;
    if (held_ >= min_hold) {
        if (!on_ && want_on) { on_ = true; held_ = 0; }
        else if (on_ && want_off) { on_ = false; held_ = 0; }
    }
    return on_;
}

void KeyInference::reset() {
    primed_ = false;
    v_prev_ = accel_ = curv_ = 0;
    for (Latch* l : {&w_, &s_, &a_, &d_, &moving_, &shift_}) l->reset();
    octant_ = -1;
    octant_held_ = 1e9;
    est_ = {};
}

static double clamp(double v, double lo, double hi) { return std::min(hi, std::max(lo, v)); }

KeyState KeyInference::drive(double dt, double v, double yaw_rate_deg) {
    if (dt <= 0) dt = 1e-3;
    double alpha = dt / (p_.smoothing_s + dt);
    double a_raw = primed_ ? (v - v_prev_) / dt : 0.0;
    accel_ = primed_ ? accel_ + alpha * (a_raw - accel_) : 0.0;
    bool steer_visible = std::fabs(v) >= p_.min_steer_speed;
    double curv_raw = steer_visible ? deg2rad(yaw_rate_deg) / v : 0.0;
    curv_ = primed_ ? curv_ + alpha * (curv_raw - curv_) : curv_raw;
    v_prev_ = v;
    primed_ = true;

    // Effort the engine/brakes supply along the vehicle's forward axis: observed acceleration
    // plus the modelled resistance that opposes the motion.
    double sgn = v > 0.3 ? 1.0 : (v < -0.3 ? -1.0 : 0.0);
    double effort = accel_ + sgn * p_.rolling + p_.aero * v * std::fabs(v);

    double steer = clamp(rad2deg(std::atan(curv_ * p_.wheelbase)) / p_.max_steer_deg, -1, 1);
    if (!steer_visible) steer = 0;
    est_.steering = steer;
    est_.throttle = est_.brake = 0;
    if (sgn >= 0) {
        if (effort > 0) est_.throttle = clamp(effort / p_.accel_max, 0, 1);
        else est_.brake = clamp(-effort / p_.brake_max, 0, 1);
    } else {
        if (effort < 0) est_.throttle = -clamp(-effort / p_.accel_max, 0, 1);
        else est_.brake = clamp(effort / p_.brake_max, 0, 1);
    }

    KeyState k;
    // A key of a pair (W/S, A/D) only goes down once the other one is up.
    k.w = w_.update(effort > p_.effort_on && !s_.on(), effort < p_.effort_off, dt, p_.min_hold_s);
    k.s = s_.update(effort < -p_.effort_on && !w_.on(), effort > -p_.effort_off, dt, p_.min_hold_s);
    k.a = a_.update(steer_visible && steer > p_.steer_on && !d_.on(), !steer_visible || steer < p_.steer_off, dt,
                    p_.min_hold_s);
    k.d = d_.update(steer_visible && steer < -p_.steer_on && !a_.on(), !steer_visible || steer > -p_.steer_off,
                    dt, p_.min_hold_s);
    return k;
}

KeyState KeyInference::on_foot(double dt, Vec3 vel, double cam_heading_deg) {
    if (dt <= 0) dt = 1e-3;
    primed_ = false;  // a later drive() starts its filters afresh
    double speed = std::hypot(vel.x, vel.y);
    KeyState k;
    bool moving = moving_.update(speed > p_.walk_on, speed < p_.walk_off, dt, p_.min_hold_s);
    k.shift = shift_.update(speed > p_.run_on, speed < p_.run_off, dt, p_.min_hold_s) && moving;
    octant_held_ += dt;
    if (!moving) {
        octant_ = -1;
        return k;
    }
    Vec3 fwd = forward_of(cam_heading_deg);
    Vec3 right{fwd.y, -fwd.x, 0};
    double angle = rad2deg(std::atan2(vel.x * right.x + vel.y * right.y, vel.x * fwd.x + vel.y * fwd.y));
    int nearest = static_cast<int>(std::lround(angle / 45.0)) & 7;
    if (octant_ < 0) {
        octant_ = nearest;
        octant_held_ = 0;
    } else if (nearest != octant_ && octant_held_ >= p_.min_hold_s &&
               std::fabs(wrap180(angle - octant_ * 45.0)) > 22.5 + p_.octant_margin_deg) {
        octant_ = nearest;
        octant_held_ = 0;
    }
    static const char* kOctantKeys[8] = {"w", "wd", "d", "sd", "s", "sa", "a", "wa"};
    for (const char* c = kOctantKeys[octant_]; *c; ++c) {
        if (*c == 'w') k.w = true;
        if (*c == 's') k.s = true;
        if (*c == 'a') k.a = true;
        if (*c == 'd') k.d = true;
    }
    return k;
}

}  // namespace wfgta
