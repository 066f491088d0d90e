# The suite reuses the shared torch precompiled header, which needs torch's include
# paths and definitions; troupe::placement itself keeps torch private.
target_link_libraries(troupe_placement_tests PRIVATE troupe_torch)
