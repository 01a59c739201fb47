# Unit tests of the session agent: finding apps in /proc, closing and
# reopening them, against real child processes and the test apps.
vigil_unit_test(apps LIBS vigil_agent_core)
add_dependencies(test_apps holdfile stubborn)
target_compile_definitions(test_apps PRIVATE
  HOLDFILE="$<TARGET_FILE:holdfile>" STUBBORN="$<TARGET_FILE:stubborn>")
set_tests_properties(unit_apps PROPERTIES TIMEOUT 120)
