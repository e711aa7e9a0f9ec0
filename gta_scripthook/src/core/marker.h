// The synchronisation marker ("clapperboard"): four cells over the top-left quarter of the
// screen, drawn with GRAPHICS::DRAW_RECT on the ticks a `mark` control message asks for, each
// cell one bit of a 4-bit code that changes every frame, so that synchronisation can tell every
// marked video frame apart and match it to the frame message carrying the same "mark": <code>
// (docs/gta.md). A fixed pattern has only two transitions (on and off); a code per frame pins
// each marked video frame to one game frame.
//
// Geometry in DRAW_RECT's screen-relative units (0..1 across and down, rectangle centre and
// size): four 0.125 x 0.125 cells covering [0, 0.25] x [0, 0.25], bit 0 top-left, bit 1
// top-right, bit 2 bottom-left, bit 3 bottom-right. A cell is magenta (255, 0, 255) for a 1 bit
// and green (0, 255, 0) for a 0 bit, all opaque: two colours far apart in hue and both far from
// anything the street scenes show. The i-th marked frame of a `mark` (i = 0, 1, ...) shows code
// 1 + i mod 14: codes 1..14 cycle, and 0 and 15 (a plain green or magenta quarter, which a game
// could show by itself) are never drawn. Every value is exact in float, so what the game
// receives is exactly this.
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
// Codes drawn: 1..kCodes, cycling.
constexpr int kCodes = 14;
constexpr double kCell = 0.125;
// Cell centres, in bit order.
constexpr std::array<double, 4> kCellX = {0.0625, 0.1875, 0.0625, 0.1875};
constexpr std::array<double, 4> kCellY = {0.0625, 0.0625, 0.1875, 0.1875};
struct Rgb {
    int r, g, b;
};
constexpr Rgb kOne = {255, 0, 255};  // magenta
constexpr Rgb kZero = {0, 255, 0};   // green

// The code shown on the i-th marked frame (i >= 0) of a mark: 1 + i mod kCodes.
constexpr int code_for(int i) { return 1 + i % kCodes; }
// The four cells showing `code` (0..15), in bit order (the order they are drawn in).
std::array<ScreenRect, 4> cells(int code);
// Issues the four DRAW_RECTs showing `code`; they show on the frame rendered after this tick only.
void draw(Natives& n, int code);
// The code these rectangles (one frame's DRAW_RECTs, other rectangles ignored) show: 0 unless
// each cell is drawn exactly once, opaque, in one of the two colours; 0 and 15 also read as 0.
int shown(const std::vector<ScreenRect>& rects);

}  // namespace marker
}  // namespace wfgta
