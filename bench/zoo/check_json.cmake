# Runs COMMAND with ARGS (a ;-list) and fails unless it exits 0 and its last output line is a JSON
# object whose images_per_s is a number above 0 (bench_zoo's result line). Used by the CTest smoke
# tests of bench/CMakeLists.txt: cmake -DCOMMAND=... -DARGS=... -P check_json.cmake
execute_process(COMMAND ${COMMAND} ${ARGS} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${COMMAND} ${ARGS} exited with ${rc}: ${err}")
endif()
string(STRIP "${out}" out)
string(REGEX REPLACE ".*\n" "" last "${out}")
string(JSON images ERROR_VARIABLE json_error GET "${last}" images_per_s)
if(json_error)
  message(FATAL_ERROR "the last output line is not JSON with images_per_s (${json_error}): ${last}")
endif()
if(NOT images GREATER 0)
  message(FATAL_ERROR "images_per_s is ${images}, expected a number above 0: ${last}")
endif()
message(STATUS "${last}")
