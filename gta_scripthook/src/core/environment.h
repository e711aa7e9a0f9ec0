// Applies the configured world: traffic and pedestrian densities every tick (the _THIS_FRAME
// natives only last one frame), weather and time of day once per (re)configuration.
#pragma once
#include "config.h"
#include "natives.h"

namespace wfgta {

class Environment {
public:
    explicit Environment(Natives& n) : n_(n) {}
    void apply(const Config& cfg);
    // Makes the next apply() set weather and clock again (after a config reload).
    void invalidate() { applied_once_ = false; }

private:
    Natives& n_;
    bool applied_once_ = false;
};

}  // namespace wfgta
