// The synchronisation marker: drawing a code and reading it back (marker.h has the geometry).
#include "marker.h"

namespace wfgta::marker {

std::array<ScreenRect, 4> cells(int code) {
    std::array<ScreenRect, 4> out{};
    for (int bit = 0; bit < 4; ++bit) {
        const Rgb& c = (code >> bit) & 1 ? kOne : kZero;
        out[bit] = {kCellX[bit], kCellY[bit], kCell, kCell, c.r, c.g, c.b, 255};
    }
    return out;
}

void draw(Natives& n, int code) {
    for (const ScreenRect& c : cells(code)) n.draw_rect(c.x, c.y, c.w, c.h, c.r, c.g, c.b, c.a);
}

int shown(const std::vector<ScreenRect>& rects) {
    int code = 0;
    for (int bit = 0; bit < 4; ++bit) {
        int found = 0;
        for (const ScreenRect& r : rects) {
            if (r.x != kCellX[bit] || r.y != kCellY[bit] || r.w != kCell || r.h != kCell || r.a != 255) continue;
            if (r.r == kOne.r && r.g == kOne.g && r.b == kOne.b) code |= 1 << bit;
            else if (!(r.r == kZero.r && r.g == kZero.g && r.b == kZero.b)) return 0;
            ++found;
        }
        if (found != 1) return 0;
    }
    return code >= 1 && code <= kCodes ? code : 0;
}

}  // namespace wfgta::marker
