// The synchronisation marker: drawing it and recognising it (marker.h has the geometry).
#include "marker.h"

#include <algorithm>

namespace wfgta::marker {

void draw(Natives& n) {
    for (const ScreenRect& c : kCells) n.draw_rect(c.x, c.y, c.w, c.h, c.r, c.g, c.b, c.a);
}

bool shown(const std::vector<ScreenRect>& rects) {
    return std::all_of(kCells.begin(), kCells.end(), [&](const ScreenRect& c) {
        return std::find(rects.begin(), rects.end(), c) != rects.end();
    });
}

}  // namespace wfgta::marker
