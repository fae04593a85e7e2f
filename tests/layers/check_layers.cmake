# check_layers.cmake - run by the test layers_enforced (tests/layers.cmake) with
# -DBUILD_DIR=... -DALLOWED=<targets> -DFORBIDDEN=<target=header;...>: every allowed probe builds,
# and every forbidden one fails because its header is not found (not for another reason).
foreach(target ${ALLOWED})
  execute_process(COMMAND ${CMAKE_COMMAND} --build ${BUILD_DIR} --target ${target}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${target} should build (its layer may use that header):\n${out}")
  endif()
  message(STATUS "builds, as it should: ${target}")
endforeach()
foreach(pair ${FORBIDDEN})
  string(REPLACE "=" ";" pair "${pair}")
  list(GET pair 0 target)
  list(GET pair 1 header)
  execute_process(COMMAND ${CMAKE_COMMAND} --build ${BUILD_DIR} --target ${target}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(rc EQUAL 0)
    message(FATAL_ERROR "${target} built: its layer reaches ${header}, a layer it must not use")
  endif()
  string(FIND "${out}" "${header}: No such file or directory" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "${target} failed, but not for the missing ${header}:\n${out}")
  endif()
  message(STATUS "refused, as it should: ${target} (${header} not found)")
endforeach()
