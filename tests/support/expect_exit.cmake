# cmake -DEXPECT_STATUS=<n> [-DEXPECT_OUTPUT=<regex>] -DCOMMAND=<program;args...> -P expect_exit.cmake
# Runs COMMAND and fails unless it exits with EXPECT_STATUS and (when given) its stdout+stderr
# matches EXPECT_OUTPUT. CTest alone can check a pattern or a non-zero status, not a status.
execute_process(COMMAND ${COMMAND} RESULT_VARIABLE status OUTPUT_VARIABLE out ERROR_VARIABLE err
  TIMEOUT 30)
if(NOT status STREQUAL EXPECT_STATUS)
  message(FATAL_ERROR "${COMMAND}: exit status ${status}, expected ${EXPECT_STATUS}\n${out}${err}")
endif()
if(DEFINED EXPECT_OUTPUT AND NOT "${out}${err}" MATCHES "${EXPECT_OUTPUT}")
  message(FATAL_ERROR "${COMMAND}: output does not match '${EXPECT_OUTPUT}':\n${out}${err}")
endif()
