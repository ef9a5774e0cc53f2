# Windows: a program finds its DLLs beside itself (or on PATH). kiln_copy_runtime_dlls(<target>)
# copies next to an executable the DLL targets it links (libkiln.dll) and, with MinGW-w64, the
# compiler's runtime (libstdc++, libgcc, winpthread, libgomp), so that programs run from the build
# tree as they are, under Wine too. It does nothing on other systems.
set(KILN_WINDOWS_RUNTIME_DLLS "")
if(WIN32 AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  foreach(dll libstdc++-6.dll libgcc_s_seh-1.dll libwinpthread-1.dll libgomp-1.dll)
    execute_process(COMMAND ${CMAKE_CXX_COMPILER} -print-file-name=${dll}
                    OUTPUT_VARIABLE path OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(IS_ABSOLUTE "${path}" AND EXISTS "${path}")
      list(APPEND KILN_WINDOWS_RUNTIME_DLLS "${path}")
    endif()
  endforeach()
endif()

function(kiln_copy_runtime_dlls target)
  if(NOT WIN32)
    return()
  endif()
  add_custom_command(TARGET ${target} POST_BUILD
    COMMAND ${CMAKE_COMMAND} -E copy_if_different $<TARGET_RUNTIME_DLLS:${target}> ${KILN_WINDOWS_RUNTIME_DLLS}
            $<TARGET_FILE_DIR:${target}>
    COMMAND_EXPAND_LISTS VERBATIM)
endfunction()
