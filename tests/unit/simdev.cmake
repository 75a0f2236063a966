# The simulated GPU's own tests (backends/sim/simdev.h), included from
# tests/CMakeLists.txt. They link only vs_simdev (not libvramswap): simdev must
# work without the core, as the driver emulators use it.
add_executable(unit_simdev ${CMAKE_CURRENT_LIST_DIR}/test_simdev.c)
target_link_libraries(unit_simdev PRIVATE vs_simdev PkgConfig::CRITERION Threads::Threads)
add_test(NAME unit_simdev COMMAND unit_simdev)
set_tests_properties(unit_simdev PROPERTIES LABELS unit TIMEOUT 120)
