// Helpers shared by the C ABI libFuzzer targets: contract violations abort with the library's last
// error, failures are checked for a known status and a message, and sizes are drawn small most of the
// time (they reach the kernels) and extreme sometimes (they reach the checks).
#pragma once

#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "ifrt/ifrt.h"

namespace ifrt_fuzz {

using int128 = __int128;

[[noreturn]] inline void violation(const char* what) {
  std::fprintf(stderr, "ifrt fuzz: contract violated: %s (last error: %s)\n", what, ifrt_last_error());
  std::abort();
}

inline void check_failure(ifrt_status status) {
  if (status == IFRT_OK) return;
  if (status < IFRT_ERR_INVALID_ARGUMENT || status > IFRT_ERR_INTERNAL) violation("unknown status code");
  if (status == IFRT_ERR_INTERNAL) violation("IFRT_ERR_INTERNAL (an unexpected exception) for a bad argument");
  if (std::strlen(ifrt_last_error()) == 0) violation("a failed call left ifrt_last_error() empty");
}

inline int64_t fuzz_size(FuzzedDataProvider& in, int64_t small_max) {
  switch (in.ConsumeIntegralInRange<int>(0, 7)) {
    case 0: return in.ConsumeIntegral<int64_t>();
    case 1: return in.PickValueInArray<int64_t>({0, -1, 1, std::numeric_limits<int64_t>::max(),
                                                  std::numeric_limits<int64_t>::min(), int64_t(1) << 31,
                                                  int64_t(1) << 32, int64_t(1) << 61, int64_t(1) << 62,
                                                  (int64_t(1) << 24) + 1});
    default: return in.ConsumeIntegralInRange<int64_t>(0, small_max);
  }
}

}  // namespace ifrt_fuzz
