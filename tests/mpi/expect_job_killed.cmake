# Runs Failure.KilledRankIsNamed under mpirun's default (no --enable-recovery), with a deadline of
# 60 s: Open MPI's launcher sees rank 1 die of SIGKILL and ends the whole job at once, so the job
# must fail, say so, and end well before the deadline would have (no hang).
# -DMPIRUN="mpiexec;-n;2;..." -DEXE=<kiln_mpi_tests>
string(TIMESTAMP start "%s")
set(ENV{KILN_COLLECTIVE_TIMEOUT} 60)
execute_process(COMMAND ${MPIRUN} ${EXE} --gtest_filter=Failure.KilledRankIsNamed
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 100)
string(TIMESTAMP end "%s")
math(EXPR seconds "${end} - ${start}")
message(STATUS "mpirun returned ${rc} after ${seconds} s:\n${out}\n${err}")
if(rc EQUAL 0)
  message(FATAL_ERROR "the job succeeded although rank 1 was killed")
endif()
if(NOT "${out}${err}" MATCHES "signal 9")
  message(FATAL_ERROR "mpirun did not report the killed rank (signal 9)")
endif()
if(NOT "${out}" MATCHES "rank 1 kills itself")
  message(FATAL_ERROR "rank 1 did not reach the kill")
endif()
if(seconds GREATER_EQUAL 60)
  message(FATAL_ERROR "the job took ${seconds} s: it waited for the collective deadline instead of ending")
endif()
