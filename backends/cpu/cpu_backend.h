#pragma once
#include <memory>
#include <string>

#include "backend.h"

namespace ei::cpu {

std::unique_ptr<Backend> make_cpu_backend(int n_threads);
// "" when the CPU kernels run op as planned, else why not (the CPU backend's supports()).
std::string why_unsupported(const Op& op);

}  // namespace ei::cpu
