# The multi-process tests start real `troupe worker` processes.
add_dependencies(troupe_actors_tests troupe_cli)
target_compile_definitions(troupe_actors_tests PRIVATE TROUPE_CLI_PATH="$<TARGET_FILE:troupe_cli>")
