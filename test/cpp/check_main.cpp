#include <cstring>
#include <exception>

#include "check.h"

namespace check {
std::vector<Case>& registry() {
    static std::vector<Case> cases;
    return cases;
}
int failures = 0;
std::string testdata(const std::string& rel) { return std::string(EI_TESTDATA_DIR) + "/" + rel; }
}  // namespace check

int main(int argc, char** argv) {
    int ran = 0;
    for (const auto& c : check::registry()) {
        if (argc > 1 && std::strstr(c.name, argv[1]) == nullptr) continue;
        int before = check::failures;
        try {
            c.fn();
        } catch (const std::exception& e) {
            std::fprintf(stderr, "%s: unexpected exception: %s\n", c.name, e.what());
            ++check::failures;
        }
        std::printf("%s %s\n", check::failures == before ? "[ ok ]" : "[FAIL]", c.name);
        ++ran;
    }
    std::printf("%d cases, %d failed checks\n", ran, check::failures);
    return check::failures == 0 && ran > 0 ? 0 : 1;
}
