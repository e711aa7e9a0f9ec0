// Typed wrappers over the invoker: each native by its hash (native_hashes.h), arguments packed
// the Script Hook V way (32-bit values in the low bits, pointers as addresses), Vector3 results
// read as three floats each padded to 8 bytes.
#pragma once
#include <cstdint>
#include <vector>

#include "invoker.h"
#include "math3d.h"

namespace wfgta {

using Entity = int32_t;

class Natives {
public:
    explicit Natives(Invoker& inv) : inv_(inv) {}

    Entity player_ped_id();
    bool does_entity_exist(Entity e);
    Vec3 entity_coords(Entity e);
    Vec3 entity_velocity(Entity e);
    double entity_speed(Entity e);
    double entity_heading(Entity e);
    Quat entity_quaternion(Entity e);

    bool is_ped_in_any_vehicle(Entity ped);
    Entity vehicle_ped_is_in(Entity ped);
    std::vector<Entity> nearby_peds(Entity ped, int max_count);
    std::vector<Entity> nearby_vehicles(Entity ped, int max_count);

    void clear_ped_tasks(Entity ped);
    void task_vehicle_drive_wander(Entity ped, Entity veh, double speed, int style);
    void task_wander_standard(Entity ped);
    void task_follow_nav_mesh_to_coord(Entity ped, Vec3 to, double move_blend_ratio, int time_ms);
    void task_enter_vehicle(Entity ped, Entity veh, int timeout_ms);
    void task_leave_vehicle(Entity ped, Entity veh);
    void task_turn_ped_to_face_entity(Entity ped, Entity target, int duration_ms);
    void task_look_at_entity(Entity ped, Entity target, int duration_ms);
    void task_chat_to_ped(Entity ped, Entity target);

    void set_vehicle_density_this_frame(double m);
    void set_random_vehicle_density_this_frame(double m);
    void set_parked_vehicle_density_this_frame(double m);
    void set_ped_density_this_frame(double m);
    void set_scenario_ped_density_this_frame(double m);
    void set_weather_type_now_persist(const char* name);
    void set_clock_time(int h, int m, int s);
    void pause_clock(bool paused);

    int frame_count();
    int game_timer();

    int create_cam(const char* name);
    void destroy_cam(int cam);
    void set_cam_active(int cam, bool active);
    void render_script_cams(bool render);
    void set_cam_coord(int cam, Vec3 p);
    void set_cam_rot(int cam, Vec3 rot_deg);
    void set_cam_fov(int cam, double fov);
    Vec3 final_rendered_cam_coord();
    Vec3 final_rendered_cam_rot();
    double final_rendered_cam_fov();

    // A rectangle on the next rendered frame only: centre (x, y) and size in screen-relative
    // units (0..1), colour 0..255.
    void draw_rect(double x, double y, double w, double h, int r, int g, int b, int a);

private:
    void begin(uint64_t h) { inv_.begin(h); }
    void arg_int(int64_t v);
    void arg_bool(bool v) { arg_int(v ? 1 : 0); }
    void arg_float(double v);
    void arg_ptr(const void* p);
    const uint64_t* call() { return inv_.call(); }
    static int ret_int(const uint64_t* r);
    static double ret_float(const uint64_t* r);
    static Vec3 ret_vec3(const uint64_t* r);
    std::vector<Entity> nearby(uint64_t h, Entity ped, int max_count, bool with_ignore);

    Invoker& inv_;
};

// Packing helpers shared with the simulator (which unpacks what the wrappers pack).
uint64_t pack_float(float f);
float unpack_float(uint64_t slot);
void write_vec3(uint64_t* slots, float x, float y, float z);

}  // namespace wfgta
