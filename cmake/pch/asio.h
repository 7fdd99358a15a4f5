// Precompiled header of the Boost.Asio libraries (magpie_net, magpie_server, magpied): core.h, Asio with
// its SSL layer (net/asio.h, which includes <utility> first, as Boost 1.74 needs) and nlohmann/json, which
// most of the server's files use.
#include "core.h"

#include <nlohmann/json.hpp>

#include "net/asio.h"
