# The suite reuses the shared torch precompiled header, which needs torch's include
# paths and definitions; troupe::placement itself keeps torch private.
target_link_libraries(troupe_placement_tests PRIVATE troupe_torch)
target_compile_definitions(troupe_placement_tests PRIVATE
  TROUPE_PLACEMENT_EXAMPLES_DIR="${PROJECT_SOURCE_DIR}/placement/examples")
