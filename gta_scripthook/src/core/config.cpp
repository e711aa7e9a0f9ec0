// INI parsing and range validation of the plugin settings.
#include "config.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

namespace wfgta {

const std::vector<std::string>& weather_names() {
    static const std::vector<std::string> names = {
        "EXTRASUNNY", "CLEAR", "CLOUDS", "SMOG", "FOGGY", "OVERCAST", "RAIN", "THUNDER",
        "CLEARING", "NEUTRAL", "SNOW", "BLIZZARD", "SNOWLIGHT", "XMAS", "HALLOWEEN"};
    return names;
}

std::string ConfigResult::error_text() const {
    std::string s;
    for (const auto& e : errors) s += (s.empty() ? "" : "; ") + e;
    return s;
}

namespace {

std::string trim(const std::string& s) {
    size_t a = s.find_first_not_of(" \t\r\n"), b = s.find_last_not_of(" \t\r\n");
    return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}
std::string lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}
std::string upper(std::string s) {
    for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return s;
}
bool to_double(const std::string& v, double& out) {
    char* end = nullptr;
    out = std::strtod(v.c_str(), &end);
    return !v.empty() && end && *end == '\0' && std::isfinite(out);
}
bool to_long(const std::string& v, long& out) {
    char* end = nullptr;
    out = std::strtol(v.c_str(), &end, 0);
    return !v.empty() && end && *end == '\0';
}

// Virtual-key code of "F1".."F24", a single letter/digit, or a number (decimal or 0x..).
bool parse_vk(const std::string& v, int& vk) {
    std::string u = upper(v);
    if (u.size() >= 2 && u[0] == 'F' && std::isdigit(static_cast<unsigned char>(u[1]))) {
        int n = std::atoi(u.c_str() + 1);
        if (n >= 1 && n <= 24) { vk = 0x70 + n - 1; return true; }
        return false;
    }
    if (u.size() == 1 && std::isalnum(static_cast<unsigned char>(u[0]))) { vk = u[0]; return true; }
    long n;
    if (to_long(v, n) && n > 0 && n < 256) { vk = static_cast<int>(n); return true; }
    return false;
}

}  // namespace

