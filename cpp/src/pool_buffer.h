// The session's pool as a backend sees it: a buffer the session reads and writes only
// through this interface (token ids in, logits out, reset, state save / load), so the
// memory may be a device's. Java allocates the pool and owns its lifetime; a backend
// wraps that host allocation in the buffer it computes on (Backend::wrap_host_pool).
#pragma once
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "error.h"

namespace ei {

class PoolBuffer {
public:
    virtual ~PoolBuffer() = default;
    virtual uint64_t size() const = 0;
    // Byte ranges in [0, size()); a range outside is EI_ERR_INTERNAL (a planner or session
    // bug). The session calls these only between steps, after synchronize().
    virtual void write(uint64_t offset, const void* src, uint64_t bytes) = 0;
    virtual void read(uint64_t offset, void* dst, uint64_t bytes) const = 0;
    virtual void zero(uint64_t offset, uint64_t bytes) = 0;
    // Waits until every op enqueued on the buffer has finished and its results are what
    // read() and host() see.
    virtual void synchronize() = 0;
    // The pool's bytes in host memory when the buffer is host-visible (after synchronize),
    // else nullptr. Lets the session hand out logits and tools watch ops without copies.
    virtual uint8_t* host() const = 0;

protected:
    static void check_range(uint64_t size, uint64_t offset, uint64_t bytes, const char* what) {
        if (offset > size || bytes > size - offset) {
            fail(EI_ERR_INTERNAL, std::string("pool buffer: ") + what + " of " + std::to_string(bytes) + " bytes at " +
                                      std::to_string(offset) + " is outside the pool of " + std::to_string(size));
        }
    }
};

// Plain host memory: the CPU backend's buffer, and the default for any backend that
// computes on host memory directly.
class HostPoolBuffer final : public PoolBuffer {
public:
    HostPoolBuffer(uint8_t* host, uint64_t bytes) : host_(host), size_(bytes) {
        if (!host) fail(EI_ERR_POOL, "pool is null");
    }
    uint64_t size() const override { return size_; }
    void write(uint64_t offset, const void* src, uint64_t bytes) override {
        check_range(size_, offset, bytes, "write");
        if (bytes) std::memcpy(host_ + offset, src, bytes);
    }
    void read(uint64_t offset, void* dst, uint64_t bytes) const override {
        check_range(size_, offset, bytes, "read");
        if (bytes) std::memcpy(dst, host_ + offset, bytes);
    }
    void zero(uint64_t offset, uint64_t bytes) override {
        check_range(size_, offset, bytes, "zero");
        std::memset(host_ + offset, 0, bytes);
    }
    void synchronize() override {}
    uint8_t* host() const override { return host_; }

private:
    uint8_t* host_;
    uint64_t size_;
};

}  // namespace ei
