// Camera poses from entity state, and the script camera that shows them.
#include "camera.h"

namespace wfgta {

double vehicle_heading(const Quat& q) { return heading_of(rotate(q, {0, 1, 0})); }

CamPose vehicle_camera(Vec3 vehicle_pos, const Quat& q, Vec3 offset, double pitch, double fov) {
    CamPose p;
    p.pos = vehicle_pos + rotate(q, offset);
    p.rot = {pitch, 0.0, vehicle_heading(q)};
    p.fov = fov;
    return p;
}

static Quat yaw_quat(double heading_deg) { return axis_angle({0, 0, 1}, deg2rad(heading_deg)); }

CamPose first_person_camera(Vec3 ped_pos, double heading, double pitch, double fov) {
    CamPose p;
    p.pos = ped_pos + Vec3{0, 0, kHeadHeight} + rotate(yaw_quat(heading), {0, 0.15, 0});
    p.rot = {pitch, 0.0, wrap180(heading)};
    p.fov = fov;
    return p;
}

CamPose third_person_camera(Vec3 ped_pos, double heading, double pitch, double fov) {
    CamPose p;
    p.pos = ped_pos + rotate(yaw_quat(heading), kThirdPersonOffset);
    p.rot = {pitch, 0.0, wrap180(heading)};
    p.fov = fov;
    return p;
}

CamPose camera_pose(const Config& cfg, const CameraInput& in) {
    double heading = in.in_vehicle ? vehicle_heading(in.vehicle_quat) : in.ped_heading;
    if (cfg.camera == "first") return first_person_camera(in.ped_pos, heading, cfg.pitch, cfg.fov);
    if (cfg.camera == "vehicle" && in.in_vehicle) {
        return vehicle_camera(in.vehicle_pos, in.vehicle_quat, cfg.camera_offset, cfg.pitch, cfg.fov);
    }
    Vec3 anchor = in.in_vehicle ? in.vehicle_pos : in.ped_pos;
    return third_person_camera(anchor, heading, cfg.pitch, cfg.fov);
}

void CameraRig::update(const CamPose& pose) {
    if (cam_ == 0) {
        cam_ = n_.create_cam("DEFAULT_SCRIPTED_CAMERA");
        n_.set_cam_active(cam_, true);
        n_.render_script_cams(true);
    }
    n_.set_cam_coord(cam_, pose.pos);
    n_.set_cam_rot(cam_, pose.rot);
    n_.set_cam_fov(cam_, pose.fov);
}

void CameraRig::release() {
    if (cam_ == 0) return;
    n_.render_script_cams(false);
    n_.set_cam_active(cam_, false);
    n_.destroy_cam(cam_);
    cam_ = 0;
}

}  // namespace wfgta
