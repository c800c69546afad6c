// The CUDA path's host-side refusals, checked on the CPU (their decisions are plain C++):
//  - a buffer that would be allocated while its stream is being captured into a CUDA graph
//    (cuda/stream.h): refused, naming the buffer and the warm-up that avoids it;
//  - IFRT_RANGE_OF_LAST_PREPROCESS with no range, or with the range of a frame that had non-finite
//    pixels (cuda/kernels.h): refused as ifrt_preprocess refuses that frame.
#include <string>

#include "check.h"
#include "cuda/kernels.h"
#include "cuda/stream.h"

using namespace ifrt;
using namespace ifrt::cuda;

namespace {

// The InvalidArgument message `body` throws, or "" when it does not throw one.
template <typename Body>
std::string refusal(Body&& body) {
  try {
    body();
  } catch (const Error& e) {
    if (e.code() == ErrorCode::InvalidArgument) return e.what();
  }
  return "";
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

void test_an_allocation_outside_a_capture_goes_ahead() {
  CHECK(refusal([] { require_uncaptured(false, "the preprocess workspace"); }).empty());
}

void test_an_allocation_during_a_capture_is_refused_naming_the_buffer_and_the_warm_up() {
  const std::string message =
      refusal([] { require_uncaptured(true, "the preprocess workspace (one per thread, device and stream)"); });
  CHECK(contains(message, "the preprocess workspace (one per thread, device and stream) is allocated on its first use"));
  CHECK(contains(message, "while the stream is being captured into a CUDA graph"));
  CHECK(contains(message, "make the same call once before the capture"));
}

void test_a_finite_range_and_one_a_graph_checks_on_the_device_are_used() {
  CHECK(refusal([] { require_usable_range(RangeState::Finite); }).empty());
  CHECK(refusal([] { require_usable_range(RangeState::InGraph); }).empty());
}

void test_the_range_of_a_frame_with_non_finite_pixels_is_refused_naming_why() {
  const std::string message = refusal([] { require_usable_range(RangeState::NonFinite); });
  CHECK(contains(message, "range: the frame of the last ifrt_preprocess_cuda call"));
  CHECK(contains(message, "has non-finite pixels (NaN or inf, after dark/flat correction)"));
  CHECK(contains(message, "normalization needs finite values"));
}

void test_no_range_yet_is_refused() {
  CHECK(contains(refusal([] { require_usable_range(RangeState::Missing); }),
                 "range: no ifrt_preprocess_cuda call on this thread, device and stream has computed a range"));
}

}  // namespace

int main() {
  test_an_allocation_outside_a_capture_goes_ahead();
  test_an_allocation_during_a_capture_is_refused_naming_the_buffer_and_the_warm_up();
  test_a_finite_range_and_one_a_graph_checks_on_the_device_are_used();
  test_the_range_of_a_frame_with_non_finite_pixels_is_refused_naming_why();
  test_no_range_yet_is_refused();
  return TEST_MAIN_RESULT();
}
