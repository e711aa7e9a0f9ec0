// wfgta_sim_host: runs the real plugin script against the simulator, frame after frame.
//
//   wfgta_sim_host --world WORLD.json --config PLUGIN.ini [--collector HOST:PORT] --fps 30
//                  --truth TRUTH.csv [--frames N] [--lockstep | --realtime]
//
// Per frame: script tick, the simulator advances 1/fps of game time, the frame is presented.
// --lockstep prints "F <frame> <game_ms> <x> <y> <z> <rx> <ry> <rz> <fov>" (the camera this
// frame renders with), preceded by one "R <x> <y> <w> <h> <r> <g> <b> <a>" per DRAW_RECT drawn
// on this frame (the synchronisation marker), and waits for one line on stdin before the next
// tick (EOF ends the run);
// --realtime paces at fps with the wall clock; neither runs as fast as possible.
// TRUTH.csv gets one row per presented frame (columns in kTruthHeader). SIGTERM/SIGINT stop
// cleanly: truth flushed, sender thread stopped after flushing its queue for up to a second.
#include <atomic>
#include <chrono>
#include <csignal>
#include <signal.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>

#include "config.h"
#include "marker.h"
#include "natives.h"
#include "script.h"
#include "sender.h"
#include "sim.h"

using namespace wfgta;

namespace {

constexpr const char* kTruthHeader =
    "frame,game_ms,mode,cam_x,cam_y,cam_z,cam_rx,cam_ry,cam_rz,fov,vel_x,vel_y,vel_z,"
    "throttle,brake,steering,in_vehicle,mark";

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop = true; }

struct Args {
    std::string world, config, collector, truth;
    double fps = 30;
    long frames = -1;
    bool lockstep = false, realtime = false;
};

[[noreturn]] void usage(const std::string& why) {
    std::fprintf(stderr,
                 "wfgta_sim_host: %s\nusage: wfgta_sim_host --world WORLD.json --config PLUGIN.ini "
                 "[--collector HOST:PORT] --fps 30 --truth TRUTH.csv [--frames N] [--lockstep | --realtime]\n",
                 why.c_str());
    std::exit(2);
}

Args parse_args(int argc, char** argv) {
    Args a;
    for (int i = 1; i < argc; ++i) {
        std::string k = argv[i];
        auto val = [&]() -> std::string {
            if (i + 1 >= argc) usage(k + " needs a value");
            return argv[++i];
        };
        if (k == "--world") a.world = val();
        else if (k == "--config") a.config = val();
        else if (k == "--collector") a.collector = val();
        else if (k == "--truth") a.truth = val();
        else if (k == "--fps") a.fps = std::atof(val().c_str());
        else if (k == "--frames") a.frames = std::atol(val().c_str());
        else if (k == "--lockstep") a.lockstep = true;
        else if (k == "--realtime") a.realtime = true;
        else usage("unknown argument " + k);
    }
    if (a.world.empty() || a.config.empty() || a.truth.empty()) usage("--world, --config and --truth are required");
    if (!(a.fps > 0 && a.fps <= 1000)) usage("--fps must be in (0, 1000]");
    if (a.lockstep && a.realtime) usage("--lockstep and --realtime exclude each other");
    return a;
}

void print_row(std::FILE* f, const sim::Sim& s, const char* mode) {
    const sim::RenderedCam& c = s.rendered();
    Vec3 v = s.player_velocity();
    sim::Controls u = s.player_controls();
    // Velocity and camera pass through float exactly as the natives return them.
    std::fprintf(f, "%d,%d,%s,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%d,%d\n",
                 s.frame_count(), s.game_ms(), mode, c.pos.x, c.pos.y, c.pos.z, c.rot.x, c.rot.y, c.rot.z, c.fov,
                 static_cast<double>(static_cast<float>(v.x)), static_cast<double>(static_cast<float>(v.y)),
                 static_cast<double>(static_cast<float>(v.z)), u.throttle, u.brake, u.steering,
                 s.player_in_vehicle() ? 1 : 0, marker::shown(s.rects()));
}

}  // namespace

int main(int argc, char** argv) {
    Args args = parse_args(argc, argv);

    ConfigResult cr = load_config_file(args.config);
    if (!cr.ok) {
        std::fprintf(stderr, "wfgta_sim_host: %s\n", cr.error_text().c_str());
        return 2;
    }
    Config cfg = cr.config;
    if (!args.collector.empty()) {
        size_t colon = args.collector.rfind(':');
        int port = colon == std::string::npos ? 0 : std::atoi(args.collector.c_str() + colon + 1);
        if (colon == std::string::npos || port < 1 || port > 65535) usage("--collector must be HOST:PORT");
        cfg.host = args.collector.substr(0, colon);
        cfg.port = port;
    }

    sim::World world;
    try {
        world = sim::load_world(args.world);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "wfgta_sim_host: %s\n", e.what());
        return 2;
    }
    std::FILE* truth = std::fopen(args.truth.c_str(), "w");
    if (!truth) {
        std::fprintf(stderr, "wfgta_sim_host: cannot write %s\n", args.truth.c_str());
        return 2;
    }
    std::fprintf(truth, "%s\n", kTruthHeader);

    // No SA_RESTART: a signal interrupts the blocking stdin read of --lockstep.
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
    std::signal(SIGPIPE, SIG_IGN);

    sim::Sim sim(world);
    Natives natives(sim);
    Sender sender(cfg.host, cfg.port);
    constexpr int kSimGameVersion = -1;  // no game: the hello says so
    Script script(natives, sender, cfg, kSimGameVersion, args.config);
    sender.start();

    const double dt = 1.0 / args.fps;
    auto next = std::chrono::steady_clock::now();
    std::string line;
    for (long n = 0; (args.frames < 0 || n < args.frames) && !g_stop; ++n) {
        script.tick(Script::wall_clock_ms());
        sim.step(dt);
        sim.present();
        print_row(truth, sim, script.mode());
        if (args.lockstep) {
            for (const ScreenRect& r : sim.rects()) {
                std::printf("R %.17g %.17g %.17g %.17g %d %d %d %d\n", r.x, r.y, r.w, r.h, r.r, r.g, r.b, r.a);
            }
            const sim::RenderedCam& c = sim.rendered();
            std::printf("F %d %d %.17g %.17g %.17g %.17g %.17g %.17g %.17g\n", sim.frame_count(), sim.game_ms(),
                        c.pos.x, c.pos.y, c.pos.z, c.rot.x, c.rot.y, c.rot.z, c.fov);
            std::fflush(stdout);
            std::fflush(truth);
            if (!std::getline(std::cin, line)) break;
        } else if (args.realtime) {
            next += std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(dt));
            std::this_thread::sleep_until(next);
        }
    }
    script.shutdown();
    std::fclose(truth);
    sender.stop(1000);
    return 0;
}
