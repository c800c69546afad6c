// Minimal assertion helpers for the C++ tests (no third-party test framework on the build machines).
#pragma once

#include <cmath>
#include <cstdio>
#include <cstdlib>

inline int g_ifrt_failures = 0;

#define CHECK(cond)                                                              \
  do {                                                                           \
    if (!(cond)) {                                                               \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++g_ifrt_failures;                                                         \
    }                                                                            \
  } while (0)

#define CHECK_NEAR(a, b, tol)                                                                       \
  do {                                                                                              \
    const double _a = (a), _b = (b);                                                                \
    if (!(std::fabs(_a - _b) <= (tol))) {                                                           \
      std::fprintf(stderr, "%s:%d: CHECK_NEAR failed: %s=%.9g %s=%.9g tol=%g\n", __FILE__, __LINE__, \
                   #a, _a, #b, _b, (double)(tol));                                                  \
      ++g_ifrt_failures;                                                                            \
    }                                                                                               \
  } while (0)

#define TEST_MAIN_RESULT() (g_ifrt_failures == 0 ? 0 : 1)
