#pragma once
#include <memory>

#include "backend.h"

namespace ei::cpu {

std::unique_ptr<Backend> make_cpu_backend(int n_threads);

}  // namespace ei::cpu
