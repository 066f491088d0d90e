# Compiler setup shared by every target: ccache, warnings, sanitizers.
find_program(TROUPE_CCACHE ccache)
if(TROUPE_CCACHE)
  # Precompiled headers need these sloppiness settings to be cached at all; the base
  # dir makes paths relative so a fresh clone elsewhere (CI) hits the same entries.
  set(troupe_launcher ${CMAKE_COMMAND} -E env
      CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
      CCACHE_BASEDIR=${CMAKE_SOURCE_DIR} ${TROUPE_CCACHE})
  set(CMAKE_CXX_COMPILER_LAUNCHER ${troupe_launcher})
  set(CMAKE_C_COMPILER_LAUNCHER ${troupe_launcher})
  set(CMAKE_CUDA_COMPILER_LAUNCHER ${troupe_launcher})
endif()

# One interface target carries the warning flags, so every folder gets the same.
add_library(troupe_warnings INTERFACE)
target_compile_options(troupe_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wno-unused-parameter>)

# Host code only: nvcc has no sanitizers (scripts/sanitize builds without CUDA).
if(TROUPE_SANITIZE)
  add_compile_options($<$<COMPILE_LANGUAGE:C,CXX>:-fsanitize=${TROUPE_SANITIZE}> $<$<COMPILE_LANGUAGE:C,CXX>:-fno-omit-frame-pointer>)
  add_link_options(-fsanitize=${TROUPE_SANITIZE})
endif()
