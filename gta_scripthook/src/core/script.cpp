// Script tick: observe, report, act.
#include "script.h"

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>

#include "json.h"
#include "marker.h"

namespace wfgta {

Script::Script(Natives& n, MessageSink& sink, const Config& cfg, int game_version, std::string config_path)
    : n_(n), sink_(sink), cfg_(cfg), game_version_(game_version), config_path_(std::move(config_path)),
      env_(n), agent_(n, cfg), rig_(n) {
    mode_ = agent_.mode_name();
    sink_.set_endpoint(cfg_.host, cfg_.port);
    sink_.set_hello(hello_message());
}

double Script::wall_clock_ms() {
    using namespace std::chrono;
    return duration_cast<duration<double, std::milli>>(system_clock::now().time_since_epoch()).count();
}

// splitmix64's finaliser: spreads the entropy sources below over all 64 bits.
static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

const std::string& Script::run_id() {
    static const std::string id = [] {
        // std::random_device may be deterministic on some MinGW runtimes: the clocks and an
        // address (ASLR) make two runs differ regardless.
        std::random_device rd;
        uint64_t r = (static_cast<uint64_t>(rd()) << 32) ^ rd();
        uint64_t t = static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
        uint64_t c = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
        int local = 0;
        uint64_t a = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(&local));
        uint64_t v = mix64(r ^ mix64(t ^ mix64(c ^ mix64(a))));
        char buf[17];
        std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
        return std::string(buf);
    }();
    return id;
}

static void write_config(JsonWriter& w, const Config& c) {
    w.begin_object();
    w.key("weather").string(c.weather);
    w.key("time_of_day").number(c.time_of_day);
    w.key("vehicle_density").number(c.vehicle_density);
    w.key("npc_density").number(c.npc_density);
    w.key("camera").string(c.camera);
    w.key("camera_offset").begin_array().number(c.camera_offset.x).number(c.camera_offset.y)
        .number(c.camera_offset.z).end_array();
    w.key("mode").string(c.mode);
    w.key("fov").number(c.fov);
    w.key("drive_speed").number(c.drive_speed);
    w.key("drive_style").integer(c.drive_style);
    w.key("pitch").number(c.pitch);
    w.key("pause_clock").boolean(c.pause_clock);
    w.key("seed").integer(c.seed);
    w.end_object();
}

std::string Script::hello_message() const {
    JsonWriter w;
    w.begin_object();
    w.key("type").string("hello");
    w.key("plugin").string(kPluginName);
    w.key("version").string(kPluginVersion);
    w.key("game_version").integer(game_version_);
    w.key("run").string(run_id());
    w.key("config");
    write_config(w, cfg_);
    w.end_object();
    return w.str();
}

void Script::send_status(const std::string& error, const std::string& event) {
    JsonWriter w;
    w.begin_object();
    w.key("type").string("status");
    w.key("dropped").integer(static_cast<int64_t>(sink_.dropped() + invalid_));
    w.key("recording").boolean(recording_);
    if (!session_.empty()) w.key("session").string(session_);
    if (!event.empty()) w.key("event").string(event);
    if (event == "config_reloaded") {
        w.key("config");
        write_config(w, cfg_);
    }
    if (!error.empty()) w.key("error").string(error);
    w.end_object();
    sink_.offer(w.str(), true);
}

void Script::handle_control() {
    for (const std::string& text : sink_.take_control()) {
        JsonValue msg;
        try {
            msg = json_parse(text);
        } catch (const std::exception& e) {
            send_status(std::string("bad control message: ") + e.what());
            continue;
        }
        std::string type = msg.get_string("type");
        if (type == "start") {
            recording_ = true;
            session_ = msg.get_string("session");
            send_status();
        } else if (type == "stop") {
            recording_ = false;
            send_status();
        } else if (type == "mark") {
            handle_mark(msg);
        } else {
            send_status("unknown control message type \"" + type + "\"");
        }
    }
}

// {"type": "mark", "frames": N}: the marker shows on the N frames rendered after this tick and
// the N-1 ticks after it (whether recording or not), the i-th of them code 1 + i mod 14; a new
// mark replaces one still running and starts over at i = 0. Nothing is sent back unless N is
// refused.
void Script::handle_mark(const JsonValue& msg) {
    const JsonValue* f = msg.get("frames");
    double n = f && f->type == JsonValue::Type::Number ? f->num : 0;
    if (!(n >= 1 && n <= marker::kMaxFrames && n == std::floor(n))) {
        JsonWriter got;
        if (!f) got.string("nothing");
        else if (f->type == JsonValue::Type::Number) got.number(f->num);
        else if (f->type == JsonValue::Type::String) got.string(f->s);
        else got.string("a non-number");
        send_status("mark needs \"frames\", an integer in [1, " + std::to_string(marker::kMaxFrames) +
                    "], got " + got.str());
        return;
    }
    mark_left_ = static_cast<int>(n);
    mark_index_ = 0;
}

void Script::reload() {
    ConfigResult r = load_config_file(config_path_);
    if (!r.ok) {
        send_status("config reload failed, keeping the previous settings: " + r.error_text());
        return;
    }
    cfg_ = r.config;
    env_.invalidate();
    agent_.configure(cfg_, obs_.game_ms);
    sink_.set_endpoint(cfg_.host, cfg_.port);
    sink_.set_hello(hello_message());
    send_status("", "config_reloaded");
}

