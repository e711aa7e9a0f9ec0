// Densities, weather and clock natives.
#include "environment.h"

#include <cmath>

namespace wfgta {

void Environment::apply(const Config& cfg) {
    n_.set_vehicle_density_this_frame(cfg.vehicle_density);
    n_.set_random_vehicle_density_this_frame(cfg.vehicle_density);
    n_.set_parked_vehicle_density_this_frame(cfg.vehicle_density);
    n_.set_ped_density_this_frame(cfg.npc_density);
    n_.set_scenario_ped_density_this_frame(cfg.npc_density);
    if (applied_once_) return;
    n_.set_weather_type_now_persist(cfg.weather.c_str());
    int total_s = static_cast<int>(std::floor(cfg.time_of_day * 3600.0));
    n_.set_clock_time(total_s / 3600, (total_s / 60) % 60, total_s % 60);
    n_.pause_clock(cfg.pause_clock);
    applied_once_ = true;
}

}  // namespace wfgta
