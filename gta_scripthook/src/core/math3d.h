// Double-precision vectors and quaternions, and GTA's rotation conventions
// (order 2 degrees: rx pitch up+, ry roll, rz heading with 0 = +Y north, counter-clockwise +).
#pragma once
#include <cmath>

namespace wfgta {

constexpr double kPi = 3.14159265358979323846;
inline double deg2rad(double d) { return d * kPi / 180.0; }
inline double rad2deg(double r) { return r * 180.0 / kPi; }

struct Vec3 {
    double x = 0, y = 0, z = 0;
};
inline Vec3 operator+(Vec3 a, Vec3 b) { return {a.x + b.x, a.y + b.y, a.z + b.z}; }
inline Vec3 operator-(Vec3 a, Vec3 b) { return {a.x - b.x, a.y - b.y, a.z - b.z}; }
inline Vec3 operator*(Vec3 a, double s) { return {a.x * s, a.y * s, a.z * s}; }
inline double dot(Vec3 a, Vec3 b) { return a.x * b.x + a.y * b.y + a.z * b.z; }
inline Vec3 cross(Vec3 a, Vec3 b) {
    return {a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x};
}
inline double norm(Vec3 a) { return std::sqrt(dot(a, a)); }

// Unit quaternion (x, y, z, w) rotating entity-local vectors (x right, y forward, z up) to world.
struct Quat {
    double x = 0, y = 0, z = 0, w = 1;
};
inline Quat normalized(Quat q) {
    double n = std::sqrt(q.x * q.x + q.y * q.y + q.z * q.z + q.w * q.w);
    if (n <= 0) return {};
    return {q.x / n, q.y / n, q.z / n, q.w / n};
}
inline Quat operator*(Quat a, Quat b) {
    return {a.w * b.x + a.x * b.w + a.y * b.z - a.z * b.y,
            a.w * b.y - a.x * b.z + a.y * b.w + a.z * b.x,
            a.w * b.z + a.x * b.y - a.y * b.x + a.z * b.w,
            a.w * b.w - a.x * b.x - a.y * b.y - a.z * b.z};
}
inline Quat axis_angle(Vec3 axis, double angle_rad) {
    double n = norm(axis), s = std::sin(angle_rad / 2) / (n > 0 ? n : 1);
    return {axis.x * s, axis.y * s, axis.z * s, std::cos(angle_rad / 2)};
}
// v' = q v q*, expanded (t = 2 q.xyz x v; v' = v + w t + q.xyz x t).
inline Vec3 rotate(Quat q, Vec3 v) {
    Vec3 u{q.x, q.y, q.z};
    Vec3 t = cross(u, v) * 2.0;
    return v + t * q.w + cross(u, t);
}
// GTA heading (degrees, 0 = +Y, counter-clockwise positive) of a world direction.
inline double heading_of(Vec3 dir) { return rad2deg(std::atan2(-dir.x, dir.y)); }
// World forward direction of a heading/pitch pair in degrees.
inline Vec3 forward_of(double heading_deg, double pitch_deg = 0) {
    double h = deg2rad(heading_deg), p = deg2rad(pitch_deg);
    return {-std::sin(h) * std::cos(p), std::cos(h) * std::cos(p), std::sin(p)};
}
// Wraps an angle in degrees to (-180, 180].
inline double wrap180(double a) {
    a = std::fmod(a, 360.0);
    if (a <= -180) a += 360;
    if (a > 180) a -= 360;
    return a;
}

}  // namespace wfgta
