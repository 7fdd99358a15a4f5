// A SQLite VFS that hands the write-ahead log to the kernel in one write per commit instead of two per page.
//
// SQLite appends each WAL frame as two writes, its 24-byte header and then the page (sqlite3WalFrames); a
// commit of N pages is 2N pwrite calls, and each page write straddles two page-cache pages of the file (a
// frame is 4,120 bytes). Issue 17's ingest profile had those calls at a sixth of magpied's CPU. This VFS wraps
// the default one and, for WAL files only, holds back appends (a write that starts where the previous one
// ended) in a buffer, which goes to the file in one write before anything can depend on it:
//   - once the page of an appended commit frame is in it (the frame header's commit field, bytes 4-7, is not
//     zero: the WAL format of https://sqlite.org/fileformat2.html#walformat), so a commit's frames are on
//     file before SQLite publishes them to other connections (the wal-index header, written through the
//     database file's shared memory right after), whatever the synchronous setting;
//   - before any write that is not an append (SQLite rewriting frame headers in place goes straight through),
//     before the log's xRead, xSync, xTruncate, xFileSize, xFileControl, xClose and every other method;
//   - when it reaches kWalWriteBufferBytes.
// A failed write is reported by the call that flushed: the commit frame's own write fails the commit as a
// failed write would. Every other file (the database, journals) is the default VFS's own, unchanged.
//
// Use: sqlite3_open_v2(path, &db, flags, coalescing_wal_vfs()). Thread-safety is the connection's: a
// connection's files are used by one thread at a time (SQLITE_OPEN_NOMUTEX connections, as the store's).
#pragma once

#include <cstddef>
#include <cstdint>

namespace magpie::store::sqlite {

// The most bytes one WAL file holds back (15 frames of 4 KiB pages), allocated on its first write. The unix
// VFS writes at most 128 KiB - 1 bytes per call (seekAndWriteFd masks the count with 0x1ffff; a larger
// write comes back short, as SQLITE_FULL), so a commit of more than this is written in several.
inline constexpr std::size_t kWalWriteBufferBytes = 64 * 1024;

// The name of the VFS, registered with SQLite on the first call (not as the default); nullptr when SQLite
// has no default VFS to wrap (then callers open with the default one).
const char* coalescing_wal_vfs();

// Writes asked of WAL files through this VFS and writes made to them, process-wide (for tests and
// benchmarks: the ratio is the calls saved).
struct WalWriteCounts {
    std::uint64_t requested = 0;
    std::uint64_t issued = 0;
};
WalWriteCounts wal_write_counts();

}  // namespace magpie::store::sqlite
