// Shared plumbing of the C ABI implementation files (capi_*.cpp): every exported function
// runs its body through guard(), which turns exceptions into a status plus a thread-local
// message, so nothing thrown in the runtime can cross into Java or C callers.
#pragma once
#include <new>
#include <string>

#include "edgeinfinite/edgeinfinite.h"
#include "error.h"

namespace ei::capi {

void set_error(const std::string& msg);
void clear_error();

template <typename F>
ei_status guard(F&& body) {
    try {
        body();
        return EI_OK;
    } catch (const ei::Error& e) {
        set_error(e.what());
        return e.status();
    } catch (const std::bad_alloc&) {
        set_error("out of memory");
        return EI_ERR_OUT_OF_MEMORY;
    } catch (const std::exception& e) {
        set_error(std::string("internal error: ") + e.what());
        return EI_ERR_INTERNAL;
    } catch (...) {
        set_error("internal error: unknown exception");
        return EI_ERR_INTERNAL;
    }
}

template <typename T>
T* require(T* handle, const char* what) {
    if (!handle) ei::fail(EI_ERR_INVALID_ARGUMENT, std::string(what) + " is null");
    return handle;
}

}  // namespace ei::capi