ConfigResult parse_config_ini(const std::string& text, const std::string& origin) {
    ConfigResult r;
    Config& c = r.config;
    auto err = [&](const std::string& m) { r.errors.push_back(origin + ": " + m); };

    using Setter = std::function<void(const std::string& name, const std::string& value)>;
    auto real = [&](double& dst, double lo, double hi, bool hi_open, bool lo_open, const char* unit) {
        return Setter([&, lo, hi, hi_open, lo_open, unit](const std::string& name, const std::string& v) {
            double d;
            bool in = to_double(v, d) && (lo_open ? d > lo : d >= lo) && (hi_open ? d < hi : d <= hi);
            if (!in) {
                std::ostringstream m;
                m << name << " = " << v << " is outside " << (lo_open ? "(" : "[") << lo << ", " << hi
                  << (hi_open ? ")" : "]") << unit;
                err(m.str());
                return;
            }
            dst = d;
        });
    };
    auto choice = [&](std::string& dst, std::vector<std::string> allowed, bool upcase) {
        return Setter([&, allowed, upcase](const std::string& name, const std::string& v) {
            std::string x = upcase ? upper(v) : lower(v);
            if (std::find(allowed.begin(), allowed.end(), x) == allowed.end()) {
                std::string list;
                for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
                err(name + " = " + v + " is not one of " + list);
                return;
            }
            dst = x;
        });
    };
    auto boolean = [&](bool& dst) {
        return Setter([&](const std::string& name, const std::string& v) {
            std::string x = lower(v);
            if (x == "1" || x == "true" || x == "yes" || x == "on") dst = true;
            else if (x == "0" || x == "false" || x == "no" || x == "off") dst = false;
            else err(name + " = " + v + " is not a boolean (true/false)");
        });
    };

    std::map<std::string, Setter> keys = {
        {"collector.host", [&](const std::string& name, const std::string& v) {
             if (v.empty()) err(name + " is empty"); else c.host = v; }},
        {"collector.port", [&](const std::string& name, const std::string& v) {
             long p;
             if (!to_long(v, p) || p < 1 || p > 65535) err(name + " = " + v + " is outside [1, 65535]");
             else c.port = static_cast<int>(p); }},
        {"environment.vehicle_density", real(c.vehicle_density, 0.1, 2.0, false, false, "")},
        {"environment.npc_density", real(c.npc_density, 0.2, 1.5, false, false, "")},
        {"environment.weather", choice(c.weather, weather_names(), true)},
        {"environment.time_of_day", real(c.time_of_day, 0.0, 24.0, true, false, " hours")},
        {"environment.pause_clock", boolean(c.pause_clock)},
        {"agent.mode", choice(c.mode, {"drive", "walk", "npc", "mixed"}, false)},
        {"agent.drive_speed", real(c.drive_speed, 0.0, 60.0, false, true, " m/s")},
        {"agent.drive_style", [&](const std::string& name, const std::string& v) {
             long s;
             if (!to_long(v, s) || s < 0 || s > 0x7FFFFFFF) err(name + " = " + v + " is not a non-negative integer");
             else c.drive_style = static_cast<int>(s); }},
        {"agent.seed", [&](const std::string& name, const std::string& v) {
             long s;
             if (!to_long(v, s) || s < 0 || s > 0x7FFFFFFFL) err(name + " = " + v + " is outside [0, 2147483647]");
             else c.seed = static_cast<unsigned>(s); }},
        {"camera.camera", choice(c.camera, {"first", "third", "vehicle"}, false)},
        {"camera.offset_x", real(c.camera_offset.x, -50, 50, false, false, " m")},
        {"camera.offset_y", real(c.camera_offset.y, -50, 50, false, false, " m")},
        {"camera.offset_z", real(c.camera_offset.z, -50, 50, false, false, " m")},
        {"camera.pitch", real(c.pitch, -89, 89, false, false, " degrees")},
        {"camera.fov", real(c.fov, 10, 130, true, true, " degrees")},
        {"keys.reload_key", [&](const std::string& name, const std::string& v) {
             if (!parse_vk(v, c.reload_key)) err(name + " = " + v + " is not a key (F1..F24, a letter, or a code)"); }},
    };

    std::istringstream in(text);
    std::string line, section;
    int lineno = 0;
    while (std::getline(in, line)) {
        ++lineno;
        std::string t = trim(line);
        if (t.empty() || t[0] == ';' || t[0] == '#') continue;
        if (t[0] == '[') {
            size_t close = t.find(']');
            if (close == std::string::npos) { err("line " + std::to_string(lineno) + ": unclosed section"); continue; }
            section = lower(trim(t.substr(1, close - 1)));
            continue;
        }
        size_t eq = t.find('=');
        if (eq == std::string::npos) { err("line " + std::to_string(lineno) + ": expected key = value"); continue; }
        std::string key = lower(trim(t.substr(0, eq)));
        std::string value = trim(t.substr(eq + 1));
        size_t hash = value.find_first_of(";#");
        if (hash != std::string::npos) value = trim(value.substr(0, hash));
        std::string name = section + "." + key;
        auto it = keys.find(name);
        if (it == keys.end()) { err("unknown key [" + section + "] " + key); continue; }
        it->second("[" + section + "] " + key, value);
    }
    r.ok = r.errors.empty();
    if (!r.ok) r.config = Config{};
    return r;
}

ConfigResult load_config_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) {
        ConfigResult r;
        r.errors.push_back(path + ": cannot be read");
        return r;
    }
    std::ostringstream ss;
    ss << f.rdbuf();
    return parse_config_ini(ss.str(), path);
}

}  // namespace wfgta
