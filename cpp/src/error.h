// Errors inside the runtime are C++ exceptions carrying an ei_status; the C ABI layer
// (capi.cpp) is the only place that turns them into status codes plus ei_last_error().
#pragma once
#include <stdexcept>
#include <string>

#include "edgeinfinite/edgeinfinite.h"

namespace ei {

class Error : public std::runtime_error {
public:
    Error(ei_status status, const std::string& msg) : std::runtime_error(msg), status_(status) {}
    ei_status status() const { return status_; }

private:
    ei_status status_;
};

[[noreturn]] inline void fail(ei_status status, const std::string& msg) { throw Error(status, msg); }

}  // namespace ei
