// The real script over the simulator: environment natives every tick, one frame message per
// presented frame with increasing seq/frame and the rendered camera of that frame, start/stop
// answered with status, config reload (a bad file keeps the old config), the agent modes, and
// the synchronisation marker (`mark`).
#include <cmath>
#include <cstdio>
#include <unistd.h>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "check.h"
#include "json.h"
#include "marker.h"
#include "native_hashes.h"
#include "script.h"
#include "sim.h"

using namespace wfgta;
using namespace wfgta::sim;

namespace {

struct FakeSink : MessageSink {
    std::vector<std::string> sent, control;
    std::string hello;
    size_t capacity = 1000000;
    uint64_t drops = 0;
    bool offer(std::string j, bool control) override {
        if (sent.size() >= capacity + (control ? 64 : 0)) { ++drops; return false; }
        sent.push_back(std::move(j));
        return true;
    }
    uint64_t dropped() const override { return drops; }
    std::vector<std::string> take_control() override {
        std::vector<std::string> c;
        c.swap(control);
        return c;
    }
    void set_hello(std::string j) override { hello = std::move(j); }
    std::vector<JsonValue> of_type(const std::string& t) const {
        std::vector<JsonValue> out;
        for (const auto& s : sent) {
            JsonValue v = json_parse(s);
            if (v.get_string("type") == t) out.push_back(v);
        }
        return out;
    }
};

struct Rig {
    Sim sim;
    Natives natives;
    FakeSink sink;
    Script script;
    std::map<int, RenderedCam> presented;  // frame -> camera
    std::map<int, std::string> modes;      // frame -> agent mode of the tick that led to it
    std::map<int, std::vector<ScreenRect>> rects;  // frame -> the rectangles drawn on it
    explicit Rig(const Config& cfg, World w = load_world(WFGTA_TEST_DATA "/city.json"), std::string path = "")
        : sim(std::move(w)), natives(sim), script(natives, sink, cfg, -1, std::move(path)) {}
    void frames(int n) {
        for (int i = 0; i < n; ++i) {
            script.tick(1.7e12 + sim.game_ms());
            sim.step(1.0 / 30.0);
            sim.present();
            presented[sim.frame_count()] = sim.rendered();
            modes[sim.frame_count()] = script.mode();
            rects[sim.frame_count()] = sim.rects();
        }
    }
};

std::string write_temp(const std::string& name, const std::string& text) {
    std::string path = "/tmp/wfgta_test_" + std::to_string(::getpid()) + "_" + name;
    std::ofstream(path) << text;
    return path;
}

}  // namespace

TEST(script, environment_applied_every_tick) {
    Config cfg;
    cfg.vehicle_density = 0.3;
    cfg.npc_density = 1.25;
    cfg.weather = "THUNDER";
    cfg.time_of_day = 21.75;
    Rig r(cfg);
    for (int i = 1; i <= 40; ++i) {
        r.frames(1);
        CHECK(r.sim.calls(hash::SET_VEHICLE_DENSITY_MULTIPLIER_THIS_FRAME) == static_cast<uint64_t>(i));
        CHECK(r.sim.calls(hash::SET_PED_DENSITY_MULTIPLIER_THIS_FRAME) == static_cast<uint64_t>(i));
        CHECK(r.sim.calls(hash::SET_SCENARIO_PED_DENSITY_MULTIPLIER_THIS_FRAME) == static_cast<uint64_t>(i));
        CHECK(r.sim.density_frame == i - 1);  // set during the tick before frame i was presented
    }
    CHECK(r.sim.vehicle_density == static_cast<float>(0.3));
    CHECK(r.sim.random_vehicle_density == static_cast<float>(0.3));
    CHECK(r.sim.parked_vehicle_density == static_cast<float>(0.3));
    CHECK(r.sim.ped_density == static_cast<float>(1.25));
    CHECK(r.sim.scenario_ped_density == static_cast<float>(1.25));
    CHECK(r.sim.weather == "THUNDER");
    CHECK(r.sim.clock_h == 21 && r.sim.clock_m == 45 && r.sim.clock_s == 0 && r.sim.clock_paused);
    CHECK(r.sim.script_cams_rendering());
}

