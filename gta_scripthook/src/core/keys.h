// Keyboard-state inference. Driving: W/S/A/D from the vehicle's longitudinal effort
// (acceleration plus modelled drag) and its path curvature (yaw rate over speed); on foot:
// W/S/A/D octants of the ped's velocity relative to the camera heading, shift when running.
// Every key has separate on/off thresholds and a minimum hold, so noise does not chatter.
#pragma once
#include "math3d.h"

namespace wfgta {

struct KeyState {
    bool w = false, s = false, a = false, d = false, space = false, shift = false, ctrl = false;
    bool operator==(const KeyState& o) const {
        return w == o.w && s == o.s && a == o.a && d == o.d && space == o.space && shift == o.shift &&
               ctrl == o.ctrl;
    }
};

// Continuous estimates of the driver's controls: throttle in [-1, 1] (negative = reverse),
// brake in [0, 1], steering in [-1, 1] (positive = left, as GTA's steering angle).
struct DriveEstimate {
    double throttle = 0, brake = 0, steering = 0;
};

struct KeyParams {
    double smoothing_s = 0.12;     // time constant of the acceleration / curvature filters
    double min_hold_s = 0.15;      // a key state lasts at least this long
    double effort_on = 0.6, effort_off = 0.25;      // m/s^2, W (forward) / S (backward) effort
    double steer_on = 0.12, steer_off = 0.05;       // |steering estimate|
    double min_steer_speed = 0.8;  // m/s; below it steering is not observable
    double rolling = 0.15;         // m/s^2, rolling resistance
    double aero = 0.0008;          // 1/m, aerodynamic drag (a = aero * v^2)
    double accel_max = 4.0, brake_max = 8.0;        // m/s^2
    double wheelbase = 2.7;        // m
    double max_steer_deg = 35.0;
    double walk_on = 0.6, walk_off = 0.3;           // m/s, moving on foot
    double run_on = 2.6, run_off = 2.2;             // m/s, shift held
    double octant_margin_deg = 8.0;                 // extra angle before the octant changes
};

// A boolean with hysteresis and a minimum hold.
class Latch {
public:
    bool update(bool want_on, bool want_off, double dt, double min_hold);
    bool on() const { return on_; }
    void reset() { on_ = false; held_ = 1e9; }

private:
    bool on_ = false;
    double held_ = 1e9;
};

class KeyInference {
public:
    explicit KeyInference(KeyParams p = {}) : p_(p) {}
    // One driving step: dt seconds since the last, signed forward speed (m/s), yaw rate (deg/s,
    // counter-clockwise positive).
    KeyState drive(double dt, double v_forward, double yaw_rate_deg);
    // One on-foot step: the ped's world velocity and the camera heading (degrees).
    KeyState on_foot(double dt, Vec3 velocity, double cam_heading_deg);
    DriveEstimate estimate() const { return est_; }
    void reset();

private:
    KeyParams p_;
    bool primed_ = false;
    double v_prev_ = 0, accel_ = 0, curv_ = 0;
    Latch w_, s_, a_, d_, moving_, shift_;
    int octant_ = -1;
    double octant_held_ = 1e9;
    DriveEstimate est_;
};

}  // namespace wfgta
