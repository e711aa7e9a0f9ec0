// The agent: a small state machine ticked once per game tick. Activities: autonomous driving
// (enter the nearest vehicle, then TASK_VEHICLE_DRIVE_WANDER), walking (wander, or follow the
// navmesh to a random nearby point), NPC interaction (approach the nearest ped, face it, look
// at it and chat for a while); leaving a vehicle when an on-foot activity starts. "mixed"
// switches activity every 20-40 s of game time with a seeded RNG.
#pragma once
#include <cstdint>
#include <string>

#include "config.h"
#include "natives.h"

namespace wfgta {

// splitmix64: small, seedable and identical on every compiler (unlike std distributions).
class Rng {
public:
    explicit Rng(uint64_t seed = 0) : s_(seed) {}
    uint64_t next();
    double uniform(double lo, double hi);  // [lo, hi)
    int below(int n);                      // [0, n)

private:
    uint64_t s_;
};

class Agent {
public:
    enum class Activity { Drive, Walk, Npc };
    enum class Phase { Start, EnterVehicle, LeaveVehicle, Active, Approach, Chat };

    Agent(Natives& n, const Config& cfg) : n_(n) { configure(cfg, 0); }
    // Takes new settings; the activity restarts at the next tick.
    void configure(const Config& cfg, int now_ms);
    void tick(int now_ms);
    // "drive", "walk", "npc", or "enter" / "leave" while getting into / out of a vehicle.
    const char* mode_name() const;
    Activity activity() const { return activity_; }
    Phase phase() const { return phase_; }

    static constexpr int kNearbyMax = 32;
    static constexpr double kChatDistance = 2.0;  // m
    static constexpr int kChatMs = 6000;

private:
    void start(Activity a, int now_ms);
    void tick_drive(Entity ped, bool in_vehicle, int now_ms);
    void tick_walk(Entity ped, int now_ms);
    void tick_npc(Entity ped, int now_ms);
    bool leave_vehicle_first(Entity ped, bool in_vehicle, int now_ms);
    Entity nearest(const std::vector<Entity>& es, Vec3 from, Entity exclude) ;

    Natives& n_;
    Config cfg_;
    Rng rng_;
    Activity activity_ = Activity::Drive;
    Phase phase_ = Phase::Start;
    bool started_ = false;
    int activity_end_ms_ = 0;
    int deadline_ms_ = 0;
    int next_ms_ = 0;
    Entity vehicle_ = 0, target_ = 0, last_target_ = 0;
    bool nav_next_ = false;
};

}  // namespace wfgta
