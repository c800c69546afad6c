// C ABI option structs -> core options, shared by the entry points that take them.
#pragma once

#include "core/preprocess.h"
#include "ifrt/ifrt.h"

namespace ifrt::capi {

// NULL gives the defaults; enum fields are read as the int a C caller stored (capi/image.h).
PreprocessOptions options_from(const ifrt_preprocess_options* options);

}  // namespace ifrt::capi
