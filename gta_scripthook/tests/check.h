// A tiny test framework: TEST(suite, name) registers a case, CHECK/CHECK_NEAR record failures,
// and the runner (test_main.cpp) runs one suite per CTest entry.
#pragma once
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace wfcheck {

struct Case {
    const char* suite;
    const char* name;
    std::function<void()> fn;
};
std::vector<Case>& registry();
extern int failures;

struct Registrar {
    Registrar(const char* suite, const char* name, std::function<void()> fn) {
        registry().push_back({suite, name, std::move(fn)});
    }
};

inline void fail(const char* file, int line, const std::string& what) {
    ++failures;
    std::fprintf(stderr, "%s:%d: FAILED: %s\n", file, line, what.c_str());
}

}  // namespace wfcheck

#define WFCHECK_CAT2(a, b) a##b
#define WFCHECK_CAT(a, b) WFCHECK_CAT2(a, b)
#define TEST(suite, name)                                                                          \
    static void suite##_##name();                                                                  \
    static wfcheck::Registrar WFCHECK_CAT(reg_, __LINE__)(#suite, #name, suite##_##name);         \
    static void suite##_##name()

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) wfcheck::fail(__FILE__, __LINE__, #cond);                                     \
    } while (0)

#define CHECK_MSG(cond, msg)                                                                       \
    do {                                                                                           \
        if (!(cond)) wfcheck::fail(__FILE__, __LINE__, std::string(#cond) + " -- " + (msg));      \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                      \
    do {                                                                                           \
        double wf_a = (a), wf_b = (b);                                                             \
        if (!(std::fabs(wf_a - wf_b) <= (tol)))                                                    \
            wfcheck::fail(__FILE__, __LINE__,                                                      \
                          std::string(#a " ~= " #b ": ") + std::to_string(wf_a) + " vs " +          \
                              std::to_string(wf_b));                                               \
    } while (0)