Observation Script::observe() {
    Observation o;
    o.frame = n_.frame_count();
    o.game_ms = n_.game_timer();
    o.cam_pos = n_.final_rendered_cam_coord();
    o.cam_rot = n_.final_rendered_cam_rot();
    o.fov = n_.final_rendered_cam_fov();
    o.ped = n_.player_ped_id();
    o.in_vehicle = n_.is_ped_in_any_vehicle(o.ped);
    o.ped_pos = n_.entity_coords(o.ped);
    o.ped_heading = n_.entity_heading(o.ped);
    Entity agent = o.ped;
    if (o.in_vehicle) {
        o.vehicle = n_.vehicle_ped_is_in(o.ped);
        o.vehicle_pos = n_.entity_coords(o.vehicle);
        o.vehicle_quat = n_.entity_quaternion(o.vehicle);
        agent = o.vehicle;
    }
    o.vel = n_.entity_velocity(agent);
    o.speed = n_.entity_speed(agent);
    return o;
}

KeyState Script::infer_keys(const Observation& o) {
    double dt = have_prev_ ? (o.game_ms - prev_game_ms_) / 1000.0 : 1.0 / 30.0;
    if (dt <= 0) dt = 1.0 / 30.0;
    if (o.in_vehicle != prev_in_vehicle_) keys_.reset();
    KeyState k;
    if (o.in_vehicle) {
        double heading = vehicle_heading(o.vehicle_quat);
        double yaw_rate = have_prev_ && prev_in_vehicle_ ? wrap180(heading - prev_heading_) / dt : 0.0;
        double v_fwd = dot(o.vel, rotate(o.vehicle_quat, {0, 1, 0}));
        k = keys_.drive(dt, v_fwd, yaw_rate);
        est_ = keys_.estimate();
        prev_heading_ = heading;
    } else {
        k = keys_.on_foot(dt, o.vel, o.cam_rot.z);
        est_ = {};
    }
    have_prev_ = true;
    prev_game_ms_ = o.game_ms;
    prev_in_vehicle_ = o.in_vehicle;
    return k;
}

void Script::emit_frame(const Observation& o, const KeyState& k, double wall_ms, int mark) {
    uint64_t seq = ++seq_;
    JsonWriter w;
    try {
        w.begin_object();
        w.key("type").string("frame");
        w.key("seq").integer(static_cast<int64_t>(seq));
        w.key("frame").integer(o.frame);
        w.key("game_ms").integer(o.game_ms);
        w.key("wall_ms").number(wall_ms);
        w.key("mode").string(mode_);
        w.key("cam").begin_object();
        w.key("pos").begin_array().number(o.cam_pos.x).number(o.cam_pos.y).number(o.cam_pos.z).end_array();
        w.key("rot").begin_array().number(o.cam_rot.x).number(o.cam_rot.y).number(o.cam_rot.z).end_array();
        w.key("fov").number(o.fov);
        w.end_object();
        w.key("vel").begin_array().number(o.vel.x).number(o.vel.y).number(o.vel.z).end_array();
        w.key("speed").number(o.speed);
        w.key("vehicle");
        if (o.in_vehicle) {
            w.begin_object();
            w.key("speed").number(o.speed);
            w.key("throttle").number(est_.throttle);
            w.key("brake").number(est_.brake);
            w.key("steering").number(est_.steering);
            w.end_object();
        } else {
            w.null();
        }
        w.key("keys").begin_object();
        w.key("w").integer(k.w).key("s").integer(k.s).key("a").integer(k.a).key("d").integer(k.d);
        w.key("space").integer(k.space).key("shift").integer(k.shift).key("ctrl").integer(k.ctrl);
        w.end_object();
        w.key("dropped").integer(static_cast<int64_t>(sink_.dropped() + invalid_));
        w.key("mark").integer(mark);
        w.end_object();
    } catch (const std::domain_error& e) {
        ++invalid_;
        send_status(std::string("frame ") + std::to_string(o.frame) + " not sent: " + e.what());
        return;
    }
    sink_.offer_frame(seq, w.str());
}

void Script::tick(double wall_ms) {
    if (reload_requested_.exchange(false) && !config_path_.empty()) reload();
    handle_control();

    obs_ = observe();
    KeyState k = infer_keys(obs_);
    // The frame presented before this tick shows what the previous tick drew.
    if (recording_) emit_frame(obs_, k, wall_ms, marker_drawn_);

    env_.apply(cfg_);
    agent_.tick(obs_.game_ms);
    CameraInput ci;
    ci.in_vehicle = obs_.in_vehicle;
    ci.vehicle_pos = obs_.vehicle_pos;
    ci.vehicle_quat = obs_.vehicle_quat;
    ci.ped_pos = obs_.ped_pos;
    ci.ped_heading = obs_.ped_heading;
    rig_.update(camera_pose(cfg_, ci));
    mode_ = agent_.mode_name();

    // DRAW_RECT lasts one frame: the marker is drawn again, with the next code, on every tick
    // it should show.
    marker_drawn_ = 0;
    if (mark_left_ > 0) {
        marker_drawn_ = marker::code_for(mark_index_++);
        marker::draw(n_, marker_drawn_);
        --mark_left_;
    }
}

void Script::run_forever(const std::function<void(int)>& wait, const std::atomic<bool>* stop) {
    while (!stop || !stop->load()) {
        tick(wall_clock_ms());
        wait(0);
    }
}

void Script::shutdown() { rig_.release(); }

}  // namespace wfgta
