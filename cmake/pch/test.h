// Precompiled header of the unit tests (tests/unit): core.h and GoogleTest.
#include "core.h"

#include <gtest/gtest.h>
