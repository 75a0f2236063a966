# The hook engine's tests (backends/common/hook), included from tests/CMakeLists.txt.
# The engine's functions are hidden in libvramswap, so this links the static
# vramswap_testlib. Built without the engine (VS_HOOKS=OFF) the suite checks
# that installs are refused and skips the rest.
add_executable(unit_hook ${CMAKE_CURRENT_LIST_DIR}/test_hook.c)
target_link_libraries(unit_hook PRIVATE vramswap_testlib PkgConfig::CRITERION Threads::Threads)
add_test(NAME unit_hook COMMAND unit_hook)
set_tests_properties(unit_hook PROPERTIES LABELS unit TIMEOUT 120)
