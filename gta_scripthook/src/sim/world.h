// The simulated city: a street grid read from a JSON world file
//   {"half": 50, "roads_x": [...], "roads_y": [...], "road_width": 9, "peds": N, "vehicles": N,
//    "seed": S, "player_in_vehicle": false}
// roads_x are the x of the north-south road centre lines, roads_y the y of the east-west ones;
// every road spans [-half, half]. Intersections form the drivable graph; the stubs between the
// outermost intersections and the boundary are dead ends that no route takes. Sidewalk corners
// (at road_width/2 + 1.5 m from the centre lines) form the pedestrian graph.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "math3d.h"

namespace wfgta::sim {

struct World {
    double half = 50;
    std::vector<double> roads_x, roads_y;
    double road_width = 9;
    int peds = 10, vehicles = 6;
    uint64_t seed = 1;
    bool player_in_vehicle = false;

    int nx() const { return static_cast<int>(roads_x.size()); }
    int ny() const { return static_cast<int>(roads_y.size()); }
    // Intersections: index i * ny + j at (roads_x[i], roads_y[j]).
    int node(int i, int j) const { return i * ny() + j; }
    Vec3 node_pos(int n) const { return {roads_x[n / ny()], roads_y[n % ny()], 0}; }
    std::vector<int> neighbours(int n) const;
    double lane_offset() const { return road_width / 4; }
    // True when (x, y) lies on a road surface inside the map.
    bool on_road(double x, double y, double tolerance = 0) const;

    // Sidewalk corners: 4 per intersection, id = node * 4 + quadrant (bit 0: +x side, bit 1: +y side).
    double sidewalk_offset() const { return road_width / 2 + 1.5; }
    Vec3 walk_pos(int w) const;
    std::vector<int> walk_neighbours(int w) const;
    int nearest_walk(Vec3 p) const;
};

// Parses and checks a world (at least two roads each way, inside the map); throws
// std::invalid_argument naming the problem.
World parse_world(const std::string& json_text);
World load_world(const std::string& path);

}  // namespace wfgta::sim
