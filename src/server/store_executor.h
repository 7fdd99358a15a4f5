// The bridge between network coroutines and the synchronous Store: store work runs on the store's own thread
// pool and the coroutine resumes on its own io_context with the result, so no network thread ever blocks on
// SQLite or an fsync (ARCHITECTURE.md rule 2).
#pragma once

#include <functional>
#include <type_traits>

#include "net/asio.h"
#include "store/store.h"

namespace magpie::server {

using net::asio::awaitable;

class StoreExecutor {
public:
    explicit StoreExecutor(std::size_t threads) : pool_(threads) {}
    ~StoreExecutor() { pool_.join(); }

    // Runs fn() on the store pool; the awaiting coroutine resumes on its own executor with the result.
    template <class F>
    auto run(F fn) -> awaitable<std::invoke_result_t<F>> {
        using T = std::invoke_result_t<F>;
        return net::asio::async_initiate<const net::asio::use_awaitable_t<>&, void(T)>(
            [this, fn = std::move(fn)](auto handler) mutable {
                net::asio::post(pool_, [fn = std::move(fn), handler = std::move(handler)]() mutable {
                    T result = fn();
                    auto ex = net::asio::get_associated_executor(handler);
                    net::asio::post(ex, [handler = std::move(handler), result = std::move(result)]() mutable {
                        handler(std::move(result));
                    });
                });
            },
            net::asio::use_awaitable);
    }

    // Hands a delivery to the store's group committer and resumes once it is durable (or failed).
    awaitable<Result<store::Delivered>> deliver(store::Store& store, store::Delivery delivery) {
        return net::asio::async_initiate<const net::asio::use_awaitable_t<>&, void(Result<store::Delivered>)>(
            [&store, delivery = std::move(delivery)](auto handler) mutable {
                auto shared = std::make_shared<decltype(handler)>(std::move(handler));
                store.deliver(std::move(delivery), [shared](Result<store::Delivered> result) {
                    auto ex = net::asio::get_associated_executor(*shared);
                    net::asio::post(ex, [shared, result = std::move(result)]() mutable {
                        (*shared)(std::move(result));
                    });
                });
            },
            net::asio::use_awaitable);
    }

    // Runs start(done) on the calling coroutine's thread and resumes once done() has been called, from any thread:
    // for work that completes by a callback (a JMAP method's group commit, http/api.h Deferred), so no pool
    // thread waits for it. start() must not block.
    static awaitable<void> until_done(std::function<void(std::function<void()>)> start) {
        return net::asio::async_initiate<const net::asio::use_awaitable_t<>&, void()>(
            [start = std::move(start)](auto handler) mutable {
                auto shared = std::make_shared<decltype(handler)>(std::move(handler));
                start([shared] {
                    auto ex = net::asio::get_associated_executor(*shared);
                    net::asio::post(ex, [shared]() mutable { (*shared)(); });
                });
            },
            net::asio::use_awaitable);
    }

    void stop() { pool_.join(); }

private:
    net::asio::thread_pool pool_;
};

}  // namespace magpie::server
