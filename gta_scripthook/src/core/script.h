// The per-tick loop: control inbox, then the frame message describing the frame presented just
// before this tick (docs/gta.md), then environment, agent, camera and (while a `mark` lasts) the
// synchronisation marker for the next frame.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "agent.h"
#include "camera.h"
#include "config.h"
#include "environment.h"
#include "json.h"
#include "keys.h"
#include "message_sink.h"
#include "natives.h"

namespace wfgta {

constexpr const char* kPluginName = "worldforge-gta";
constexpr const char* kPluginVersion = "0.1.0";

// What the game shows and the agent does at the start of a tick.
struct Observation {
    int frame = 0, game_ms = 0;
    Vec3 cam_pos, cam_rot;
    double fov = 0;
    Entity ped = 0, vehicle = 0;
    bool in_vehicle = false;
    Vec3 ped_pos;
    double ped_heading = 0;
    Vec3 vehicle_pos;
    Quat vehicle_quat;
    Vec3 vel;
    double speed = 0;
};

class Script {
public:
    // config_path: the file the reload hotkey reads ("" = reload disabled).
    Script(Natives& n, MessageSink& sink, const Config& cfg, int game_version, std::string config_path = "");

    // One game tick; wall_ms is the wall clock (ms since the Unix epoch) read as the tick began.
    void tick(double wall_ms);
    // Ticks forever: tick(now), then wait(0) (Script Hook V's scriptWait); ends when *stop is set.
    void run_forever(const std::function<void(int)>& wait, const std::atomic<bool>* stop = nullptr);
    // Thread-safe: the next tick re-reads config_path.
    void request_reload() { reload_requested_ = true; }
    // Gives the camera back to the game.
    void shutdown();
    // Sends a status message carrying this error (e.g. "config invalid, using defaults").
    void report_error(const std::string& error) { send_status(error); }

    const Config& config() const { return cfg_; }
    bool recording() const { return recording_; }
    uint64_t seq() const { return seq_; }
    // Ticks the marker is still to be drawn on (after the last tick).
    int mark_left() const { return mark_left_; }
    // The agent's mode after the last tick (the mode of the frame that tick leads to).
    const char* mode() const { return mode_; }
    const Observation& last_observation() const { return obs_; }
    std::string hello_message() const;
    static double wall_clock_ms();
    // This plugin process's run id (16 lowercase hex digits), chosen at random once per process
    // (DLL load, sim host run): the hello carries it so the collector tells a reconnect (same
    // run, seq goes on) from a restarted game (new run, seq from 1 again).
    static const std::string& run_id();

private:
    Observation observe();
    void handle_control();
    void handle_mark(const JsonValue& msg);
    void reload();
    void send_status(const std::string& error = "", const std::string& event = "");
    void emit_frame(const Observation& o, const KeyState& k, double wall_ms, int mark);
    KeyState infer_keys(const Observation& o);

    Natives& n_;
    MessageSink& sink_;
    Config cfg_;
    int game_version_;
    std::string config_path_;
    Environment env_;
    Agent agent_;
    CameraRig rig_;
    KeyInference keys_;
    std::atomic<bool> reload_requested_{false};
    bool recording_ = false;
    std::string session_;
    uint64_t seq_ = 0;
    uint64_t invalid_ = 0;  // frames that could not be encoded (non-finite values)
    const char* mode_;
    Observation obs_;
    bool have_prev_ = false;
    int prev_game_ms_ = 0;
    double prev_heading_ = 0;
    bool prev_in_vehicle_ = false;
    DriveEstimate est_;
    int mark_left_ = 0;     // ticks still to draw the marker on
    int mark_index_ = 0;    // frames marked so far by the running mark (the next one's i)
    int marker_drawn_ = 0;  // the code the previous tick drew (0: none), shown on the frame now presented
};

}  // namespace wfgta
