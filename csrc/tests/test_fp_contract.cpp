// The build keeps a*b+c as two roundings (-ffp-contract=off), as numpy and the CUDA kernels compute it: an
// FMA, which GCC emits by default where the target has one (aarch64, every Jetson), would round once and
// break the bit-exact parity of the per-pixel math.
#include "check.h"

namespace {

// Not constant-folded: the operands are read at run time.
float multiply_add(float a, float b, float c) { return a * b + c; }

void test_a_product_and_a_sum_are_rounded_separately() {
  volatile float a = 1.0f + 0x1p-12f, b = 1.0f + 0x1p-12f, c = -(1.0f + 0x1p-11f);
  // a*b = 1 + 2^-11 + 2^-24 exactly; rounded to float it is 1 + 2^-11 (a tie, to even), so the sum is 0.
  // Fused, the 2^-24 would survive.
  CHECK(multiply_add(a, b, c) == 0.0f);
}

}  // namespace

int main() {
  test_a_product_and_a_sum_are_rounded_separately();
  return TEST_MAIN_RESULT();
}
