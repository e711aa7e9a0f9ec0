// Camera: camera_pos = vehicle_pos + R(q)*offset in double precision for rotated vehicles,
// heading from the quaternion, and the on-foot cameras.
#include "camera.h"
#include "check.h"

using namespace wfgta;

// Independent reference: the rotation matrix of a unit quaternion.
static Vec3 matrix_rotate(Quat q, Vec3 v) {
    double xx = q.x * q.x, yy = q.y * q.y, zz = q.z * q.z, xy = q.x * q.y, xz = q.x * q.z, yz = q.y * q.z,
           wx = q.w * q.x, wy = q.w * q.y, wz = q.w * q.z;
    return {(1 - 2 * (yy + zz)) * v.x + 2 * (xy - wz) * v.y + 2 * (xz + wy) * v.z,
            2 * (xy + wz) * v.x + (1 - 2 * (xx + zz)) * v.y + 2 * (yz - wx) * v.z,
            2 * (xz - wy) * v.x + 2 * (yz + wx) * v.y + (1 - 2 * (xx + yy)) * v.z};
}

TEST(camera, follows_yawed_vehicle) {
    Quat q = axis_angle({0, 0, 1}, deg2rad(90));  // facing west (-X)
    CamPose p = vehicle_camera({100, 200, 30}, q, {0, -6, 2}, -10, 60);
    CHECK_NEAR(p.pos.x, 106, 1e-12);  // behind a west-facing car is east
    CHECK_NEAR(p.pos.y, 200, 1e-12);
    CHECK_NEAR(p.pos.z, 32, 1e-12);
    CHECK_NEAR(p.rot.x, -10, 1e-12);
    CHECK_NEAR(p.rot.y, 0, 1e-12);
    CHECK_NEAR(p.rot.z, 90, 1e-12);
    CHECK_NEAR(p.fov, 60, 0);
}

TEST(camera, follows_arbitrarily_rotated_vehicle_in_double) {
    Vec3 offsets[] = {{0, -6, 2.2}, {0.4, 1.1, 1.3}, {-3, 2, -1}};
    for (int k = 0; k < 200; ++k) {
        double yaw = k * 7.3, pitch = std::sin(k * 0.37) * 25, roll = std::cos(k * 0.21) * 15;
        Quat q = normalized(axis_angle({0, 0, 1}, deg2rad(yaw)) * axis_angle({1, 0, 0}, deg2rad(pitch)) *
                            axis_angle({0, 1, 0}, deg2rad(roll)));
        Vec3 base{-1523.8712345 + k * 3.1, 4785.1239876 - k, 31.25};  // far from the origin
        for (Vec3 off : offsets) {
            CamPose p = vehicle_camera(base, q, off, -8, 55);
            Vec3 want = base + matrix_rotate(q, off);
            CHECK_NEAR(p.pos.x, want.x, 1e-9);
            CHECK_NEAR(p.pos.y, want.y, 1e-9);
            CHECK_NEAR(p.pos.z, want.z, 1e-9);
            // The offset keeps its length: the rotation is exact to double rounding.
            CHECK_NEAR(norm(p.pos - base), norm(off), 1e-12);
        }
        Vec3 fwd = matrix_rotate(q, {0, 1, 0});
        CHECK_NEAR(wrap180(vehicle_heading(q) - heading_of(fwd)), 0, 1e-9);
    }
}

TEST(camera, heading_convention) {
    CHECK_NEAR(heading_of({0, 1, 0}), 0, 1e-12);    // north
    CHECK_NEAR(heading_of({-1, 0, 0}), 90, 1e-12);  // west: counter-clockwise positive
    CHECK_NEAR(heading_of({1, 0, 0}), -90, 1e-12);
    Vec3 f = forward_of(90, 0);
    CHECK_NEAR(f.x, -1, 1e-12);
    CHECK_NEAR(f.y, 0, 1e-12);
}

TEST(camera, on_foot_cameras) {
    CamPose fp = first_person_camera({10, 20, 1}, 180, 0, 70);  // facing south
    CHECK_NEAR(fp.pos.z, 1 + kHeadHeight, 1e-12);
    CHECK(fp.pos.y < 20);
    CHECK_NEAR(fp.rot.z, 180, 1e-12);
    CamPose tp = third_person_camera({10, 20, 1}, 180, -5, 70);
    CHECK_NEAR(tp.pos.x, 10, 1e-9);
    CHECK_NEAR(tp.pos.y, 20 - kThirdPersonOffset.y, 1e-9);  // behind a south-facing ped is north
    CHECK_NEAR(tp.pos.z, 1 + kThirdPersonOffset.z, 1e-12);

    Config cfg;
    cfg.camera = "vehicle";
    CameraInput in;
    in.in_vehicle = false;
    in.ped_pos = {1, 2, 1};
    in.ped_heading = 0;
    CamPose fallback = camera_pose(cfg, in);  // the vehicle camera on foot is third person
    CHECK_NEAR(fallback.pos.y, 2 + kThirdPersonOffset.y, 1e-12);
}
