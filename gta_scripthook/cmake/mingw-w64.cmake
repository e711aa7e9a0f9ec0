# Toolchain file: cross-compile the plugin for 64-bit Windows with Debian's MinGW-w64 g++.
#   cmake -S gta_scripthook -B build-win -DCMAKE_TOOLCHAIN_FILE=gta_scripthook/cmake/mingw-w64.cmake
# The plugin uses std::thread, so the "posix" thread model variant is preferred (Debian's
# default x86_64-w64-mingw32-g++ alternative is the win32 model, which has no std::thread in g++ 12).
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)
set(WFGTA_MINGW_PREFIX x86_64-w64-mingw32 CACHE STRING "MinGW-w64 tool prefix")
find_program(WFGTA_MINGW_CXX NAMES ${WFGTA_MINGW_PREFIX}-g++-posix ${WFGTA_MINGW_PREFIX}-g++)
find_program(WFGTA_MINGW_CC NAMES ${WFGTA_MINGW_PREFIX}-gcc-posix ${WFGTA_MINGW_PREFIX}-gcc)
set(CMAKE_CXX_COMPILER ${WFGTA_MINGW_CXX})
set(CMAKE_C_COMPILER ${WFGTA_MINGW_CC})
set(CMAKE_RC_COMPILER ${WFGTA_MINGW_PREFIX}-windres)
set(CMAKE_FIND_ROOT_PATH /usr/${WFGTA_MINGW_PREFIX})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
