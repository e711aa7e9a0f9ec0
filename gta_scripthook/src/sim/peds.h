// Simulated pedestrians (the player included): walk the sidewalk graph, follow a straight
// "navmesh" path to a point, enter and leave vehicles (timed transitions), turn to face and
// chat with another ped.
#pragma once
#include "agent.h"  // Rng
#include "math3d.h"
#include "world.h"

namespace wfgta::sim {

class Vehicle;

struct Ped {
    enum class Task { Idle, Wander, NavTo, EnterVehicle, LeaveVehicle, Face, Chat };
    int handle = 0;
    Vec3 pos;
    double heading = 0;  // GTA degrees
    Vec3 vel;
    double walk_speed = 1.4;
    Task task = Task::Idle;
    Vec3 goal;
    double goal_speed = 1.4;
    int walk_node = -1, prev_walk_node = -1;
    int target = 0;          // entity handle: vehicle to enter, ped to face/chat with
    double timer = 0;        // seconds left in a timed phase
    bool boarding = false;   // at the door, getting in / out
    int vehicle = 0;         // vehicle handle while inside
    int look_at = 0;

    static constexpr double kHeight = 1.0;  // centre above ground
};

// Moves one ped for dt seconds. `find_vehicle` / `find_ped` resolve handles (nullptr if none).
struct PedWorld {
    const World& world;
    Rng& rng;
    Vehicle* (*find_vehicle)(void* ctx, int handle);
    Ped* (*find_ped)(void* ctx, int handle);
    void* ctx;
};
void step_ped(Ped& p, double dt, PedWorld& pw);
// Starts wandering from the nearest sidewalk corner.
void start_wander(Ped& p, const World& w);

}  // namespace wfgta::sim
