#include "check.h"
#include "core/build_info.h"

int main() {
  const auto info = ifrt::build_info();
  CHECK(!info.version.empty());
  CHECK(info.with_cuda == (info.cuda_version.empty() ? false : true));
  CHECK(!info.with_tensorrt || info.with_cuda);
  std::string error;
  const auto devices = ifrt::cuda_devices(&error);
  CHECK(!devices.empty() || !error.empty());  // an empty list always says why
  for (const auto& d : devices) CHECK(d.uuid.rfind("GPU-", 0) == 0);
  return TEST_MAIN_RESULT();
}
