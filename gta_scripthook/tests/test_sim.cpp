// Simulator: vehicles stay on the roads for thousands of steps, frame counter and game timer
// advance, nearby lookups, the enter/leave transitions, DRAW_RECT shown on the next frame only,
// the marker's cells encoding its code, and unknown natives abort.
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "check.h"
#include "marker.h"
#include "native_hashes.h"
#include "natives.h"
#include "sim.h"

using namespace wfgta;
using namespace wfgta::sim;

static World city() { return load_world(WFGTA_TEST_DATA "/city.json"); }

TEST(sim, world_file_checked) {
    World w = city();
    CHECK(w.nx() == 3 && w.ny() == 3 && w.half == 60 && w.vehicles == 8);
    bool threw = false;
    try {
        parse_world("{\"half\": 50, \"roads_x\": [0], \"roads_y\": [0, 20]}");
    } catch (const std::invalid_argument& e) {
        threw = std::string(e.what()).find("two roads") != std::string::npos;
    }
    CHECK(threw);
    CHECK(w.on_road(0, 55) && w.on_road(-36, 10) && !w.on_road(18, 18) && !w.on_road(0, 61));
}

// The street grid the end-to-end test derives from the built-in city (a 2 x 2 grid).
static World small_city() {
    return parse_world("{\"half\": 50.0, \"roads_x\": [-16.826699119217082, 19.482731588919005], "
                       "\"roads_y\": [-16.94131436861629, 14.73723934875438], \"road_width\": 8.0, \"seed\": 3}");
}

TEST(sim, vehicles_stay_on_roads) {
  for (const World& world : {city(), small_city()}) {
    Sim s(world);
    const World& w = s.world();
    std::vector<Vec3> start;
    for (auto& v : s.vehicles()) start.push_back(v->pos());
    std::vector<double> travelled(s.vehicles().size(), 0.0);
    std::vector<double> turned(s.vehicles().size(), 0.0);
    for (int step = 0; step < 9000; ++step) {  // 5 minutes at 30 fps
        std::vector<Vec3> before;
        std::vector<double> hb;
        for (auto& v : s.vehicles()) { before.push_back(v->pos()); hb.push_back(v->heading()); }
        s.step(1.0 / 30.0);
        for (size_t k = 0; k < s.vehicles().size(); ++k) {
            const Vehicle& v = *s.vehicles()[k];
            Vec3 p = v.pos();
            travelled[k] += norm(p - before[k]);
            turned[k] += std::fabs(wrap180(v.heading() - hb[k]));
            if (!w.on_road(p.x, p.y)) {
                CHECK_MSG(false, "vehicle " + std::to_string(v.handle()) + " left the road at step " +
                                     std::to_string(step) + " (" + std::to_string(p.x) + ", " + std::to_string(p.y) + ")");
                return;
            }
            CHECK(std::fabs(p.x) < w.half - 4.5 && std::fabs(p.y) < w.half - 4.5);  // dead ends never taken
        }
    }
    for (size_t k = 0; k < travelled.size(); ++k) {
        CHECK_MSG(travelled[k] > 1500, std::to_string(travelled[k]));  // ~ 5+ m/s average
        CHECK_MSG(turned[k] > 360, std::to_string(turned[k]));        // it took turns
    }
  }
}

TEST(sim, frame_counter_and_timer_advance) {
    Sim s(city());
    Natives n(s);
    CHECK(n.frame_count() == 0 && n.game_timer() == 0);
    for (int i = 0; i < 90; ++i) { s.step(1.0 / 30.0); s.present(); }
    CHECK(n.frame_count() == 90);
    CHECK(n.game_timer() == 3000);
    s.step(1.0 / 30.0);
    CHECK(n.game_timer() == 3033);
    CHECK(n.frame_count() == 90);  // stepping is not presenting
}

TEST(sim, natives_through_the_wrappers) {
    Sim s(city());
    Natives n(s);
    Entity me = n.player_ped_id();
    CHECK(me == kPlayerHandle && n.does_entity_exist(me) && !n.is_ped_in_any_vehicle(me));
    auto peds = n.nearby_peds(me, 5);
    CHECK(peds.size() == 5);
    double last = 0;
    for (Entity p : peds) {
        double d = norm(n.entity_coords(p) - n.entity_coords(me));
        CHECK(d >= last - 1e-4);
        last = d;
    }
    auto vehs = n.nearby_vehicles(me, 32);
    CHECK(!vehs.empty() && vehs.size() <= 8);
    Quat q = n.entity_quaternion(vehs[0]);
    CHECK_NEAR(wrap180(heading_of(rotate(q, {0, 1, 0})) - n.entity_heading(vehs[0])), 0, 1e-3);
    n.set_weather_type_now_persist("FOGGY");
    CHECK(s.weather == "FOGGY");
    n.set_clock_time(7, 30, 15);
    n.pause_clock(true);
    CHECK(s.clock_h == 7 && s.clock_m == 30 && s.clock_s == 15 && s.clock_paused);

    // Enter the nearest vehicle, then leave it (timed transitions).
    n.task_enter_vehicle(me, vehs[0], 20000);
    int t = 0;
    for (; t < 30 * 60 && !n.is_ped_in_any_vehicle(me); ++t) s.step(1.0 / 30.0);
    CHECK(n.is_ped_in_any_vehicle(me) && n.vehicle_ped_is_in(me) == vehs[0]);
    n.task_vehicle_drive_wander(me, vehs[0], 12, 786603);
    for (int i = 0; i < 300; ++i) s.step(1.0 / 30.0);
    CHECK(n.entity_speed(vehs[0]) > 5);
    Controls u = s.player_controls();
    CHECK(u.throttle >= -1 && u.throttle <= 1 && u.brake >= 0 && u.brake <= 1 && std::fabs(u.steering) <= 1);
    n.task_leave_vehicle(me, vehs[0]);
    for (int i = 0; i < 30 * 15 && n.is_ped_in_any_vehicle(me); ++i) s.step(1.0 / 30.0);
    CHECK(!n.is_ped_in_any_vehicle(me));
}

