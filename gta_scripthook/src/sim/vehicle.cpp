// Bicycle-model dynamics and the lane-following wander controller (pure pursuit).
#include "vehicle.h"

#include <algorithm>
#include <cmath>

namespace wfgta::sim {

static double clamp(double v, double lo, double hi) { return std::min(hi, std::max(lo, v)); }
static Vec3 unit(Vec3 v) {
    double n = std::hypot(v.x, v.y);
    return n > 0 ? Vec3{v.x / n, v.y / n, 0} : Vec3{0, 1, 0};
}
static Vec3 right_of(Vec3 dir) { return {dir.y, -dir.x, 0}; }

Vehicle::Vehicle(int handle, const World& w, Rng& rng, VehicleParams p) : handle_(handle), w_(w), p_(p) {
    int n = w.nx() * w.ny();
    a_ = rng.below(n);
    auto nb = w.neighbours(a_);
    b_ = nb[rng.below(static_cast<int>(nb.size()))];
    Vec3 pa = w.node_pos(a_), pb = w.node_pos(b_);
    Vec3 dir = unit(pb - pa);
    double len = std::hypot(pb.x - pa.x, pb.y - pa.y);
    Vec3 start = pa + dir * (len * rng.uniform(0.2, 0.6)) + right_of(dir) * w.lane_offset();
    x_ = start.x;
    y_ = start.y;
    heading_ = heading_of(dir);
    cruise_ = rng.uniform(8, 13);
    pick_next(rng);
}

Vec3 Vehicle::velocity() const {
    Vec3 f = forward_of(heading_);
    return {f.x * v_, f.y * v_, 0};
}

void Vehicle::pick_next(Rng& rng) {
    auto nb = w_.neighbours(b_);
    std::vector<int> options;
    for (int n : nb) if (n != a_) options.push_back(n);
    if (options.empty()) options.push_back(a_);
    c_next_ = options[rng.below(static_cast<int>(options.size()))];
}

void Vehicle::attach_route() {
    // The road under the vehicle and the axis closest to its heading; then the intersections
    // behind (a) and ahead (b) of it on that road.
    Vec3 f = forward_of(heading_);
    bool along_y = std::fabs(f.y) >= std::fabs(f.x);
    int best_i = 0, best_j = 0;
    for (int i = 0; i < w_.nx(); ++i) if (std::fabs(w_.roads_x[i] - x_) < std::fabs(w_.roads_x[best_i] - x_)) best_i = i;
    for (int j = 0; j < w_.ny(); ++j) if (std::fabs(w_.roads_y[j] - y_) < std::fabs(w_.roads_y[best_j] - y_)) best_j = j;
    // Prefer the road whose centre line is nearer when the heading is ambiguous.
    if (std::fabs(w_.roads_x[best_i] - x_) > w_.road_width && std::fabs(w_.roads_y[best_j] - y_) <= w_.road_width) along_y = false;
    if (std::fabs(w_.roads_y[best_j] - y_) > w_.road_width && std::fabs(w_.roads_x[best_i] - x_) <= w_.road_width) along_y = true;
    if (along_y) {
        int j_ahead = 0;
        bool north = f.y >= 0;
        if (north) { j_ahead = w_.ny() - 1; for (int j = w_.ny() - 1; j >= 0; --j) if (w_.roads_y[j] > y_) j_ahead = j; }
        else { j_ahead = 0; for (int j = 0; j < w_.ny(); ++j) if (w_.roads_y[j] < y_) j_ahead = j; }
        int j_behind = std::clamp(j_ahead + (north ? -1 : 1), 0, w_.ny() - 1);
        if (j_behind == j_ahead) j_ahead = std::clamp(j_ahead + (north ? 1 : -1), 0, w_.ny() - 1);
        a_ = w_.node(best_i, j_behind);
        b_ = w_.node(best_i, j_ahead);
    } else {
        bool east = f.x >= 0;
        int i_ahead;
        if (east) { i_ahead = w_.nx() - 1; for (int i = w_.nx() - 1; i >= 0; --i) if (w_.roads_x[i] > x_) i_ahead = i; }
        else { i_ahead = 0; for (int i = 0; i < w_.nx(); ++i) if (w_.roads_x[i] < x_) i_ahead = i; }
        int i_behind = std::clamp(i_ahead + (east ? -1 : 1), 0, w_.nx() - 1);
        if (i_behind == i_ahead) i_ahead = std::clamp(i_ahead + (east ? 1 : -1), 0, w_.nx() - 1);
        a_ = w_.node(i_behind, best_j);
        b_ = w_.node(i_ahead, best_j);
    }
}

void Vehicle::wander(double cruise) {
    cruise_ = cruise;
    if (!wandering_) {
        attach_route();
        Rng local(static_cast<uint64_t>(handle_) * 7919u + static_cast<uint64_t>(x_ * 13 + y_ * 17));
        pick_next(local);
    }
    wandering_ = true;
}

// Path for a -> b -> c: lane start, the corner where the two lane lines meet, lane end.
struct Path {
    Vec3 p[3];
    double len1, len2;
    bool turn;
};

static Path make_path(const World& w, Vec3 pa, Vec3 pb, Vec3 pc) {
    Vec3 d1 = unit(pb - pa), d2 = unit(pc - pb);
    double off = w.lane_offset();
    Path path;
    path.turn = std::fabs(d1.x * d2.x + d1.y * d2.y) < 0.5;
    path.p[0] = pa + right_of(d1) * off;
    path.p[1] = path.turn ? pb + right_of(d1) * off + right_of(d2) * off : pb + right_of(d1) * off;
    path.p[2] = pc + right_of(d2) * off;
    path.len1 = std::hypot(path.p[1].x - path.p[0].x, path.p[1].y - path.p[0].y);
    path.len2 = std::hypot(path.p[2].x - path.p[1].x, path.p[2].y - path.p[1].y);
    return path;
}

// Arc length of the closest point of the two-leg path to q.
static double project(const Path& path, double x, double y) {
    double best_s = 0, best_d = 1e18, base = 0;
    for (int k = 0; k < 2; ++k) {
        Vec3 a = path.p[k], b = path.p[k + 1];
        double L = k == 0 ? path.len1 : path.len2;
        double t = L > 0 ? clamp(((x - a.x) * (b.x - a.x) + (y - a.y) * (b.y - a.y)) / (L * L), 0, 1) : 0;
        double px = a.x + (b.x - a.x) * t, py = a.y + (b.y - a.y) * t;
        double d = (px - x) * (px - x) + (py - y) * (py - y);
        if (d < best_d) { best_d = d; best_s = base + t * L; }
        base += L;
    }
    return best_s;
}

static Vec3 point_at(const Path& path, double s) {
    if (s <= path.len1) {
        double t = path.len1 > 0 ? s / path.len1 : 0;
        return path.p[0] + (path.p[1] - path.p[0]) * t;
    }
    double t = path.len2 > 0 ? std::min(1.0, (s - path.len1) / path.len2) : 1;
    return path.p[1] + (path.p[2] - path.p[1]) * t;
}

Controls Vehicle::wander_controls() const {
    Path path = make_path(w_, w_.node_pos(a_), w_.node_pos(b_), w_.node_pos(c_next_));
    double s = project(path, x_, y_);
    double lookahead = std::max(4.0, 0.6 * std::fabs(v_));
    Vec3 target = point_at(path, s + lookahead);
    Vec3 f = forward_of(heading_);
    Vec3 to{target.x - x_, target.y - y_, 0};
    double alpha = std::atan2(f.x * to.y - f.y * to.x, f.x * to.x + f.y * to.y);  // + = target to the left
    double delta = std::atan(2 * p_.wheelbase * std::sin(alpha) / lookahead);
    Controls c;
    c.steering = clamp(rad2deg(delta) / p_.max_steer_deg, -1, 1);

    double target_v = cruise_;
    if (path.turn) {
        double to_corner = path.len1 - s - 3.0;
        double allowed = to_corner <= 0 ? p_.turn_speed
                                        : std::sqrt(p_.turn_speed * p_.turn_speed + 2 * p_.comfort_brake * to_corner);
        target_v = std::min(target_v, allowed);
    }
    double hold = (p_.rolling + p_.aero * v_ * v_) / p_.accel_max;
    double err = target_v - v_;
    if (err > 0) {
        c.throttle = clamp(hold + 0.4 * err, 0, 1);
    } else if (err < -0.7) {
        c.brake = clamp(-0.25 * err, 0, 1);
    } else {
        c.throttle = clamp(hold + 0.4 * err, 0, 1);
    }
    return c;
}

Controls Vehicle::stop_controls() const {
    Controls c;
    if (std::fabs(v_) > 0.05) c.brake = clamp(0.15 + 0.2 * std::fabs(v_), 0, 1);
    return c;
}

void Vehicle::step(double dt, Rng& rng) {
    if (wandering_) {
        // Past the corner: the next leg becomes the current one.
        Path path = make_path(w_, w_.node_pos(a_), w_.node_pos(b_), w_.node_pos(c_next_));
        if (project(path, x_, y_) > path.len1 + 1.0) {
            a_ = b_;
            b_ = c_next_;
            pick_next(rng);
        }
        c_ = wander_controls();
    } else {
        c_ = stop_controls();
    }
    double sgn = v_ > 1e-6 ? 1.0 : (v_ < -1e-6 ? -1.0 : 0.0);
    double a = c_.throttle * p_.accel_max - sgn * (c_.brake * p_.brake_max + p_.rolling) - p_.aero * v_ * std::fabs(v_);
    double v_new = v_ + a * dt;
    // Brakes and resistance stop the vehicle; they never push it backwards.
    if (sgn != 0 && v_new * sgn < 0 && c_.throttle * sgn <= 0) v_new = 0;
    if (sgn == 0 && std::fabs(c_.throttle) * p_.accel_max <= p_.rolling) v_new = 0;
    double v_mid = 0.5 * (v_ + v_new);
    double delta = deg2rad(c_.steering * p_.max_steer_deg);
    double yaw_rate = v_mid / p_.wheelbase * std::tan(delta);
    double h_mid = heading_ + rad2deg(yaw_rate * dt / 2);
    Vec3 f = forward_of(h_mid);
    x_ += f.x * v_mid * dt;
    y_ += f.y * v_mid * dt;
    heading_ = wrap180(heading_ + rad2deg(yaw_rate * dt));
    v_ = v_new;
}

}  // namespace wfgta::sim
