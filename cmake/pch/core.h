// Precompiled header of the libraries (cmake/magpie.cmake, magpie_precompile): the standard headers most
// files include, and fmt. Only headers that most of the files using it include anyway: a header here that a
// file does not need still costs it the time to load (nlohmann/json.hpp added about 1 s to a file without it).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <fmt/format.h>
