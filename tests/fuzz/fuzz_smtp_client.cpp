// Fuzzes smtp::ClientSession (and so its ReplyReader) with arbitrary server bytes, cut into feeds of
// input-chosen sizes, with messages queued up front. Checks what the delivery side relies on: every
// enqueued message gets exactly one result with one entry per recipient, result texts are one bounded
// line, transcripts and output pieces stay bounded, nothing happens after the session ends, and how the
// peer's stream is cut never changes the outcome.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <utility>

#include "smtp/client_session.h"

namespace {

using namespace magpie;
using namespace magpie::smtp;

void check_at(bool condition, int line) {
    if (condition) return;
    std::fprintf(stderr, "check failed at line %d\n", line);
    std::abort();
}
#define check(condition) check_at((condition), __LINE__)

struct Rng {
    std::uint32_t state;
    std::uint32_t next() {
        state = state * 1103515245u + 12345u;
        return (state >> 16) & 0x7fff;
    }
};

OutgoingMessage make_message(int n) {
    OutgoingMessage m;
    m.id = "m" + std::to_string(n);
    m.reverse_path = n == 2 ? "" : "alice@example.test";
    m.recipients.push_back(OutgoingRecipient{"bob@example.org", "SUCCESS,FAILURE", "rfc822;bob@example.org"});
    if (n != 1) m.recipients.push_back(OutgoingRecipient{"carol@example.org", "", ""});
    if (n == 1) m.recipients.push_back(OutgoingRecipient{"j\xc3\xb6rg@example.org", "", ""});
    static const char* bodies[] = {
        "Subject: one\r\n\r\n.hello\r\n",
        ("Subject: two\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
         "caf\xc3\xa9\r\n.\r\n"),
        "Subject: caf\xc3\xa9\r\n\r\nbare\nline ends\r",
    };
    m.data = bodies[n % 3];
    m.dsn_ret = n == 0 ? "HDRS" : "";
    m.dsn_envid = n == 0 ? "ENV+2B1" : "";
    return m;
}

constexpr int kMessages = 3;

// One session over `input`. Feeds pieces of random sizes (or everything at once when `whole`); with `chaos`
// also answers TLS requests, fails the connection and queues more at random.
std::pair<std::string, std::string> run(std::string_view input, const ClientConfig& config,
                                        std::uint32_t seed, bool whole, bool chaos) {
    ClientSession session(config);
    Rng pieces{seed ^ 0x5a5a5a5au};
    std::map<std::string, int> answered;
    int enqueued = 0;
    for (; enqueued < kMessages; ++enqueued) session.enqueue(make_message(enqueued));
    if (!chaos) session.quit();
    bool disconnected = false;
    // Written bytes and events apart: how they interleave depends on how the input was cut.
    std::string written;
    std::string transcript;
    auto drain = [&] {
        while (session.has_output()) {
            std::string out = session.take_output();
            check(!out.empty());
            check(out.size() <= 2 * config.limits.max_output_chunk + 4096);
            written += out;
        }
        while (auto event = session.poll_event()) {
            check(!disconnected);
            if (auto* result = std::get_if<MessageResult>(&*event)) {
                check(++answered[result->id] == 1);
                check(!result->recipients.empty());
                for (const RecipientResult& r : result->recipients) {
                    check(r.text.find_first_of("\r\n") == std::string::npos);
                    check(r.text.size() <= 1003);
                    check(r.code == 0 || (r.code >= 200 && r.code <= 559));
                    check(r.enhanced.empty() || r.enhanced[0] == '2' || r.enhanced[0] == '4' ||
                          r.enhanced[0] == '5');
                    if (r.outcome == Outcome::delivered) check(r.code >= 200 && r.code < 300);
                }
                check(result->transcript.size() <= 2 * config.limits.max_transcript + 64);
                transcript += "[result " + result->id + "]";
                for (const RecipientResult& r : result->recipients)
                    transcript += std::to_string(static_cast<int>(r.outcome)) + r.text;
            } else if (std::holds_alternative<TlsHandshake>(*event)) {
                transcript += "[tls]";
                if (chaos && pieces.next() % 2 == 0) session.tls_started();
            } else if (std::holds_alternative<Idle>(*event)) {
                transcript += "[idle]";
                // (A message queued after the end is answered at once, after the Disconnect: legal, but
                // this harness checks that nothing follows Disconnect.)
                if (chaos && pieces.next() % 3 == 0 && enqueued < 6 && !session.closed()) {
                    session.enqueue(make_message(enqueued++));
                } else if (chaos) {
                    session.quit();
                }
            } else {
                transcript += "[disconnect]";
                disconnected = true;
            }
        }
    };
    drain();
    while (!input.empty() && !session.closed()) {
        std::size_t piece = whole ? input.size() : 1 + pieces.next() % 64;
        if (piece > input.size()) piece = input.size();
        session.feed(input.substr(0, piece));
        input.remove_prefix(piece);
        drain();
        if (chaos && pieces.next() % 211 == 0) session.connection_failed("fuzz reset");
        drain();
    }
    session.connection_failed("end of input");
    drain();
    // Every message queued got exactly one answer.
    check(static_cast<int>(answered.size()) == enqueued);
    return {written, transcript};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
    if (size < 2) return 0;
    std::string_view input(reinterpret_cast<const char*>(bytes), size);
    const auto flags = static_cast<unsigned char>(input[0]);
    const auto seed = static_cast<unsigned char>(input[1]);
    input.remove_prefix(2);

    ClientConfig config;
    config.helo_name = "client.fuzz.test";
    config.peer_name = "mx.fuzz.test[192.0.2.1]";
    config.limits.reply.max_line = 256;
    config.limits.reply.max_lines = 20;
    config.limits.max_transcript = 2048;
    config.limits.max_recipients_per_transaction = 1 + (flags >> 6);
    config.limits.bdat_chunk_size = 16;
    config.limits.max_output_chunk = 32;
    config.use_pipelining = (flags & 1) != 0;
    config.use_chunking = (flags & 2) != 0;
    config.tls = (flags & 4) != 0 ? TlsMode::required : TlsMode::opportunistic;
    config.tls_active = (flags & 8) != 0;
    if ((flags & 16) != 0) config.auth = ClientCredentials{"alice", "secret"};

    if ((flags & 32) != 0) {
        (void)run(input, config, seed, false, true);
    } else {
        // How the peer's bytes are cut must never change a result or an event. Fed at once, replies after a
        // failure may drop commands that were still unwritten (a failing session writes nothing more), so
        // the bytes written are a prefix of those written piece by piece.
        auto [pieces_written, pieces_events] = run(input, config, seed, false, false);
        auto [whole_written, whole_events] = run(input, config, seed, true, false);
        check(pieces_events == whole_events);
        check(std::string_view(pieces_written).starts_with(whole_written));
    }
    return 0;
}
