// The simulator: world state (vehicles, peds, the player, cameras, clock, weather, densities,
// frame counter and game timer) answering the plugin's native calls by hash through the
// Invoker interface. An unknown hash, or a known one with the wrong argument count, aborts
// with the hash in the message, so the core cannot call anything the simulator does not model.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "invoker.h"
#include "marker.h"
#include "peds.h"
#include "vehicle.h"
#include "world.h"

namespace wfgta::sim {

struct SimCam {
    Vec3 pos, rot;
    double fov = 50;
    bool active = false;
};

struct RenderedCam {
    Vec3 pos, rot;
    double fov = 50;
};

class Sim : public Invoker {
public:
    explicit Sim(World w);

    // Invoker
    void begin(uint64_t hash) override;
    void push(uint64_t value) override;
    const uint64_t* call() override;

    // Advances game time by dt seconds (the game timer by dt*1000 ms).
    void step(double dt);
    // Presents a frame: the frame counter advances and the rendered camera is latched (the
    // active script camera when script cameras render, else the gameplay camera), and so are
    // the DRAW_RECTs issued since the previous present (they show on this frame only).
    void present();

    const World& world() const { return w_; }
    int frame_count() const { return frame_; }
    int game_ms() const { return static_cast<int>(game_ms_ + 1e-6); }
    const RenderedCam& rendered() const { return rendered_; }
    // The rectangles drawn on the frame last presented, in call order (values as received).
    const std::vector<ScreenRect>& rects() const { return rects_; }
    const Ped& player() const { return *peds_.at(0); }
    Vehicle* vehicle(int handle);
    Ped* ped(int handle);
    const std::vector<std::unique_ptr<Vehicle>>& vehicles() const { return vehicles_; }
    // The player's vehicle controls when driving (ground truth), zeros on foot.
    Controls player_controls() const;
    bool player_in_vehicle() const { return player().vehicle != 0; }
    // Agent velocity: the vehicle's when in one, else the player's.
    Vec3 player_velocity() const;

    // State the tests check.
    std::string weather;
    int clock_h = 12, clock_m = 0, clock_s = 0;
    bool clock_paused = false;
    double vehicle_density = -1, random_vehicle_density = -1, parked_vehicle_density = -1;
    double ped_density = -1, scenario_ped_density = -1;
    int density_frame = -1;  // frame count at the last SET_VEHICLE_DENSITY_MULTIPLIER_THIS_FRAME
    uint64_t calls(uint64_t hash) const;
    uint64_t total_calls() const { return total_calls_; }
    bool script_cams_rendering() const { return render_script_cams_; }

private:
    [[noreturn]] void fail(const char* why) const;
    void need(size_t n, const char* name) const;
    int32_t i32(size_t k) const { return static_cast<int32_t>(static_cast<uint32_t>(args_[k])); }
    float f32(size_t k) const;
    template <typename T> T* ptr(size_t k) const { return reinterpret_cast<T*>(static_cast<uintptr_t>(args_[k])); }
    void ret_int(int64_t v) { ret_[0] = static_cast<uint32_t>(static_cast<int32_t>(v)); }
    void ret_float(double v);
    void ret_vec3(Vec3 v);
    Vec3 entity_pos(int e) const;
    Vec3 entity_vel(int e) const;
    double entity_heading(int e) const;
    bool exists(int e) const;
    void nearby(bool vehicles_wanted);
    RenderedCam gameplay_cam() const;
    void dispatch();

    World w_;
    Rng rng_;
    std::vector<std::unique_ptr<Vehicle>> vehicles_;
    std::vector<std::unique_ptr<Ped>> peds_;  // [0] is the player
    std::map<int, SimCam> cams_;
    int next_cam_ = 5000;
    bool render_script_cams_ = false;
    RenderedCam rendered_;
    std::vector<ScreenRect> rects_, pending_rects_;
    int frame_ = 0;
    double game_ms_ = 0;
    double clock_accum_s_ = 0;

    uint64_t hash_ = 0;
    std::vector<uint64_t> args_;
    uint64_t ret_[4] = {0, 0, 0, 0};
    std::unordered_map<uint64_t, uint64_t> calls_;
    uint64_t total_calls_ = 0;
};

constexpr int kPlayerHandle = 1;
constexpr int kFirstPed = 100;
constexpr int kFirstVehicle = 1000;

}  // namespace wfgta::sim
