// Agent state machine.
#include "agent.h"

#include <cmath>

namespace wfgta {

uint64_t Rng::next() {
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
double Rng::uniform(double lo, double hi) { return lo + (hi - lo) * ((next() >> 11) * 0x1.0p-53); }
int Rng::below(int n) { return n <= 0 ? 0 : static_cast<int>(next() % static_cast<uint64_t>(n)); }

void Agent::configure(const Config& cfg, int now_ms) {
    cfg_ = cfg;
    rng_ = Rng(cfg.seed);
    started_ = false;
    phase_ = Phase::Start;
    activity_end_ms_ = now_ms;
}

const char* Agent::mode_name() const {
    if (phase_ == Phase::EnterVehicle) return "enter";
    if (phase_ == Phase::LeaveVehicle) return "leave";
    switch (activity_) {
        case Activity::Drive: return "drive";
        case Activity::Walk: return "walk";
        case Activity::Npc: return "npc";
    }
    return "walk";
}

void Agent::start(Activity a, int now_ms) {
    activity_ = a;
    phase_ = Phase::Start;
    started_ = true;
    deadline_ms_ = next_ms_ = now_ms;
    vehicle_ = target_ = 0;
    if (cfg_.mode == "mixed") activity_end_ms_ = now_ms + static_cast<int>(rng_.uniform(20000, 40000));
}

Entity Agent::nearest(const std::vector<Entity>& es, Vec3 from, Entity exclude) {
    Entity best = 0;
    double best_d = 1e18;
    for (Entity e : es) {
        if (e == exclude || !n_.does_entity_exist(e)) continue;
        Vec3 d = n_.entity_coords(e) - from;
        double dist = dot(d, d);
        if (dist < best_d) { best_d = dist; best = e; }
    }
    return best;
}

void Agent::tick(int now_ms) {
    if (!started_) {
        Activity a = Activity::Drive;
        if (cfg_.mode == "walk") a = Activity::Walk;
        else if (cfg_.mode == "npc") a = Activity::Npc;
        else if (cfg_.mode == "mixed") a = static_cast<Activity>(rng_.below(3));
        start(a, now_ms);
    } else if (cfg_.mode == "mixed" && now_ms >= activity_end_ms_ && phase_ != Phase::EnterVehicle &&
               phase_ != Phase::LeaveVehicle) {
        Activity next = static_cast<Activity>((static_cast<int>(activity_) + 1 + rng_.below(2)) % 3);
        Entity ped = n_.player_ped_id();
        n_.clear_ped_tasks(ped);
        start(next, now_ms);
    }
    Entity ped = n_.player_ped_id();
    bool in_vehicle = n_.is_ped_in_any_vehicle(ped);
    switch (activity_) {
        case Activity::Drive: tick_drive(ped, in_vehicle, now_ms); break;
        case Activity::Walk:
            if (!leave_vehicle_first(ped, in_vehicle, now_ms)) tick_walk(ped, now_ms);
            break;
        case Activity::Npc:
            if (!leave_vehicle_first(ped, in_vehicle, now_ms)) tick_npc(ped, now_ms);
            break;
    }
}

void Agent::tick_drive(Entity ped, bool in_vehicle, int now_ms) {
    if (in_vehicle) {
        Entity veh = n_.vehicle_ped_is_in(ped);
        if (phase_ != Phase::Active || veh != vehicle_) {
            n_.task_vehicle_drive_wander(ped, veh, cfg_.drive_speed, cfg_.drive_style);
            vehicle_ = veh;
            phase_ = Phase::Active;
        }
        return;
    }
    if (phase_ == Phase::EnterVehicle && now_ms < deadline_ms_) return;
    if (now_ms < next_ms_) return;
    Entity veh = nearest(n_.nearby_vehicles(ped, kNearbyMax), n_.entity_coords(ped), 0);
    if (veh == 0) {
        phase_ = Phase::Start;
        next_ms_ = now_ms + 1000;  // nothing near: look again in a second
        return;
    }
    n_.task_enter_vehicle(ped, veh, 20000);
    vehicle_ = veh;
    phase_ = Phase::EnterVehicle;
    deadline_ms_ = now_ms + 25000;
}

bool Agent::leave_vehicle_first(Entity ped, bool in_vehicle, int now_ms) {
    if (!in_vehicle) {
        if (phase_ == Phase::LeaveVehicle) phase_ = Phase::Start;
        return false;
    }
    if (phase_ != Phase::LeaveVehicle || now_ms >= deadline_ms_) {
        n_.task_leave_vehicle(ped, n_.vehicle_ped_is_in(ped));
        phase_ = Phase::LeaveVehicle;
        deadline_ms_ = now_ms + 10000;
    }
    return true;
}

void Agent::tick_walk(Entity ped, int now_ms) {
    if (phase_ == Phase::Active && now_ms < next_ms_) return;
    // Alternate: wander the pavements, then head for a random point 10-30 m away.
    if (nav_next_) {
        Vec3 here = n_.entity_coords(ped);
        double ang = rng_.uniform(0, 2 * kPi), r = rng_.uniform(10, 30);
        n_.task_follow_nav_mesh_to_coord(ped, {here.x + r * std::cos(ang), here.y + r * std::sin(ang), here.z},
                                         1.0, -1);
    } else {
        n_.task_wander_standard(ped);
    }
    nav_next_ = !nav_next_;
    phase_ = Phase::Active;
    next_ms_ = now_ms + 15000;
}

void Agent::tick_npc(Entity ped, int now_ms) {
    Vec3 here = n_.entity_coords(ped);
    if (phase_ == Phase::Chat) {
        if (now_ms < deadline_ms_) return;
        n_.clear_ped_tasks(ped);
        last_target_ = target_;
        target_ = 0;
        phase_ = Phase::Start;
    }
    if (phase_ == Phase::Approach) {
        if (!n_.does_entity_exist(target_) || now_ms >= deadline_ms_) {
            last_target_ = target_;
            phase_ = Phase::Start;
        } else {
            Vec3 there = n_.entity_coords(target_);
            Vec3 d = there - here;
            if (std::hypot(d.x, d.y) <= kChatDistance) {
                n_.task_turn_ped_to_face_entity(ped, target_, 2000);
                n_.task_look_at_entity(ped, target_, kChatMs);
                n_.task_chat_to_ped(ped, target_);
                phase_ = Phase::Chat;
                deadline_ms_ = now_ms + kChatMs;
            } else if (now_ms >= next_ms_) {
                n_.task_follow_nav_mesh_to_coord(ped, there, 2.0, -1);  // run to keep up
                next_ms_ = now_ms + 1000;
            }
            return;
        }
    }
    if (now_ms < next_ms_ && phase_ == Phase::Active) return;  // wandering until the next search
    target_ = nearest(n_.nearby_peds(ped, kNearbyMax), here, last_target_);
    if (target_ == 0) {
        n_.task_wander_standard(ped);
        phase_ = Phase::Active;
        next_ms_ = now_ms + 2000;
        return;
    }
    n_.task_follow_nav_mesh_to_coord(ped, n_.entity_coords(target_), 2.0, -1);
    phase_ = Phase::Approach;
    next_ms_ = now_ms + 1000;
    deadline_ms_ = now_ms + 20000;
}

}  // namespace wfgta
