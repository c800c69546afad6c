// The C ABI boundary: run a C++ body, turn any exception into an ifrt_status plus a thread-local
// message for ifrt_last_error().
#pragma once

#include <exception>
#include <new>
#include <string>

#include "core/common.h"
#include "ifrt/ifrt.h"

namespace ifrt::capi {

void set_last_error(const std::string& message);
void clear_last_error();
const char* last_error();

template <typename Body>
ifrt_status guarded(Body&& body) noexcept {
  try {
    clear_last_error();
    body();
    return IFRT_OK;
  } catch (const Error& e) {
    set_last_error(e.what());
    return static_cast<ifrt_status>(e.code());
  } catch (const std::bad_alloc&) {
    set_last_error("out of host memory");
    return IFRT_ERR_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    set_last_error(e.what());
    return IFRT_ERR_INTERNAL;
  } catch (...) {
    set_last_error("unknown error");
    return IFRT_ERR_INTERNAL;
  }
}

}  // namespace ifrt::capi
