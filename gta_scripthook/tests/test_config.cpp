// Config: defaults, a full valid file, and every out-of-range value rejected by name.
#include "check.h"
#include "config.h"

using namespace wfgta;

static bool has_error(const ConfigResult& r, const std::string& a, const std::string& b = "") {
    for (const auto& e : r.errors)
        if (e.find(a) != std::string::npos && e.find(b) != std::string::npos) return true;
    return false;
}

TEST(config, defaults_for_everything) {
    ConfigResult r = parse_config_ini("");
    CHECK(r.ok);
    CHECK(r.config.host == "127.0.0.1");
    CHECK(r.config.port == 52420);
    CHECK(r.config.vehicle_density == 1.0);
    CHECK(r.config.npc_density == 1.0);
    CHECK(r.config.weather == "EXTRASUNNY");
    CHECK(r.config.mode == "drive");
    CHECK(r.config.camera == "vehicle");
    CHECK(r.config.fov == 60.0);
    CHECK(r.config.reload_key == 0x79);
}

TEST(config, parses_every_section) {
    ConfigResult r = parse_config_ini(
        "; comment\n[collector]\nhost = 10.0.0.2\nport = 6000\n"
        "[environment]\nvehicle_density = 0.1\nnpc_density = 1.5\nweather = rain\ntime_of_day = 23.5 ; late\n"
        "pause_clock = false\n"
        "[agent]\nmode = MIXED\ndrive_speed = 20\ndrive_style = 447\nseed = 7\n"
        "[camera]\ncamera = first\noffset_x = 0.5\noffset_y = 1\noffset_z = 1.2\npitch = -5\nfov = 90\n"
        "[keys]\nreload_key = F5\n");
    CHECK_MSG(r.ok, r.error_text());
    const Config& c = r.config;
    CHECK(c.host == "10.0.0.2" && c.port == 6000);
    CHECK(c.vehicle_density == 0.1 && c.npc_density == 1.5);
    CHECK(c.weather == "RAIN" && c.time_of_day == 23.5 && !c.pause_clock);
    CHECK(c.mode == "mixed" && c.drive_speed == 20 && c.drive_style == 447 && c.seed == 7);
    CHECK(c.camera == "first" && c.camera_offset.x == 0.5 && c.camera_offset.y == 1 && c.camera_offset.z == 1.2);
    CHECK(c.pitch == -5 && c.fov == 90);
    CHECK(c.reload_key == 0x74);
}

TEST(config, rejects_out_of_range_naming_key_and_range) {
    struct Case { const char* text; const char* key; const char* range; };
    const Case cases[] = {
        {"[environment]\nvehicle_density = 0.05\n", "vehicle_density", "[0.1, 2]"},
        {"[environment]\nvehicle_density = 2.5\n", "vehicle_density", "[0.1, 2]"},
        {"[environment]\nnpc_density = 0.1\n", "npc_density", "[0.2, 1.5]"},
        {"[environment]\nnpc_density = 1.6\n", "npc_density", "[0.2, 1.5]"},
        {"[environment]\ntime_of_day = 24\n", "time_of_day", "[0, 24)"},
        {"[environment]\ntime_of_day = -1\n", "time_of_day", "[0, 24)"},
        {"[environment]\nweather = SUNNY\n", "weather", "EXTRASUNNY"},
        {"[camera]\nfov = 10\n", "fov", "(10, 130)"},
        {"[camera]\nfov = 130\n", "fov", "(10, 130)"},
        {"[camera]\ncamera = drone\n", "camera", "first"},
        {"[agent]\nmode = fly\n", "mode", "drive"},
        {"[collector]\nport = 70000\n", "port", "[1, 65535]"},
        {"[environment]\nvehicle_density = lots\n", "vehicle_density", "[0.1, 2]"},
    };
    for (const Case& c : cases) {
        ConfigResult r = parse_config_ini(c.text);
        CHECK_MSG(!r.ok, c.text);
        CHECK_MSG(has_error(r, c.key, c.range), c.text + std::string(" -> ") + r.error_text());
    }
}

TEST(config, reports_every_problem_at_once) {
    ConfigResult r = parse_config_ini("[environment]\nvehicle_density = 9\nnpc_density = 0\n[camera]\nfov = 500\nzoom = 2\n");
    CHECK(!r.ok);
    CHECK(r.errors.size() == 4);
    CHECK(has_error(r, "unknown key", "zoom"));
    CHECK(r.config.vehicle_density == 1.0);  // a rejected file yields defaults, never half a config
}

TEST(config, missing_file_is_an_error) {
    ConfigResult r = load_config_file("/nonexistent/worldforge_gta.ini");
    CHECK(!r.ok);
    CHECK(has_error(r, "cannot be read"));
}
