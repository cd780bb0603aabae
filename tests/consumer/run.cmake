# Builds and runs tests/consumer against pali3 in one of three ways (MODE):
#   install      - cmake --install pali3 into a prefix, then find_package(pali3 CONFIG)
#   subdirectory - add_subdirectory(pali3 source)
#   include_only - the compiler alone with -I include
cmake_minimum_required(VERSION 3.21)
set(consumer_src ${CMAKE_CURRENT_LIST_DIR})
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "command failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  message(STATUS "${out}")
endfunction()

if(MODE STREQUAL "install")
  run(${CMAKE_COMMAND} -S ${PALI3_SOURCE} -B ${WORK}/pali3-build -DCMAKE_CXX_COMPILER=${CXX}
      -DPALI3_BUILD_TESTS=OFF -DPALI3_BUILD_BENCH=OFF -DPALI3_BUILD_EXAMPLES=OFF
      -DCMAKE_INSTALL_PREFIX=${WORK}/prefix)
  run(${CMAKE_COMMAND} --install ${WORK}/pali3-build)
  run(${CMAKE_COMMAND} -S ${consumer_src} -B ${WORK}/build -DCMAKE_CXX_COMPILER=${CXX}
      -DCMAKE_PREFIX_PATH=${WORK}/prefix)
  run(${CMAKE_COMMAND} --build ${WORK}/build)
  run(${WORK}/build/consumer)
elseif(MODE STREQUAL "subdirectory")
  run(${CMAKE_COMMAND} -S ${consumer_src} -B ${WORK}/build -DCMAKE_CXX_COMPILER=${CXX}
      -DPALI3_SOURCE_DIR=${PALI3_SOURCE})
  run(${CMAKE_COMMAND} --build ${WORK}/build)
  run(${WORK}/build/consumer)
elseif(MODE STREQUAL "include_only")
  # The fixed dependencies (stb, sentencepiece) come from pkg-config, as a Makefile user would do.
  execute_process(COMMAND pkg-config --cflags --libs stb sentencepiece OUTPUT_VARIABLE deps
                  OUTPUT_STRIP_TRAILING_WHITESPACE COMMAND_ERROR_IS_FATAL ANY)
  separate_arguments(deps UNIX_COMMAND "${deps}")
  run(${CXX} -std=c++20 -O1 -I${PALI3_SOURCE}/include ${consumer_src}/main.cpp ${deps} -pthread
      -o ${WORK}/consumer)
  run(${WORK}/consumer)
else()
  message(FATAL_ERROR "unknown MODE '${MODE}'")
endif()
