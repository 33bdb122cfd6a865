// A minimal test framework: TEST(name) { CHECK(...); } registers a case; check_main.cpp
// runs them all (or those whose name contains argv[1]) and exits non-zero on any failure.
#pragma once
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace check {

struct Case {
    const char* name;
    std::function<void()> fn;
};
std::vector<Case>& registry();
extern int failures;

struct Registrar {
    Registrar(const char* name, std::function<void()> fn) { registry().push_back({name, std::move(fn)}); }
};

std::string testdata(const std::string& rel);  // EI_TESTDATA_DIR + "/" + rel

}  // namespace check

#define EI_CAT2(a, b) a##b
#define EI_CAT(a, b) EI_CAT2(a, b)
#define TEST(name)                                                              \
    static void name();                                                         \
    static check::Registrar EI_CAT(reg_, name)(#name, name);                    \
    static void name()

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            ++check::failures;                                                       \
        }                                                                            \
    } while (0)

#define CHECK_EQ(a, b)                                                                        \
    do {                                                                                      \
        auto va_ = (a);                                                                       \
        auto vb_ = (b);                                                                       \
        if (!(va_ == vb_)) {                                                                  \
            std::fprintf(stderr, "%s:%d: CHECK_EQ failed: %s != %s (%s vs %s)\n", __FILE__, __LINE__, #a, #b, \
                         std::to_string(va_).c_str(), std::to_string(vb_).c_str());           \
            ++check::failures;                                                                \
        }                                                                                     \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                        \
    do {                                                                                             \
        double va_ = (a), vb_ = (b);                                                                 \
        if (!(std::fabs(va_ - vb_) <= (tol))) {                                                      \
            std::fprintf(stderr, "%s:%d: CHECK_NEAR failed: %s=%g %s=%g tol=%g\n", __FILE__, __LINE__, #a, va_, \
                         #b, vb_, (double)(tol));                                                    \
            ++check::failures;                                                                       \
        }                                                                                            \
    } while (0)

// Runs expr, which must throw ei::Error with the given status; the message must contain
// needle (pass "" to skip that check).
#define CHECK_THROWS(expr, st, needle)                                                               \
    do {                                                                                             \
        bool thrown_ = false;                                                                        \
        try {                                                                                        \
            (void)(expr);                                                                            \
        } catch (const ei::Error& e_) {                                                              \
            thrown_ = true;                                                                          \
            if (e_.status() != (st) || std::string(e_.what()).find(needle) == std::string::npos) {   \
                std::fprintf(stderr, "%s:%d: %s threw status %d '%s', wanted %d containing '%s'\n", __FILE__, \
                             __LINE__, #expr, (int)e_.status(), e_.what(), (int)(st), needle);       \
                ++check::failures;                                                                   \
            }                                                                                        \
        }                                                                                            \
        if (!thrown_) {                                                                              \
            std::fprintf(stderr, "%s:%d: %s did not throw\n", __FILE__, __LINE__, #expr);            \
            ++check::failures;                                                                       \
        }                                                                                            \
    } while (0)
