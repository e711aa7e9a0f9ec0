// Street grid, road test and pedestrian graph.
#include "world.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "json.h"

namespace wfgta::sim {

std::vector<int> World::neighbours(int n) const {
    int i = n / ny(), j = n % ny();
    std::vector<int> out;
    if (i > 0) out.push_back(node(i - 1, j));
    if (i + 1 < nx()) out.push_back(node(i + 1, j));
    if (j > 0) out.push_back(node(i, j - 1));
    if (j + 1 < ny()) out.push_back(node(i, j + 1));
    return out;
}

bool World::on_road(double x, double y, double tol) const {
    double h = road_width / 2 + tol;
    if (std::fabs(x) > half + tol || std::fabs(y) > half + tol) return false;
    for (double rx : roads_x) if (std::fabs(x - rx) <= h) return true;
    for (double ry : roads_y) if (std::fabs(y - ry) <= h) return true;
    return false;
}

Vec3 World::walk_pos(int w) const {
    Vec3 c = node_pos(w / 4);
    double s = sidewalk_offset();
    return {c.x + ((w & 1) ? s : -s), c.y + ((w & 2) ? s : -s), 0};
}

std::vector<int> World::walk_neighbours(int w) const {
    int n = w / 4, q = w & 3, i = n / ny(), j = n % ny();
    bool px = q & 1, py = q & 2;
    std::vector<int> out;
    out.push_back(n * 4 + (q ^ 1));  // cross the north-south road
    out.push_back(n * 4 + (q ^ 2));  // cross the east-west road
    if (py && j + 1 < ny()) out.push_back(node(i, j + 1) * 4 + (q & 1));        // north along the block
    if (!py && j > 0) out.push_back(node(i, j - 1) * 4 + (q & 1) + 2);          // south
    if (px && i + 1 < nx()) out.push_back(node(i + 1, j) * 4 + (q & 2));        // east
    if (!px && i > 0) out.push_back(node(i - 1, j) * 4 + (q & 2) + 1);          // west
    return out;
}

int World::nearest_walk(Vec3 p) const {
    int best = 0;
    double bd = 1e18;
    for (int w = 0; w < nx() * ny() * 4; ++w) {
        Vec3 d = walk_pos(w) - p;
        double dd = d.x * d.x + d.y * d.y;
        if (dd < bd) { bd = dd; best = w; }
    }
    return best;
}

static std::vector<double> numbers(const JsonValue& doc, const char* key) {
    const JsonValue* v = doc.get(key);
    if (!v || v->type != JsonValue::Type::Array) throw std::invalid_argument(std::string("world: \"") + key + "\" must be an array of numbers");
    std::vector<double> out;
    for (const auto& e : v->arr) {
        if (e.type != JsonValue::Type::Number) throw std::invalid_argument(std::string("world: \"") + key + "\" holds a non-number");
        out.push_back(e.num);
    }
    std::sort(out.begin(), out.end());
    return out;
}

World parse_world(const std::string& text) {
    JsonValue doc = json_parse(text);
    if (!doc.is_object()) throw std::invalid_argument("world: not a JSON object");
    World w;
    w.half = doc.get_number("half", w.half);
    w.roads_x = numbers(doc, "roads_x");
    w.roads_y = numbers(doc, "roads_y");
    w.road_width = doc.get_number("road_width", w.road_width);
    w.peds = static_cast<int>(doc.get_number("peds", w.peds));
    w.vehicles = static_cast<int>(doc.get_number("vehicles", w.vehicles));
    w.seed = static_cast<uint64_t>(doc.get_number("seed", static_cast<double>(w.seed)));
    if (const JsonValue* b = doc.get("player_in_vehicle")) w.player_in_vehicle = b->b;
    if (w.nx() < 2 || w.ny() < 2) throw std::invalid_argument("world: needs at least two roads in roads_x and in roads_y");
    if (!(w.road_width > 2 && w.road_width < 40)) throw std::invalid_argument("world: road_width must be in (2, 40) m");
    double margin = w.sidewalk_offset();
    for (const auto* roads : {&w.roads_x, &w.roads_y}) {
        for (size_t k = 0; k < roads->size(); ++k) {
            if (std::fabs((*roads)[k]) + margin > w.half) throw std::invalid_argument("world: a road lies within a sidewalk of the boundary (|road| + road_width/2 + 1.5 > half)");
            if (k > 0 && (*roads)[k] - (*roads)[k - 1] < 2 * margin + 4) throw std::invalid_argument("world: roads closer than road_width + 7 m");
        }
    }
    if (w.peds < 0 || w.vehicles < 0) throw std::invalid_argument("world: negative peds/vehicles");
    return w;
}

World load_world(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw std::invalid_argument("world: cannot read " + path);
    std::ostringstream ss;
    ss << f.rdbuf();
    return parse_world(ss.str());
}

}  // namespace wfgta::sim