// Runs fn in a child; returns its stderr and whether it died of SIGABRT.
static bool aborts(void (*fn)(), std::string& err) {
    int pipefd[2];
    if (pipe(pipefd) != 0) return false;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pipefd[1], 2);
        close(pipefd[0]);
        fn();
        _exit(0);
    }
    close(pipefd[1]);
    char buf[512];
    ssize_t r;
    while ((r = read(pipefd[0], buf, sizeof buf)) > 0) err.append(buf, static_cast<size_t>(r));
    close(pipefd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

TEST(sim, unknown_native_aborts_with_hash) {
    std::string err;
    CHECK(aborts([] {
        Sim s(load_world(WFGTA_TEST_DATA "/city.json"));
        s.begin(0x1234ABCD5678EF90ULL);
        s.call();
    }, err));
    CHECK_MSG(err.find("0x1234ABCD5678EF90") != std::string::npos, err);

    std::string err2;
    CHECK(aborts([] {
        Sim s(load_world(WFGTA_TEST_DATA "/city.json"));
        s.begin(wfgta::hash::GET_ENTITY_COORDS);  // one argument short
        s.push(1);
        s.call();
    }, err2));
    CHECK_MSG(err2.find("GET_ENTITY_COORDS") != std::string::npos && err2.find("0x3FEF770D40960D5A") != std::string::npos, err2);
}

TEST(sim, draw_rect_shows_on_the_next_presented_frame_only) {
    Sim s(small_city());
    Natives n(s);
    s.present();
    CHECK(s.rects().empty());
    n.draw_rect(0.25, 0.5, 0.125, 0.0625, 1, 2, 3, 4);
    n.draw_rect(0.1, 0.2, 0.3, 0.4, 255, 0, 255, 255);
    CHECK(s.rects().empty());  // not before the frame is presented
    s.step(1.0 / 30.0);
    s.present();
    CHECK(s.rects().size() == 2);
    CHECK(s.rects()[0] == (ScreenRect{0.25, 0.5, 0.125, 0.0625, 1, 2, 3, 4}));
    CHECK(s.rects()[1] == (ScreenRect{static_cast<float>(0.1), static_cast<float>(0.2), static_cast<float>(0.3),
                                      static_cast<float>(0.4), 255, 0, 255, 255}));  // passed as floats
    CHECK(marker::shown(s.rects()) == 0);
    marker::draw(n, 9);
    s.present();
    CHECK(s.rects().size() == 4 && marker::shown(s.rects()) == 9);
    s.present();
    CHECK(s.rects().empty() && marker::shown(s.rects()) == 0 && s.calls(hash::DRAW_RECT) == 6);
}

TEST(sim, marker_cells_carry_the_code_bit_by_bit) {
    const ScreenRect magenta{0, 0, 0.125, 0.125, 255, 0, 255, 255}, green{0, 0, 0.125, 0.125, 0, 255, 0, 255};
    const double cx[4] = {0.0625, 0.1875, 0.0625, 0.1875}, cy[4] = {0.0625, 0.0625, 0.1875, 0.1875};
    CHECK(marker::code_for(0) == 1 && marker::code_for(13) == 14 && marker::code_for(14) == 1 &&
          marker::code_for(119) == 1 + 119 % 14);
    for (int code = 0; code < 16; ++code) {
        auto cells = marker::cells(code);
        for (int bit = 0; bit < 4; ++bit) {
            ScreenRect want = (code >> bit) & 1 ? magenta : green;
            want.x = cx[bit];
            want.y = cy[bit];
            CHECK_MSG(cells[bit] == want, std::to_string(code) + " bit " + std::to_string(bit));
        }
        // Read back through the simulator: exact in float, any drawing order, other rects ignored.
        Sim s(small_city());
        Natives n(s);
        n.draw_rect(0.5, 0.5, 0.125, 0.125, 255, 0, 255, 255);
        for (int bit = 3; bit >= 0; --bit) {
            const ScreenRect& c = cells[bit];
            n.draw_rect(c.x, c.y, c.w, c.h, c.r, c.g, c.b, c.a);
        }
        s.present();
        // 0 and 15 (all green, all magenta) are no code: a game could show either by itself.
        CHECK_MSG(marker::shown(s.rects()) == (code == 0 || code == 15 ? 0 : code), std::to_string(code));
    }
    // Not a code: a cell missing, doubled, in another colour, or translucent.
    auto four = marker::cells(5);
    std::vector<ScreenRect> v(four.begin(), four.end());
    CHECK(marker::shown(v) == 5);
    CHECK(marker::shown(std::vector<ScreenRect>(v.begin(), v.begin() + 3)) == 0);
    auto doubled = v;
    doubled.push_back(v[1]);
    CHECK(marker::shown(doubled) == 0);
    auto other = v;
    other[2].b = 1;
    CHECK(marker::shown(other) == 0);
    auto translucent = v;
    translucent[0].a = 254;
    CHECK(marker::shown(translucent) == 0);
}