TEST(script, hello_and_frame_messages) {
    Config cfg;
    cfg.mode = "drive";
    World w = load_world(WFGTA_TEST_DATA "/city.json");
    w.player_in_vehicle = true;
    Rig r(cfg, w);
    JsonValue hello = json_parse(r.sink.hello);
    CHECK(hello.get_string("type") == "hello" && hello.get_string("plugin") == "worldforge-gta" &&
          hello.get_string("version") == "0.1.0" && hello.get_number("game_version") == -1);
    const JsonValue* c = hello.get("config");
    CHECK(c && c->get_string("weather") == "EXTRASUNNY" && c->get_string("camera") == "vehicle" &&
          c->get("camera_offset")->arr.size() == 3 && c->get_string("mode") == "drive" && c->get_number("fov") == 60 &&
          c->get_number("drive_speed") == 15 && c->get_number("vehicle_density") == 1 &&
          c->get_number("npc_density") == 1 && c->get_number("time_of_day") == 12);

    r.frames(10);
    CHECK(r.sink.of_type("frame").empty());  // not recording yet
    r.sink.control.push_back("{\"type\":\"start\",\"session\":\"t1\"}");
    r.frames(300);
    auto status = r.sink.of_type("status");
    CHECK(status.size() == 1 && status[0].get("recording")->b && status[0].get_string("session") == "t1");
    auto frames = r.sink.of_type("frame");
    CHECK(frames.size() == 300);
    int keys_w = 0;
    for (size_t k = 0; k < frames.size(); ++k) {
        const JsonValue& f = frames[k];
        CHECK(f.get_number("seq") == static_cast<double>(k + 1));
        int frame = static_cast<int>(f.get_number("frame"));
        CHECK(frame == 10 + static_cast<int>(k));  // the frame presented before the tick
        CHECK(f.get_number("game_ms") == static_cast<int>((frame * 1000.0) / 30.0 + 1e-6));
        const JsonValue* cam = f.get("cam");
        const RenderedCam& rc = r.presented[frame];
        CHECK(cam->get("pos")->arr[0].num == rc.pos.x && cam->get("pos")->arr[1].num == rc.pos.y &&
              cam->get("pos")->arr[2].num == rc.pos.z);
        CHECK(cam->get("rot")->arr[0].num == rc.rot.x && cam->get("rot")->arr[2].num == rc.rot.z);
        CHECK(cam->get_number("fov") == rc.fov);
        CHECK(f.get_string("mode") == r.modes[frame]);
        CHECK(f.get("vel")->arr.size() == 3 && f.get_number("dropped") == 0);
        CHECK(f.get("vehicle")->is_object());  // the player starts in a vehicle
        keys_w += f.get("keys")->get_number("w") == 1;
        CHECK(f.get_number("wall_ms") > 1.7e12);
    }
    CHECK(keys_w > 10);  // pulling away from the kerb holds W
    CHECK(r.sim.player_in_vehicle() && std::fabs(r.sim.vehicle(r.sim.player().vehicle)->speed()) > 3);

    r.sink.control.push_back("{\"type\":\"stop\"}");
    r.frames(20);
    CHECK(r.sink.of_type("frame").size() == 300);
    status = r.sink.of_type("status");
    CHECK(status.size() == 2 && !status[1].get("recording")->b);
    // After stop nothing but the status follows.
    CHECK(json_parse(r.sink.sent.back()).get_string("type") == "status");
}

TEST(script, dropped_frames_keep_seq) {
    Config cfg;
    Rig r(cfg);
    r.sink.capacity = 5;
    r.sink.control.push_back("{\"type\":\"start\",\"session\":\"d\"}");
    r.frames(20);
    CHECK(r.script.seq() == 20);
    CHECK(r.sink.dropped() == 16);  // the start's status reply + 4 frames fit
    r.sink.control.push_back("{\"type\":\"stop\"}");
    r.frames(1);
    CHECK(json_parse(r.sink.sent.back()).get_string("type") == "status");  // the reply still goes out
}

TEST(script, reload_keeps_old_config_on_error) {
    std::string path = write_temp("reload.ini", "[environment]\nweather = RAIN\n");
    Config cfg = load_config_file(path).config;
    Rig r(cfg, load_world(WFGTA_TEST_DATA "/city.json"), path);
    r.frames(2);
    CHECK(r.sim.weather == "RAIN");
    write_temp("reload.ini", "[environment]\nweather = SNOW\nvehicle_density = 7\n");
    r.script.request_reload();
    r.frames(1);
    auto st = r.sink.of_type("status");
    CHECK(st.size() == 1 && st[0].get_string("error").find("vehicle_density") != std::string::npos);
    CHECK(r.script.config().weather == "RAIN");
    write_temp("reload.ini", "[environment]\nweather = SNOW\n[camera]\nfov = 75\n");
    r.script.request_reload();
    r.frames(2);
    st = r.sink.of_type("status");
    CHECK(st.size() == 2 && st[1].get_string("event") == "config_reloaded" && !st[1].get("error"));
    CHECK(r.sim.weather == "SNOW" && r.script.config().fov == 75);
    CHECK(json_parse(r.sink.hello).get("config")->get_string("weather") == "SNOW");
    CHECK(r.sim.rendered().fov == 75);
    std::remove(path.c_str());
}

