#include "htp/htp_emulator_backend.h"

namespace ei::htp {

std::unique_ptr<Backend> make_htp_emulator_backend(const Scenario& scenario, bool float_cache) {
    return make_lowered_backend(scenario, make_emulator_executor(), float_cache);
}

}  // namespace ei::htp
