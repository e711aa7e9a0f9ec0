// The synchronisation marker ("clapperboard"): a 2x2 checkerboard over the top-left quarter of
// the screen, drawn with GRAPHICS::DRAW_RECT on the ticks a `mark` control message asks for, so
// that synchronisation can find the video frames showing it and match them to the frame
// messages carrying "mark": 1 (docs/gta.md).
//
// Geometry in DRAW_RECT's screen-relative units (0..1 across and down, rectangle centre and
// size): four 0.125 x 0.125 cells covering [0, 0.25] x [0, 0.25]. The top-left and bottom-right
// cells are magenta (255, 0, 255), the other two green (0, 255, 0), all opaque: two colours far
// apart in hue and both far from anything the street scenes show, with a sharp checker corner at
// (0.125, 0.125). Every value is exact in float, so what the game receives is exactly this.
#pragma once
#include <array>
#include <vector>

#include "natives.h"

namespace wfgta {

struct ScreenRect {
    double x, y, w, h;  // centre and size, screen-relative
    int r, g, b, a;
    bool operator==(const ScreenRect& o) const {
        return x == o.x && y == o.y && w == o.w && h == o.h && r == o.r && g == o.g && b == o.b && a == o.a;
    }
};

namespace marker {

// `mark` asks for 1..kMaxFrames frames.
constexpr int kMaxFrames = 120;
constexpr double kCell = 0.125;
constexpr std::array<ScreenRect, 4> kCells = {{
    {0.0625, 0.0625, kCell, kCell, 255, 0, 255, 255},  // top-left: magenta
    {0.1875, 0.0625, kCell, kCell, 0, 255, 0, 255},    // top-right: green
    {0.0625, 0.1875, kCell, kCell, 0, 255, 0, 255},    // bottom-left: green
    {0.1875, 0.1875, kCell, kCell, 255, 0, 255, 255},  // bottom-right: magenta
}};

// Issues the four DRAW_RECTs; they show on the frame rendered after this tick only.
void draw(Natives& n);
// Whether these rectangles (one frame's DRAW_RECTs) include all four cells.
bool shown(const std::vector<ScreenRect>& rects);

}  // namespace marker
}  // namespace wfgta
