// Test runner: `wfgta_tests SUITE` runs one suite (as CTest does), no argument runs all.
#include <cstring>

#include "check.h"

namespace wfcheck {
std::vector<Case>& registry() {
    static std::vector<Case> r;
    return r;
}
int failures = 0;
}  // namespace wfcheck

int main(int argc, char** argv) {
    const char* only = argc > 1 ? argv[1] : nullptr;
    int ran = 0;
    for (const auto& c : wfcheck::registry()) {
        if (only && std::strcmp(only, c.suite) != 0) continue;
        int before = wfcheck::failures;
        c.fn();
        ++ran;
        std::printf("%s %s.%s\n", wfcheck::failures == before ? "ok  " : "FAIL", c.suite, c.name);
    }
    if (ran == 0) {
        std::fprintf(stderr, "no tests in suite %s\n", only ? only : "(all)");
        return 1;
    }
    std::printf("%d tests, %d failed checks\n", ran, wfcheck::failures);
    return wfcheck::failures == 0 ? 0 : 1;
}
