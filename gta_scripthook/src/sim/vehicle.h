// A simulated vehicle: a kinematic bicycle model (wheelbase, steering limit, acceleration and
// brake limits) whose controls -- throttle [-1, 1], brake [0, 1], steering [-1, 1] (+ = left) --
// come from a wander controller that keeps to the right-hand lane, picks a seeded random turn at
// each intersection and brakes into turns, or from a stop controller when it must halt.
#pragma once
#include <cstdint>

#include "agent.h"  // Rng
#include "math3d.h"
#include "world.h"

namespace wfgta::sim {

struct VehicleParams {
    double wheelbase = 2.7, max_steer_deg = 35.0;
    double accel_max = 4.0, brake_max = 8.0;        // m/s^2
    double rolling = 0.15, aero = 0.0008;           // resistance, same model as KeyParams
    double turn_speed = 5.0, comfort_brake = 3.0;   // m/s, m/s^2
};

struct Controls {
    double throttle = 0, brake = 0, steering = 0;
};

class Vehicle {
public:
    Vehicle(int handle, const World& w, Rng& rng, VehicleParams p = {});

    void step(double dt, Rng& rng);
    // Drive the graph at this cruise speed (re-attaches the route to where the vehicle is).
    void wander(double cruise);
    // Come to a halt and stay there.
    void stop() { wandering_ = false; }

    int handle() const { return handle_; }
    Vec3 pos() const { return {x_, y_, 0.5}; }
    double heading() const { return heading_; }  // GTA degrees
    double speed() const { return v_; }          // signed, along the heading
    Vec3 velocity() const;
    Quat quat() const { return axis_angle({0, 0, 1}, deg2rad(heading_)); }
    const Controls& controls() const { return c_; }
    bool wandering() const { return wandering_; }
    int driver = 0;  // ped handle at the wheel, 0 = none

private:
    void attach_route();
    void pick_next(Rng& rng);
    Controls wander_controls() const;
    Controls stop_controls() const;
    Vec3 lane_point(int from, int to, int at) const;  // lane line end point near `at`

    int handle_;
    const World& w_;
    VehicleParams p_;
    double x_ = 0, y_ = 0, heading_ = 0, v_ = 0;
    double cruise_ = 10;
    bool wandering_ = true;
    int a_ = 0, b_ = 0, c_next_ = 0;  // route: driving a -> b, then b -> c_next_
    Controls c_;
};

}  // namespace wfgta::sim
