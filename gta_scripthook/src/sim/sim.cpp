// Simulator state, time stepping and the native dispatch by hash.
#include "sim.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "camera.h"
#include "native_hashes.h"
#include "natives.h"

namespace wfgta::sim {

namespace H = wfgta::hash;

Sim::Sim(World w) : w_(std::move(w)), rng_(w_.seed) {
    for (int k = 0; k < w_.vehicles; ++k) {
        vehicles_.push_back(std::make_unique<Vehicle>(kFirstVehicle + k, w_, rng_));
    }
    auto player = std::make_unique<Ped>();
    player->handle = kPlayerHandle;
    player->pos = w_.walk_pos(w_.nearest_walk({0, 0, 0}));
    player->pos.z = Ped::kHeight;
    peds_.push_back(std::move(player));
    int corners = w_.nx() * w_.ny() * 4;
    for (int k = 0; k < w_.peds; ++k) {
        auto p = std::make_unique<Ped>();
        p->handle = kFirstPed + k;
        p->pos = w_.walk_pos(rng_.below(corners));
        p->pos.z = Ped::kHeight;
        p->walk_speed = rng_.uniform(1.2, 1.6);
        start_wander(*p, w_);
        peds_.push_back(std::move(p));
    }
    if (w_.player_in_vehicle) {
        if (vehicles_.empty()) throw std::invalid_argument("world: player_in_vehicle needs at least one vehicle");
        vehicles_[0]->stop();
        vehicles_[0]->driver = kPlayerHandle;
        peds_[0]->vehicle = vehicles_[0]->handle();
    }
    rendered_ = gameplay_cam();
}

Vehicle* Sim::vehicle(int h) {
    if (h < kFirstVehicle || h >= kFirstVehicle + static_cast<int>(vehicles_.size())) return nullptr;
    return vehicles_[h - kFirstVehicle].get();
}

Ped* Sim::ped(int h) {
    if (h == kPlayerHandle) return peds_[0].get();
    if (h < kFirstPed || h >= kFirstPed + static_cast<int>(peds_.size()) - 1) return nullptr;
    return peds_[h - kFirstPed + 1].get();
}

uint64_t Sim::calls(uint64_t h) const {
    auto it = calls_.find(h);
    return it == calls_.end() ? 0 : it->second;
}

Controls Sim::player_controls() const {
    if (!player_in_vehicle()) return {};
    return const_cast<Sim*>(this)->vehicle(player().vehicle)->controls();
}

Vec3 Sim::player_velocity() const { return entity_vel(kPlayerHandle); }

void Sim::step(double dt) {
    for (auto& v : vehicles_) v->step(dt, rng_);
    PedWorld pw{w_, rng_,
                [](void* c, int h) { return static_cast<Sim*>(c)->vehicle(h); },
                [](void* c, int h) { return static_cast<Sim*>(c)->ped(h); }, this};
    for (auto& p : peds_) step_ped(*p, dt, pw);
    game_ms_ += dt * 1000.0;
    if (!clock_paused) {
        clock_accum_s_ += dt * 30.0;  // one game minute per two seconds
        while (clock_accum_s_ >= 1.0) {
            clock_accum_s_ -= 1.0;
            if (++clock_s == 60) { clock_s = 0; if (++clock_m == 60) { clock_m = 0; clock_h = (clock_h + 1) % 24; } }
        }
    }
}

static Vec3 fround(Vec3 v) {
    return {static_cast<float>(v.x), static_cast<float>(v.y), static_cast<float>(v.z)};
}

RenderedCam Sim::gameplay_cam() const {
    const Ped& p = player();
    CamPose pose = third_person_camera(p.pos, p.heading, -5.0, 50.0);
    return {fround(pose.pos), fround(pose.rot), static_cast<float>(pose.fov)};
}

void Sim::present() {
    ++frame_;
    rects_.swap(pending_rects_);
    pending_rects_.clear();
    rendered_ = gameplay_cam();
    if (render_script_cams_) {
        for (const auto& [h, c] : cams_) {
            if (c.active) {
                rendered_ = {c.pos, c.rot, c.fov};
                break;
            }
        }
    }
}

// --- natives ---------------------------------------------------------------------------

void Sim::fail(const char* why) const {
    std::fprintf(stderr, "wfgta sim: %s: native hash 0x%016llX (%zu arguments)\n", why,
                 static_cast<unsigned long long>(hash_), args_.size());
    std::fflush(stderr);
    std::abort();
}

void Sim::need(size_t n, const char* name) const {
    if (args_.size() != n) {
        std::fprintf(stderr, "wfgta sim: %s takes %zu arguments, got %zu: native hash 0x%016llX\n", name, n,
                     args_.size(), static_cast<unsigned long long>(hash_));
        std::fflush(stderr);
        std::abort();
    }
}

float Sim::f32(size_t k) const { return unpack_float(args_[k]); }
void Sim::ret_float(double v) { ret_[0] = pack_float(static_cast<float>(v)); }
void Sim::ret_vec3(Vec3 v) {
    write_vec3(ret_, static_cast<float>(v.x), static_cast<float>(v.y), static_cast<float>(v.z));
}

void Sim::begin(uint64_t h) {
    hash_ = h;
    args_.clear();
}
void Sim::push(uint64_t v) { args_.push_back(v); }
const uint64_t* Sim::call() {
    std::memset(ret_, 0, sizeof ret_);
    ++calls_[hash_];
    ++total_calls_;
    dispatch();
    return ret_;
}

bool Sim::exists(int e) const {
    return const_cast<Sim*>(this)->vehicle(e) != nullptr || const_cast<Sim*>(this)->ped(e) != nullptr;
}
Vec3 Sim::entity_pos(int e) const {
    Sim* s = const_cast<Sim*>(this);
    if (Vehicle* v = s->vehicle(e)) return v->pos();
    if (Ped* p = s->ped(e)) return p->pos;
    return {};
}
Vec3 Sim::entity_vel(int e) const {
    Sim* s = const_cast<Sim*>(this);
    if (Vehicle* v = s->vehicle(e)) return v->velocity();
    if (Ped* p = s->ped(e)) return p->vel;
    return {};
}
double Sim::entity_heading(int e) const {
    Sim* s = const_cast<Sim*>(this);
    if (Vehicle* v = s->vehicle(e)) return v->heading();
    if (Ped* p = s->ped(e)) return p->heading;
    return 0;
}

void Sim::nearby(bool want_vehicles) {
    int who = i32(0);
    int64_t* slots = ptr<int64_t>(1);
    if (!slots || !exists(who)) fail("nearby lookup with a bad ped or buffer");
    int capacity = static_cast<int>(slots[0]);
    Vec3 here = entity_pos(who);
    const Ped* self = ped(who);
    std::vector<std::pair<double, int>> found;
    auto add = [&](int h, Vec3 p) {
        double d = std::hypot(p.x - here.x, p.y - here.y);
        if (d <= 80.0) found.push_back({d, h});
    };
    if (want_vehicles) {
        for (auto& v : vehicles_) if (!self || self->vehicle != v->handle()) add(v->handle(), v->pos());
    } else {
        for (auto& p : peds_) if (p->handle != who && p->vehicle == 0) add(p->handle, p->pos);
    }
    std::sort(found.begin(), found.end());
    int n = std::min<int>(capacity, static_cast<int>(found.size()));
    for (int k = 0; k < n; ++k) slots[k + 1] = found[k].second;
    ret_int(n);
}

void Sim::dispatch() {
    switch (hash_) {
        case H::PLAYER_PED_ID: need(0, "PLAYER_PED_ID"); ret_int(kPlayerHandle); return;
        case H::DOES_ENTITY_EXIST: need(1, "DOES_ENTITY_EXIST"); ret_int(exists(i32(0))); return;
        case H::GET_ENTITY_COORDS: need(2, "GET_ENTITY_COORDS"); ret_vec3(entity_pos(i32(0))); return;
        case H::GET_ENTITY_VELOCITY: need(1, "GET_ENTITY_VELOCITY"); ret_vec3(entity_vel(i32(0))); return;
        case H::GET_ENTITY_SPEED: need(1, "GET_ENTITY_SPEED"); ret_float(norm(entity_vel(i32(0)))); return;
        case H::GET_ENTITY_HEADING: {
            need(1, "GET_ENTITY_HEADING");
            double h = std::fmod(entity_heading(i32(0)) + 360.0, 360.0);
            ret_float(h);
            return;
        }
        case H::GET_ENTITY_QUATERNION: {
            need(5, "GET_ENTITY_QUATERNION");
            Quat q = axis_angle({0, 0, 1}, deg2rad(entity_heading(i32(0))));
            float* out[4] = {ptr<float>(1), ptr<float>(2), ptr<float>(3), ptr<float>(4)};
            double c[4] = {q.x, q.y, q.z, q.w};
            for (int k = 0; k < 4; ++k) {
                if (!out[k]) fail("null quaternion pointer");
                *out[k] = static_cast<float>(c[k]);
            }
            return;
        }
        case H::IS_PED_IN_ANY_VEHICLE: {
            need(2, "IS_PED_IN_ANY_VEHICLE");
            Ped* p = ped(i32(0));
            ret_int(p && p->vehicle != 0);
            return;
        }
        case H::GET_VEHICLE_PED_IS_IN: {
            need(2, "GET_VEHICLE_PED_IS_IN");
            Ped* p = ped(i32(0));
            ret_int(p ? p->vehicle : 0);
            return;
        }
        case H::GET_PED_NEARBY_PEDS: need(3, "GET_PED_NEARBY_PEDS"); nearby(false); return;
        case H::GET_PED_NEARBY_VEHICLES: need(2, "GET_PED_NEARBY_VEHICLES"); nearby(true); return;

        case H::CLEAR_PED_TASKS: {
            need(1, "CLEAR_PED_TASKS");
            if (Ped* p = ped(i32(0)); p && p->vehicle == 0) {
                p->task = Ped::Task::Idle;
                p->boarding = false;
                p->vel = {};
            }
            return;
        }
        case H::TASK_VEHICLE_DRIVE_WANDER: {
            need(4, "TASK_VEHICLE_DRIVE_WANDER");
            Ped* p = ped(i32(0));
            Vehicle* v = vehicle(i32(1));
            if (p && v && p->vehicle == v->handle()) v->wander(f32(2));
            return;
        }
        case H::TASK_WANDER_STANDARD: {
            need(3, "TASK_WANDER_STANDARD");
            if (Ped* p = ped(i32(0)); p && p->vehicle == 0) start_wander(*p, w_);
            return;
        }
        case H::TASK_FOLLOW_NAV_MESH_TO_COORD: {
            need(9, "TASK_FOLLOW_NAV_MESH_TO_COORD");
            if (Ped* p = ped(i32(0)); p && p->vehicle == 0) {
                p->task = Ped::Task::NavTo;
                p->goal = {f32(1), f32(2), f32(3)};
                double mbr = f32(4);
                p->goal_speed = mbr >= 2.0 ? 3.5 : (mbr >= 1.5 ? 2.5 : p->walk_speed);
            }
            return;
        }
        case H::TASK_ENTER_VEHICLE: {
            need(7, "TASK_ENTER_VEHICLE");
            Ped* p = ped(i32(0));
            if (p && p->vehicle == 0 && vehicle(i32(1))) {
                p->task = Ped::Task::EnterVehicle;
                p->target = i32(1);
                p->boarding = false;
                p->timer = i32(2) > 0 ? i32(2) / 1000.0 : 1e9;
            }
            return;
        }
        case H::TASK_LEAVE_VEHICLE: {
            need(3, "TASK_LEAVE_VEHICLE");
            if (Ped* p = ped(i32(0)); p && p->vehicle != 0) {
                p->task = Ped::Task::LeaveVehicle;
                p->boarding = false;
            }
            return;
        }
        case H::TASK_TURN_PED_TO_FACE_ENTITY: {
            need(3, "TASK_TURN_PED_TO_FACE_ENTITY");
            if (Ped* p = ped(i32(0)); p && p->vehicle == 0) {
                p->task = Ped::Task::Face;
                p->target = i32(1);
                p->timer = i32(2) > 0 ? i32(2) / 1000.0 : 1.0;
            }
            return;
        }
        case H::TASK_LOOK_AT_ENTITY: {
            need(5, "TASK_LOOK_AT_ENTITY");
            if (Ped* p = ped(i32(0))) p->look_at = i32(1);
            return;
        }
        case H::TASK_CHAT_TO_PED: {
            need(8, "TASK_CHAT_TO_PED");
            Ped* p = ped(i32(0));
            Ped* other = ped(i32(1));
            if (p && other && p->vehicle == 0) {
                p->task = Ped::Task::Chat;
                p->target = other->handle;
                p->timer = 0;  // until cleared
                if (other->vehicle == 0) {
                    other->task = Ped::Task::Chat;
                    other->target = p->handle;
                    other->timer = 6.0;
                }
            }
            return;
        }

        case H::SET_VEHICLE_DENSITY_MULTIPLIER_THIS_FRAME:
            need(1, "SET_VEHICLE_DENSITY_MULTIPLIER_THIS_FRAME");
            vehicle_density = f32(0);
            density_frame = frame_;
            return;
        case H::SET_RANDOM_VEHICLE_DENSITY_MULTIPLIER_THIS_FRAME:
            need(1, "SET_RANDOM_VEHICLE_DENSITY_MULTIPLIER_THIS_FRAME");
            random_vehicle_density = f32(0);
            return;
        case H::SET_PARKED_VEHICLE_DENSITY_MULTIPLIER_THIS_FRAME:
            need(1, "SET_PARKED_VEHICLE_DENSITY_MULTIPLIER_THIS_FRAME");
            parked_vehicle_density = f32(0);
            return;
        case H::SET_PED_DENSITY_MULTIPLIER_THIS_FRAME:
            need(1, "SET_PED_DENSITY_MULTIPLIER_THIS_FRAME");
            ped_density = f32(0);
            return;
        case H::SET_SCENARIO_PED_DENSITY_MULTIPLIER_THIS_FRAME:
            need(2, "SET_SCENARIO_PED_DENSITY_MULTIPLIER_THIS_FRAME");
            scenario_ped_density = f32(1);
            return;
        case H::SET_WEATHER_TYPE_NOW_PERSIST: {
            need(1, "SET_WEATHER_TYPE_NOW_PERSIST");
            const char* name = ptr<const char>(0);
            if (!name) fail("null weather name");
            weather = name;
            return;
        }
        case H::SET_CLOCK_TIME:
            need(3, "SET_CLOCK_TIME");
            clock_h = i32(0);
            clock_m = i32(1);
            clock_s = i32(2);
            clock_accum_s_ = 0;
            return;
        case H::PAUSE_CLOCK: need(1, "PAUSE_CLOCK"); clock_paused = i32(0) != 0; return;
        case H::GET_FRAME_COUNT: need(0, "GET_FRAME_COUNT"); ret_int(frame_); return;
        case H::GET_GAME_TIMER: need(0, "GET_GAME_TIMER"); ret_int(game_ms()); return;

        case H::CREATE_CAM: {
            need(2, "CREATE_CAM");
            const char* name = ptr<const char>(0);
            if (!name || std::strcmp(name, "DEFAULT_SCRIPTED_CAMERA") != 0) fail("CREATE_CAM with an unknown camera name");
            int h = next_cam_++;
            cams_[h] = SimCam{};
            ret_int(h);
            return;
        }
        case H::DESTROY_CAM: need(2, "DESTROY_CAM"); cams_.erase(i32(0)); return;
        case H::SET_CAM_ACTIVE: {
            need(2, "SET_CAM_ACTIVE");
            auto it = cams_.find(i32(0));
            if (it == cams_.end()) fail("SET_CAM_ACTIVE on an unknown camera");
            if (i32(1)) for (auto& [h, c] : cams_) c.active = false;
            it->second.active = i32(1) != 0;
            return;
        }
        case H::RENDER_SCRIPT_CAMS: need(6, "RENDER_SCRIPT_CAMS"); render_script_cams_ = i32(0) != 0; return;
        case H::SET_CAM_COORD: {
            need(4, "SET_CAM_COORD");
            auto it = cams_.find(i32(0));
            if (it == cams_.end()) fail("SET_CAM_COORD on an unknown camera");
            it->second.pos = {f32(1), f32(2), f32(3)};
            return;
        }
        case H::SET_CAM_ROT: {
            need(5, "SET_CAM_ROT");
            auto it = cams_.find(i32(0));
            if (it == cams_.end()) fail("SET_CAM_ROT on an unknown camera");
            if (i32(4) != 2) fail("SET_CAM_ROT with a rotation order other than 2");
            it->second.rot = {f32(1), f32(2), f32(3)};
            return;
        }
        case H::SET_CAM_FOV: {
            need(2, "SET_CAM_FOV");
            auto it = cams_.find(i32(0));
            if (it == cams_.end()) fail("SET_CAM_FOV on an unknown camera");
            it->second.fov = f32(1);
            return;
        }
        case H::GET_FINAL_RENDERED_CAM_COORD: need(0, "GET_FINAL_RENDERED_CAM_COORD"); ret_vec3(rendered_.pos); return;
        case H::GET_FINAL_RENDERED_CAM_ROT:
            need(1, "GET_FINAL_RENDERED_CAM_ROT");
            if (i32(0) != 2) fail("GET_FINAL_RENDERED_CAM_ROT with a rotation order other than 2");
            ret_vec3(rendered_.rot);
            return;
        case H::GET_FINAL_RENDERED_CAM_FOV: need(0, "GET_FINAL_RENDERED_CAM_FOV"); ret_float(rendered_.fov); return;
        case H::DRAW_RECT:
            need(9, "DRAW_RECT");
            pending_rects_.push_back({f32(0), f32(1), f32(2), f32(3), i32(4), i32(5), i32(6), i32(7)});
            return;
        default: fail("unknown native");
    }
}

}  // namespace wfgta::sim
