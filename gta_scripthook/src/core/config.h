// The plugin's settings (worldforge_gta.ini): defaults for everything, every out-of-range value
// rejected at load with the key and its range named, all problems reported at once.
#pragma once
#include <string>
#include <vector>

#include "math3d.h"

namespace wfgta {

struct Config {
    // [collector]
    std::string host = "127.0.0.1";
    int port = 52420;
    // [environment]
    double vehicle_density = 1.0;  // [0.1, 2.0]
    double npc_density = 1.0;      // [0.2, 1.5]
    std::string weather = "EXTRASUNNY";
    double time_of_day = 12.0;     // hours, [0, 24)
    bool pause_clock = true;
    // [agent]
    std::string mode = "drive";    // drive | walk | npc | mixed
    double drive_speed = 15.0;     // m/s, (0, 60]
    int drive_style = 786603;      // TASK_VEHICLE_DRIVE_WANDER driving-style flags ("normal")
    unsigned seed = 0;
    // [camera]
    std::string camera = "vehicle";           // first | third | vehicle
    Vec3 camera_offset{0.0, -6.0, 2.2};       // metres in the vehicle's frame (x right, y forward, z up)
    double pitch = -10.0;                     // degrees, [-89, 89]
    double fov = 60.0;                        // degrees, (10, 130)
    // [keys]
    int reload_key = 0x79;                    // virtual-key code (F10)
};

struct ConfigResult {
    bool ok = false;
    Config config;
    std::vector<std::string> errors;  // one line per problem, naming the key
    std::string error_text() const;   // errors joined with "; "
};

// Parses INI text (sections, key = value, ';' or '#' comments); unknown keys are errors.
ConfigResult parse_config_ini(const std::string& text, const std::string& origin = "worldforge_gta.ini");
// Reads and parses a file; a missing file is an error.
ConfigResult load_config_file(const std::string& path);

const std::vector<std::string>& weather_names();

}  // namespace wfgta
