# The static-analysis gate (tests/lint/run.sh): cppcheck and clang-tidy on
# every C file of this build's compile_commands.json; any warning fails.
# Label "lint": the sanitizer run leaves it out (ctest -LE 'e2e|lint').
add_test(NAME lint
  COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/run.sh ${CMAKE_BINARY_DIR})
set_tests_properties(lint PROPERTIES
  LABELS lint
  TIMEOUT 900
  PROCESSORS 2
  SKIP_RETURN_CODE 77)
