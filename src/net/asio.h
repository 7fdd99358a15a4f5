// The one way into Boost.Asio for Magpie. Boost 1.74's awaitable.hpp uses std::exchange without including
// <utility>, so <utility> must come first; every file that needs Asio includes this header instead.
#pragma once

#include <utility>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

namespace magpie::net {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using asio::awaitable;
using asio::use_awaitable;

}  // namespace magpie::net
