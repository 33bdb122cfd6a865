# Cross build for aarch64 Linux with Debian's gcc cross compilers
# (apt-get install gcc-aarch64-linux-gnu g++-aarch64-linux-gnu qemu-user):
#
#   cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=toolchains/aarch64-linux-gnu.cmake
#   cmake --build build-aarch64 --parallel 2
#   ctest --test-dir build-aarch64 --output-on-failure
#
# CTest runs every test (and every add_test command that names a target) through
# CMAKE_CROSSCOMPILING_EMULATOR, i.e. under qemu-user, with the sysroot as the prefix for
# the dynamic loader and libraries. -DEI_QEMU_CPU=cortex-a53 runs them on an armv8.0 CPU
# model (no dotprod, no fp16) to exercise the fallback kernels; empty means qemu's default
# CPU, "max" (dotprod, fp16, i8mm, sve).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

# Overridable, e.g. for a versioned compiler (aarch64-linux-gnu-g++-12).
set(EI_CROSS_PREFIX "aarch64-linux-gnu-" CACHE STRING "Prefix of the cross compiler executables")
set(EI_AARCH64_SYSROOT "/usr/aarch64-linux-gnu" CACHE PATH "Target root: headers, libraries, dynamic loader")
set(EI_QEMU_CPU "" CACHE STRING "qemu-aarch64 -cpu model for tests (empty: qemu's default, max)")

set(CMAKE_C_COMPILER "${EI_CROSS_PREFIX}gcc")
set(CMAKE_CXX_COMPILER "${EI_CROSS_PREFIX}g++")

# Libraries and headers from the target root only; programs (cmake, python...) from the host.
# Each mode can be overridden with -D (e.g. INCLUDE BOTH to find a host JDK's jni.h).
set(CMAKE_FIND_ROOT_PATH "${EI_AARCH64_SYSROOT}")
foreach(_ei_mode PROGRAM:NEVER LIBRARY:ONLY INCLUDE:ONLY PACKAGE:ONLY)
  string(REPLACE ":" ";" _ei_mode "${_ei_mode}")
  list(GET _ei_mode 0 _ei_what)
  list(GET _ei_mode 1 _ei_how)
  if(NOT DEFINED CMAKE_FIND_ROOT_PATH_MODE_${_ei_what})
    set(CMAKE_FIND_ROOT_PATH_MODE_${_ei_what} ${_ei_how})
  endif()
endforeach()
unset(_ei_mode)
unset(_ei_what)
unset(_ei_how)

# Read on every configure, so changing EI_QEMU_CPU on a later configure only rewrites the
# test files; nothing is recompiled. (qemu-user also honours the QEMU_CPU environment
# variable when no -cpu is given.)
set(CMAKE_CROSSCOMPILING_EMULATOR "qemu-aarch64;-L;${EI_AARCH64_SYSROOT}")
if(EI_QEMU_CPU)
  list(APPEND CMAKE_CROSSCOMPILING_EMULATOR "-cpu" "${EI_QEMU_CPU}")
endif()
