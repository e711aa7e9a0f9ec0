// Typed native wrappers: argument packing and result unpacking, one function per native.
#include "natives.h"

#include <cstring>

#include "native_hashes.h"

namespace wfgta {

uint64_t pack_float(float f) {
    uint32_t bits;
    std::memcpy(&bits, &f, sizeof bits);
    return bits;
}

float unpack_float(uint64_t slot) {
    uint32_t bits = static_cast<uint32_t>(slot);
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

void write_vec3(uint64_t* slots, float x, float y, float z) {
    slots[0] = pack_float(x);
    slots[1] = pack_float(y);
    slots[2] = pack_float(z);
}

void Natives::arg_int(int64_t v) { inv_.push(static_cast<uint32_t>(static_cast<int32_t>(v))); }
void Natives::arg_float(double v) { inv_.push(pack_float(static_cast<float>(v))); }
void Natives::arg_ptr(const void* p) { inv_.push(reinterpret_cast<uintptr_t>(p)); }
int Natives::ret_int(const uint64_t* r) { return static_cast<int32_t>(static_cast<uint32_t>(r[0])); }
double Natives::ret_float(const uint64_t* r) { return unpack_float(r[0]); }
Vec3 Natives::ret_vec3(const uint64_t* r) {
    return {unpack_float(r[0]), unpack_float(r[1]), unpack_float(r[2])};
}

Entity Natives::player_ped_id() {
    begin(hash::PLAYER_PED_ID);
    return ret_int(call());
}
bool Natives::does_entity_exist(Entity e) {
    begin(hash::DOES_ENTITY_EXIST);
    arg_int(e);
    return ret_int(call()) != 0;
}
Vec3 Natives::entity_coords(Entity e) {
    begin(hash::GET_ENTITY_COORDS);
    arg_int(e);
    arg_bool(true);
    return ret_vec3(call());
}
Vec3 Natives::entity_velocity(Entity e) {
    begin(hash::GET_ENTITY_VELOCITY);
    arg_int(e);
    return ret_vec3(call());
}
double Natives::entity_speed(Entity e) {
    begin(hash::GET_ENTITY_SPEED);
    arg_int(e);
    return ret_float(call());
}
double Natives::entity_heading(Entity e) {
    begin(hash::GET_ENTITY_HEADING);
    arg_int(e);
    return ret_float(call());
}
Quat Natives::entity_quaternion(Entity e) {
    float q[4] = {0, 0, 0, 1};
    begin(hash::GET_ENTITY_QUATERNION);
    arg_int(e);
    for (float& c : q) arg_ptr(&c);
    call();
    return normalized({q[0], q[1], q[2], q[3]});
}

bool Natives::is_ped_in_any_vehicle(Entity ped) {
    begin(hash::IS_PED_IN_ANY_VEHICLE);
    arg_int(ped);
    arg_bool(false);
    return ret_int(call()) != 0;
}
Entity Natives::vehicle_ped_is_in(Entity ped) {
    begin(hash::GET_VEHICLE_PED_IS_IN);
    arg_int(ped);
    arg_bool(false);
    return ret_int(call());
}

// sizeAndX layout: 64-bit slots, slot 0 the capacity, handles in the low 32 bits of slots 1..n.
std::vector<Entity> Natives::nearby(uint64_t h, Entity ped, int max_count, bool with_ignore) {
    std::vector<int64_t> slots(static_cast<size_t>(max_count) + 1, 0);
    slots[0] = max_count;
    begin(h);
    arg_int(ped);
    arg_ptr(slots.data());
    if (with_ignore) arg_int(-1);
    int n = ret_int(call());
    std::vector<Entity> out;
    for (int i = 0; i < n && i < max_count; ++i) {
        out.push_back(static_cast<Entity>(static_cast<int32_t>(slots[i + 1])));
    }
    return out;
}
std::vector<Entity> Natives::nearby_peds(Entity ped, int max_count) {
    return nearby(hash::GET_PED_NEARBY_PEDS, ped, max_count, true);
}
std::vector<Entity> Natives::nearby_vehicles(Entity ped, int max_count) {
    return nearby(hash::GET_PED_NEARBY_VEHICLES, ped, max_count, false);
}

void Natives::clear_ped_tasks(Entity ped) {
    begin(hash::CLEAR_PED_TASKS);
    arg_int(ped);
    call();
}
void Natives::task_vehicle_drive_wander(Entity ped, Entity veh, double speed, int style) {
    begin(hash::TASK_VEHICLE_DRIVE_WANDER);
    arg_int(ped);
    arg_int(veh);
    arg_float(speed);
    arg_int(style);
    call();
}
void Natives::task_wander_standard(Entity ped) {
    begin(hash::TASK_WANDER_STANDARD);
    arg_int(ped);
    arg_float(10.0);
    arg_int(10);
    call();
}
void Natives::task_follow_nav_mesh_to_coord(Entity ped, Vec3 to, double mbr, int time_ms) {
    begin(hash::TASK_FOLLOW_NAV_MESH_TO_COORD);
    arg_int(ped);
    arg_float(to.x);
    arg_float(to.y);
    arg_float(to.z);
    arg_float(mbr);
    arg_int(time_ms);
    arg_float(0.5);      // stopping radius
    arg_int(0);          // nav flags: default
    arg_float(40000.0);  // final heading: none
    call();
}
void Natives::task_enter_vehicle(Entity ped, Entity veh, int timeout_ms) {
    begin(hash::TASK_ENTER_VEHICLE);
    arg_int(ped);
    arg_int(veh);
    arg_int(timeout_ms);
    arg_int(-1);     // driver seat
    arg_float(1.0);  // walk
    arg_int(1);      // flag: normal entry
    arg_int(0);
    call();
}
void Natives::task_leave_vehicle(Entity ped, Entity veh) {
    begin(hash::TASK_LEAVE_VEHICLE);
    arg_int(ped);
    arg_int(veh);
    arg_int(0);
    call();
}
void Natives::task_turn_ped_to_face_entity(Entity ped, Entity target, int duration_ms) {
    begin(hash::TASK_TURN_PED_TO_FACE_ENTITY);
    arg_int(ped);
    arg_int(target);
    arg_int(duration_ms);
    call();
}
void Natives::task_look_at_entity(Entity ped, Entity target, int duration_ms) {
    begin(hash::TASK_LOOK_AT_ENTITY);
    arg_int(ped);
    arg_int(target);
    arg_int(duration_ms);
    arg_int(2048);  // flags as game scripts use them
    arg_int(3);     // priority
    call();
}
void Natives::task_chat_to_ped(Entity ped, Entity target) {
    begin(hash::TASK_CHAT_TO_PED);
    arg_int(ped);
    arg_int(target);
    arg_int(16);
    for (int i = 0; i < 5; ++i) arg_float(0.0);
    call();
}

void Natives::set_vehicle_density_this_frame(double m) {
    begin(hash::SET_VEHICLE_DENSITY_MULTIPLIER_THIS_FRAME);
    arg_float(m);
    call();
}
void Natives::set_random_vehicle_density_this_frame(double m) {
    begin(hash::SET_RANDOM_VEHICLE_DENSITY_MULTIPLIER_THIS_FRAME);
    arg_float(m);
    call();
}
void Natives::set_parked_vehicle_density_this_frame(double m) {
    begin(hash::SET_PARKED_VEHICLE_DENSITY_MULTIPLIER_THIS_FRAME);
    arg_float(m);
    call();
}
void Natives::set_ped_density_this_frame(double m) {
    begin(hash::SET_PED_DENSITY_MULTIPLIER_THIS_FRAME);
    arg_float(m);
    call();
}
void Natives::set_scenario_ped_density_this_frame(double m) {
    begin(hash::SET_SCENARIO_PED_DENSITY_MULTIPLIER_THIS_FRAME);
    arg_float(m);
    arg_float(m);
    call();
}
void Natives::set_weather_type_now_persist(const char* name) {
    begin(hash::SET_WEATHER_TYPE_NOW_PERSIST);
    arg_ptr(name);
    call();
}
void Natives::set_clock_time(int h, int m, int s) {
    begin(hash::SET_CLOCK_TIME);
    arg_int(h);
    arg_int(m);
    arg_int(s);
    call();
}
void Natives::pause_clock(bool paused) {
    begin(hash::PAUSE_CLOCK);
    arg_bool(paused);
    call();
}

int Natives::frame_count() {
    begin(hash::GET_FRAME_COUNT);
    return ret_int(call());
}
int Natives::game_timer() {
    begin(hash::GET_GAME_TIMER);
    return ret_int(call());
}

int Natives::create_cam(const char* name) {
    begin(hash::CREATE_CAM);
    arg_ptr(name);
    arg_bool(false);
    return ret_int(call());
}
void Natives::destroy_cam(int cam) {
    begin(hash::DESTROY_CAM);
    arg_int(cam);
    arg_bool(false);
    call();
}
void Natives::set_cam_active(int cam, bool active) {
    begin(hash::SET_CAM_ACTIVE);
    arg_int(cam);
    arg_bool(active);
    call();
}
void Natives::render_script_cams(bool render) {
    begin(hash::RENDER_SCRIPT_CAMS);
    arg_bool(render);
    arg_bool(false);  // no ease
    arg_int(0);       // ease time
    arg_bool(true);
    arg_bool(false);
    arg_int(0);
    call();
}
void Natives::set_cam_coord(int cam, Vec3 p) {
    begin(hash::SET_CAM_COORD);
    arg_int(cam);
    arg_float(p.x);
    arg_float(p.y);
    arg_float(p.z);
    call();
}
void Natives::set_cam_rot(int cam, Vec3 r) {
    begin(hash::SET_CAM_ROT);
    arg_int(cam);
    arg_float(r.x);
    arg_float(r.y);
    arg_float(r.z);
    arg_int(2);  // rotation order 2
    call();
}
void Natives::set_cam_fov(int cam, double fov) {
    begin(hash::SET_CAM_FOV);
    arg_int(cam);
    arg_float(fov);
    call();
}
Vec3 Natives::final_rendered_cam_coord() {
    begin(hash::GET_FINAL_RENDERED_CAM_COORD);
    return ret_vec3(call());
}
Vec3 Natives::final_rendered_cam_rot() {
    begin(hash::GET_FINAL_RENDERED_CAM_ROT);
    arg_int(2);
    return ret_vec3(call());
}
double Natives::final_rendered_cam_fov() {
    begin(hash::GET_FINAL_RENDERED_CAM_FOV);
    return ret_float(call());
}

void Natives::draw_rect(double x, double y, double w, double h, int r, int g, int b, int a) {
    begin(hash::DRAW_RECT);
    arg_float(x);
    arg_float(y);
    arg_float(w);
    arg_float(h);
    arg_int(r);
    arg_int(g);
    arg_int(b);
    arg_int(a);
    arg_bool(false);  // p8
    call();
}

}  // namespace wfgta
