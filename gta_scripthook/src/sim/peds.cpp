// Pedestrian movement and timed tasks.
#include "peds.h"

#include <cmath>

#include "vehicle.h"

namespace wfgta::sim {

constexpr double kBoardSeconds = 1.5;
constexpr double kTurnDegPerS = 360.0;

void start_wander(Ped& p, const World& w) {
    p.task = Ped::Task::Wander;
    p.walk_node = w.nearest_walk(p.pos);
    p.prev_walk_node = -1;
    p.goal_speed = p.walk_speed;
}

// Walks toward `to`; true when there.
static bool walk_to(Ped& p, Vec3 to, double speed, double dt, double arrive = 0.3) {
    Vec3 d{to.x - p.pos.x, to.y - p.pos.y, 0};
    double dist = std::hypot(d.x, d.y);
    if (dist <= arrive) {
        p.vel = {};
        return true;
    }
    double step = std::min(dist, speed * dt);
    p.vel = {d.x / dist * speed, d.y / dist * speed, 0};
    if (step < speed * dt) p.vel = p.vel * (step / (speed * dt));
    p.pos.x += d.x / dist * step;
    p.pos.y += d.y / dist * step;
    // Peds turn at a finite rate (a camera that follows them does not snap).
    double diff = wrap180(heading_of(d) - p.heading);
    double turn = std::min(std::fabs(diff), kTurnDegPerS * dt);
    p.heading = wrap180(p.heading + (diff >= 0 ? turn : -turn));
    return false;
}

static void face(Ped& p, Vec3 to, double dt) {
    double want = heading_of(to - p.pos);
    double diff = wrap180(want - p.heading);
    double turn = std::min(std::fabs(diff), 180.0 * dt);
    p.heading = wrap180(p.heading + (diff >= 0 ? turn : -turn));
    p.vel = {};
}

void step_ped(Ped& p, double dt, PedWorld& pw) {
    const World& w = pw.world;
    Vehicle* veh = p.vehicle ? pw.find_vehicle(pw.ctx, p.vehicle) : nullptr;
    if (veh && p.task != Ped::Task::LeaveVehicle) {  // riding
        p.pos = veh->pos();
        p.heading = veh->heading();
        p.vel = veh->velocity();
        return;
    }
    switch (p.task) {
        case Ped::Task::Idle:
            p.vel = {};
            break;
        case Ped::Task::Wander: {
            if (p.walk_node < 0) start_wander(p, w);
            if (walk_to(p, w.walk_pos(p.walk_node), p.goal_speed, dt)) {
                auto nb = w.walk_neighbours(p.walk_node);
                std::vector<int> opts;
                for (int n : nb) if (n != p.prev_walk_node) opts.push_back(n);
                if (opts.empty()) opts = nb;
                p.prev_walk_node = p.walk_node;
                p.walk_node = opts[pw.rng.below(static_cast<int>(opts.size()))];
            }
            break;
        }
        case Ped::Task::NavTo:
            if (walk_to(p, p.goal, p.goal_speed, dt, 0.5)) p.task = Ped::Task::Idle;
            break;
        case Ped::Task::EnterVehicle: {
            Vehicle* v = pw.find_vehicle(pw.ctx, p.target);
            if (!v) { p.task = Ped::Task::Idle; break; }
            v->stop();
            Vec3 door = v->pos() + rotate(v->quat(), {-1.3, 0.3, 0});
            door.z = 0;
            p.timer -= dt;
            if (!p.boarding && (walk_to(p, door, p.walk_speed, dt, 0.4) || p.timer <= 0)) {
                p.boarding = true;
                p.timer = kBoardSeconds;
            } else if (p.boarding) {
                p.vel = {};
                face(p, v->pos() + rotate(v->quat(), {0, 3, 0}), dt);
                if (p.timer <= 0 && std::fabs(v->speed()) < 0.3) {
                    p.boarding = false;
                    p.vehicle = v->handle();
                    v->driver = p.handle;
                    p.task = Ped::Task::Idle;
                }
            }
            break;
        }
        case Ped::Task::LeaveVehicle: {
            if (!veh) { p.task = Ped::Task::Idle; break; }
            veh->stop();
            p.pos = veh->pos();
            p.heading = veh->heading();
            p.vel = veh->velocity();
            if (std::fabs(veh->speed()) > 0.3) break;  // wait for the stop
            if (!p.boarding) { p.boarding = true; p.timer = kBoardSeconds; }
            p.timer -= dt;
            if (p.timer <= 0) {
                p.boarding = false;
                p.pos = veh->pos() + rotate(veh->quat(), {-1.6, 0, 0});
                p.pos.z = Ped::kHeight;
                p.vel = {};
                veh->driver = 0;
                p.vehicle = 0;
                p.task = Ped::Task::Idle;
            }
            break;
        }
        case Ped::Task::Face:
        case Ped::Task::Chat: {
            Ped* other = pw.find_ped(pw.ctx, p.target);
            if (other) face(p, other->pos, dt);
            else p.vel = {};
            if (p.task == Ped::Task::Face || p.timer > 0) {
                p.timer -= dt;
                if (p.timer <= 0 && p.task == Ped::Task::Face) p.task = Ped::Task::Idle;
                if (p.timer <= 0 && p.task == Ped::Task::Chat && p.handle != 1) start_wander(p, w);
            }
            break;
        }
    }
    p.pos.z = Ped::kHeight;
}

}  // namespace wfgta::sim