TEST(script, drive_mode_enters_a_vehicle_and_drives) {
    Config cfg;
    cfg.mode = "drive";
    Rig r(cfg);
    CHECK(!r.sim.player_in_vehicle());
    bool saw_vehicle_mode = false;
    for (int i = 0; i < 30 * 40 && !(r.sim.player_in_vehicle() && r.script.mode() == std::string("drive")); ++i) {
        r.frames(1);
        saw_vehicle_mode |= r.script.mode() == std::string("enter");
    }
    CHECK(saw_vehicle_mode);
    CHECK(r.sim.player_in_vehicle());
    r.frames(30 * 10);
    CHECK(std::fabs(r.sim.vehicle(r.sim.player().vehicle)->speed()) > 3);
}

TEST(script, npc_mode_chats) {
    Config cfg;
    cfg.mode = "npc";
    cfg.camera = "third";
    Rig r(cfg);
    bool chatted = false;
    Entity me = r.natives.player_ped_id();
    for (int i = 0; i < 30 * 60 && !chatted; ++i) {
        r.frames(1);
        chatted = r.sim.ped(me)->task == Ped::Task::Chat;
    }
    CHECK(chatted);
    CHECK(r.sim.calls(hash::TASK_CHAT_TO_PED) >= 1 && r.sim.calls(hash::TASK_TURN_PED_TO_FACE_ENTITY) >= 1 &&
          r.sim.calls(hash::TASK_LOOK_AT_ENTITY) >= 1);
}

TEST(script, walk_and_mixed_modes_move) {
    for (const char* mode : {"walk", "mixed"}) {
        Config cfg;
        cfg.mode = mode;
        cfg.seed = 5;
        cfg.camera = "first";
        Rig r(cfg);
        Vec3 start = r.sim.player().pos;
        std::map<std::string, int> seen;
        for (int i = 0; i < 30 * 120; ++i) {
            r.frames(1);
            ++seen[r.script.mode()];
        }
        Vec3 end = r.sim.player_in_vehicle() ? r.sim.vehicle(r.sim.player().vehicle)->pos() : r.sim.player().pos;
        CHECK_MSG(norm(end - start) > 5, mode);
        if (std::string(mode) == "mixed") CHECK_MSG(seen.size() >= 3, std::to_string(seen.size()));
    }
}

// The four DRAW_RECTs showing `code`, spelled out from the protocol (not from marker.cpp): cells
// 0.125 x 0.125 centred at (0.0625, 0.0625) bit 0, (0.1875, 0.0625) bit 1, (0.0625, 0.1875) bit 2,
// (0.1875, 0.1875) bit 3, magenta for a 1 bit and green for a 0 bit, in bit order.
static std::vector<ScreenRect> marker_rects(int code) {
    const double cx[4] = {0.0625, 0.1875, 0.0625, 0.1875}, cy[4] = {0.0625, 0.0625, 0.1875, 0.1875};
    std::vector<ScreenRect> out;
    for (int bit = 0; bit < 4; ++bit) {
        bool one = (code >> bit) & 1;
        out.push_back({cx[bit], cy[bit], 0.125, 0.125, one ? 255 : 0, one ? 0 : 255, one ? 255 : 0, 255});
    }
    return out;
}

