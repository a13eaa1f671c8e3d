// tests/unit/main.cpp — the Catch2 runner for every unit test.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
