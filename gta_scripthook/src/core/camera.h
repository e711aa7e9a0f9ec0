// Camera placement in double precision: the vehicle camera is vehicle_pos + R(vehicle)*offset
// each tick, turned with the vehicle heading plus the configured pitch; first person at the
// ped's head along its heading; third person behind the ped. CameraRig drives a script camera.
#pragma once
#include "config.h"
#include "math3d.h"
#include "natives.h"

namespace wfgta {

struct CamPose {
    Vec3 pos;
    Vec3 rot;  // degrees, order 2: (pitch, roll, heading)
    double fov = 60;
};

struct CameraInput {
    bool in_vehicle = false;
    Vec3 vehicle_pos;
    Quat vehicle_quat;
    Vec3 ped_pos;
    double ped_heading = 0;  // degrees
};

// Offsets of the on-foot cameras in the ped's heading frame (x right, y forward, z up), metres.
constexpr double kHeadHeight = 0.65;
const Vec3 kThirdPersonOffset{0.0, -3.5, 1.2};

// The vehicle's heading (GTA degrees) from its quaternion: the heading of R*(0,1,0).
double vehicle_heading(const Quat& q);
// camera_pos = vehicle_pos + R(q)*offset; rotation (pitch, 0, vehicle heading).
CamPose vehicle_camera(Vec3 vehicle_pos, const Quat& q, Vec3 offset, double pitch, double fov);
CamPose first_person_camera(Vec3 ped_pos, double heading, double pitch, double fov);
CamPose third_person_camera(Vec3 ped_pos, double heading, double pitch, double fov);
// The pose for the configured camera kind; "vehicle" falls back to third person on foot, and
// first/third person in a vehicle look along the vehicle's heading.
CamPose camera_pose(const Config& cfg, const CameraInput& in);

// Owns one script camera: created on first update, positioned every tick, destroyed on release.
class CameraRig {
public:
    explicit CameraRig(Natives& n) : n_(n) {}
    void update(const CamPose& pose);
    void release();
    bool active() const { return cam_ != 0; }

private:
    Natives& n_;
    int cam_ = 0;
};

}  // namespace wfgta