TEST(script, mark_draws_a_cycling_code_on_exactly_n_frames) {
    Config cfg;
    Rig r(cfg);
    r.sink.control.push_back("{\"type\":\"start\",\"session\":\"m\"}");
    r.frames(5);
    const int before = r.sim.frame_count();  // frames presented before the tick that reads the mark
    r.sink.control.push_back("{\"type\":\"mark\",\"frames\":30}");
    r.frames(40);
    CHECK(r.sink.of_type("status").size() == 1);  // a good mark is not answered
    CHECK(r.sim.calls(hash::DRAW_RECT) == 4u * 30u);
    // The tick that reads the mark draws first: frames before+1 .. before+30 show codes
    // 1, 2, ..., 14, 1, ..., 14, 1, 2 (the i-th marked frame 1 + i mod 14), the others nothing.
    std::map<int, int> code;  // frame -> the code it showed
    for (const auto& [frame, rects] : r.rects) {
        int i = frame - before - 1;
        code[frame] = i >= 0 && i < 30 ? 1 + i % 14 : 0;
        CHECK_MSG(rects == (code[frame] ? marker_rects(code[frame]) : std::vector<ScreenRect>{}),
                  std::to_string(frame));
        CHECK_MSG(marker::shown(rects) == code[frame], std::to_string(frame));
    }
    CHECK(code[before + 1] == 1 && code[before + 14] == 14 && code[before + 15] == 1 && code[before + 30] == 2);
    // The message of tick k names the frame presented before it, which shows tick k-1's code.
    auto frames = r.sink.of_type("frame");
    CHECK(frames.size() == 45);
    std::vector<int> marked;
    for (size_t j = 0; j < frames.size(); ++j) {
        const JsonValue& f = frames[j];
        int frame = static_cast<int>(f.get_number("frame"));
        const JsonValue* m = f.get("mark");
        CHECK(m && m->type == JsonValue::Type::Number && m->num == std::floor(m->num) && m->num >= 0 &&
              m->num <= 14);
        CHECK_MSG(code.count(frame) || frame == 0, std::to_string(frame));  // frame 0: before any present
        CHECK_MSG(m->num == (code.count(frame) ? code[frame] : 0), std::to_string(frame));
        if (m->num != 0) {
            CHECK_MSG(m->num == 1 + static_cast<int>(marked.size()) % 14, std::to_string(frame));
            marked.push_back(frame);
        }
    }
    CHECK(marked.size() == 30 && marked.front() == before + 1 && marked.back() == before + 30);
    CHECK(r.script.mark_left() == 0);
    // The message sent in the tick that read the mark names an unmarked frame; the one after
    // the last drawing tick carries the last code.
    CHECK(frames[5].get_number("frame") == before && frames[5].get_number("mark") == 0);
    CHECK(frames[6].get_number("frame") == before + 1 && frames[6].get_number("mark") == 1);
    CHECK(frames[35].get_number("frame") == before + 30 && frames[35].get_number("mark") == 2);
    CHECK(frames[36].get_number("mark") == 0);
}

TEST(script, mark_limits_restart_and_not_recording) {
    Config cfg;
    Rig r(cfg);
    // Not recording: drawn all the same, no frame messages.
    r.sink.control.push_back("{\"type\":\"mark\",\"frames\":1}");
    r.frames(3);
    CHECK(r.sink.sent.empty());
    CHECK(r.rects[1] == marker_rects(1) && r.rects[2].empty() && r.rects[3].empty());
    // 120 is the most; a mark while one runs starts over with its own count, from code 1.
    r.sink.control.push_back("{\"type\":\"mark\",\"frames\":120}");
    r.frames(10);
    r.sink.control.push_back("{\"type\":\"mark\",\"frames\":3.0}");
    r.frames(10);
    std::vector<int> codes;
    for (const auto& [frame, rects] : r.rects) codes.push_back(marker::shown(rects));
    CHECK(codes == std::vector<int>({1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0}));
    CHECK(r.rects[14] == marker_rects(1) && r.rects[16] == marker_rects(3));
    CHECK(r.sim.calls(hash::DRAW_RECT) == 4u * 14u);
    CHECK(r.sink.sent.empty());

    // Refused: out of range, fractional, not a number, missing. Each answered by one error.
    const char* bad[] = {"0", "121", "-1", "2.5", "\"3\"", "true", "null", "[3]", nullptr};
    for (const char* b : bad) {
        std::string msg = b ? std::string("{\"type\":\"mark\",\"frames\":") + b + "}" : "{\"type\":\"mark\"}";
        r.sink.control.push_back(msg);
        r.frames(2);
        auto st = r.sink.of_type("status");
        CHECK_MSG(!st.empty() && st.back().get_string("error").find("mark needs \"frames\", an integer in [1, 120]") == 0,
                  msg);
    }
    CHECK(r.sink.of_type("status").size() == 9);
    CHECK(r.sim.calls(hash::DRAW_RECT) == 4u * 14u);
}
