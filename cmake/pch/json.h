// Precompiled header of the JMAP libraries (magpie_http, magpie_http_methods): core.h and nlohmann/json.
#include "core.h"

#include <nlohmann/json.hpp>
