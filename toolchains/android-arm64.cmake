# Android arm64-v8a build through the NDK's own toolchain file (NDK r23 or newer):
#
#   cmake -S . -B build-android -DCMAKE_TOOLCHAIN_FILE=toolchains/android-arm64.cmake \
#         -DANDROID_NDK=/path/to/android-ndk [-DANDROID_PLATFORM=android-31]
#   cmake --build build-android --parallel 2
#
# UNTESTED: the NDK cannot be downloaded on the machines this project is built on, so
# this file has only been run against a stand-in for the NDK (see README).
#
# What it fixes, and why:
#  - ABI arm64-v8a; API level 28 (Android 9) or newer, overridable with ANDROID_PLATFORM;
#  - libc++ linked statically, so libedgeinfinite.so ships alone;
#  - no OpenMP: the runtime has its own thread pool, and the NDK's libomp would have to
#    be shipped beside the library;
#  - LOAD segments aligned to 16 KB (-z max-page-size=16384), which devices with 16 KB
#    pages require (Google Play requires it for apps targeting Android 15+).

# The NDK: -DANDROID_NDK=..., else the usual environment variables.
if(NOT ANDROID_NDK)
  foreach(var ANDROID_NDK ANDROID_NDK_HOME ANDROID_NDK_ROOT ANDROID_NDK_LATEST_HOME)
    if(DEFINED ENV{${var}} AND NOT "$ENV{${var}}" STREQUAL "")
      set(ANDROID_NDK "$ENV{${var}}")
      break()
    endif()
  endforeach()
endif()
if(NOT ANDROID_NDK)
  message(FATAL_ERROR
    "toolchains/android-arm64.cmake: ANDROID_NDK is not set. Pass -DANDROID_NDK=/path/to/android-ndk-rNN "
    "(or set the ANDROID_NDK or ANDROID_NDK_HOME environment variable) to an NDK r23 or newer.")
endif()
file(TO_CMAKE_PATH "${ANDROID_NDK}" ANDROID_NDK)
set(EI_NDK_TOOLCHAIN "${ANDROID_NDK}/build/cmake/android.toolchain.cmake")
if(NOT EXISTS "${EI_NDK_TOOLCHAIN}")
  message(FATAL_ERROR "toolchains/android-arm64.cmake: ${EI_NDK_TOOLCHAIN} does not exist; "
                      "ANDROID_NDK (${ANDROID_NDK}) must be the root of an Android NDK (r23 or newer).")
endif()

set(ANDROID_ABI arm64-v8a)
if(NOT ANDROID_PLATFORM)
  set(ANDROID_PLATFORM android-28 CACHE STRING "Minimum Android API level (android-28 or newer)")
endif()
if(ANDROID_PLATFORM MATCHES "^(android-)?([0-9]+)$")
  if(CMAKE_MATCH_2 LESS 28)
    message(FATAL_ERROR "toolchains/android-arm64.cmake: ANDROID_PLATFORM ${ANDROID_PLATFORM} is below android-28, "
                        "the oldest API level this runtime supports.")
  endif()
endif()
set(ANDROID_STL c++_static)
# The NDK's modern toolchain path (the default since r23), whose *_INIT flags we extend below.
set(ANDROID_USE_LEGACY_TOOLCHAIN_FILE OFF)
# NDK r27 understands this and stops defining PAGE_SIZE; r28+ does it by default.
set(ANDROID_SUPPORT_FLEXIBLE_PAGE_SIZES ON)
# Nothing may pick OpenMP up by accident.
set(CMAKE_DISABLE_FIND_PACKAGE_OpenMP TRUE)

include("${EI_NDK_TOOLCHAIN}")

# Appended after the NDK's own flags (once: CMake reads a toolchain file more than once).
# Executables too: the tools and tests run on devices.
foreach(kind EXE SHARED MODULE)
  if(NOT CMAKE_${kind}_LINKER_FLAGS_INIT MATCHES "max-page-size=16384")
    string(APPEND CMAKE_${kind}_LINKER_FLAGS_INIT " -Wl,-z,max-page-size=16384")
  endif()
endforeach()
# try_compile re-reads this file in a fresh project: hand it the NDK path found above.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES ANDROID_NDK)
