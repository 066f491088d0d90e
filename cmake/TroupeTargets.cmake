# Helpers that give every folder library the same shape:
#   <folder>/include/troupe/<folder>/*.hpp  public, installed
#   <folder>/src/*                          private
function(troupe_add_library folder)
  cmake_parse_arguments(ARG "" "" "SOURCES;PUBLIC_DEPS;PRIVATE_DEPS" ${ARGN})
  set(target troupe_${folder})
  if(ARG_SOURCES)
    add_library(${target} STATIC ${ARG_SOURCES})
    set(scope PUBLIC)
  else()
    add_library(${target} INTERFACE)
    set(scope INTERFACE)
  endif()
  add_library(troupe::${folder} ALIAS ${target})
  target_include_directories(${target} ${scope}
    $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
    $<INSTALL_INTERFACE:include>)
  target_link_libraries(${target} ${scope} ${ARG_PUBLIC_DEPS})
  if(ARG_SOURCES)
    target_include_directories(${target} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
    target_link_libraries(${target} PRIVATE ${ARG_PRIVATE_DEPS} $<BUILD_INTERFACE:troupe_warnings>)
  endif()
  set_target_properties(${target} PROPERTIES EXPORT_NAME ${folder} OUTPUT_NAME troupe_${folder})
  set_property(GLOBAL APPEND PROPERTY TROUPE_LIBRARIES ${target})
  install(DIRECTORY include/ DESTINATION include)
endfunction()

# One precompiled <torch/torch.h> for every target that includes LibTorch (each target
# building its own would cost a minute or more apiece on two cores). Sources that do
# not include torch (tokenizers, JSON) opt out with SKIP_PRECOMPILE_HEADERS.
add_library(troupe_torch_pch OBJECT ${CMAKE_CURRENT_LIST_DIR}/torch_pch.cpp)
target_link_libraries(troupe_torch_pch PRIVATE troupe_torch troupe_warnings)
target_precompile_headers(troupe_torch_pch PRIVATE <torch/torch.h>)

function(troupe_use_torch_pch target)
  target_precompile_headers(${target} REUSE_FROM troupe_torch_pch)
  # The header was compiled -fPIC; GCC refuses it under -fPIE, so executables compile
  # -fPIC too (still linked as position-independent executables).
  get_target_property(type ${target} TYPE)
  if(type STREQUAL "EXECUTABLE")
    set_target_properties(${target} PROPERTIES POSITION_INDEPENDENT_CODE OFF)
    target_compile_options(${target} PRIVATE -fPIC)
  endif()
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Winvalid-pch>)
endfunction()
