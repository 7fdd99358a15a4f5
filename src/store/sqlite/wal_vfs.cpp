#include "store/sqlite/wal_vfs.h"

#include <sqlite3.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>

namespace magpie::store::sqlite {
namespace {

constexpr const char* kVfsName = "magpie-wal";
// A WAL frame header (WAL format): page number, commit size (the database's size in pages after a commit,
// zero on every other frame), two salts and two checksums, big-endian 32-bit words.
constexpr int kFrameHeaderBytes = 24;

std::atomic<std::uint64_t> requested_writes{0};
std::atomic<std::uint64_t> issued_writes{0};

sqlite3_vfs* base_vfs = nullptr;  // the default VFS this one wraps (unix on Linux)
sqlite3_vfs wal_vfs{};

// A WAL file: ours in front, the default VFS's own object (base_vfs->szOsFile bytes) right behind it.
struct WalFile {
    sqlite3_file file;  // first: SQLite sees a WalFile* as a sqlite3_file*
    sqlite3_file* real = nullptr;
    std::unique_ptr<char[]> buffer;  // kWalWriteBufferBytes once the first write comes
    std::size_t used = 0;
    sqlite3_int64 start = 0;          // the file offset of buffer[0]
    sqlite3_int64 last_end = -1;      // where the last write ended (-1: none yet)
    bool commit_header_last = false;  // the last write was an appended commit frame header: its page comes next
};

constexpr std::size_t kWalFileBytes = (sizeof(WalFile) + 15) & ~std::size_t{15};

WalFile* wal(sqlite3_file* file) { return reinterpret_cast<WalFile*>(file); }

int flush(WalFile* f) {
    if (f->used == 0) return SQLITE_OK;
    int rc = f->real->pMethods->xWrite(f->real, f->buffer.get(), static_cast<int>(f->used), f->start);
    issued_writes.fetch_add(1, std::memory_order_relaxed);
    // Written or failed: the caller reports the outcome. What is held is appended frames only, so a failure
    // loses frames of no published commit (a commit's frames are written out before it is published).
    f->used = 0;
    return rc;
}

bool is_commit_header(const void* data, int amount) {
    if (amount != kFrameHeaderBytes) return false;
    const auto* bytes = static_cast<const unsigned char*>(data);
    return (bytes[4] | bytes[5] | bytes[6] | bytes[7]) != 0;
}

// Only appends are held back: a write that starts where the one before it ended (SQLite appending frames,
// or the first frame after the log's header). Any other write goes to the file at once, after what is held:
// SQLite rewrites earlier frame headers in place when a transaction that spilled pages into the log changes
// one of them again (wal.c, walRewriteChecksums), the commit frame's header last, with no page after it and
// nothing else on the log before the commit is published.
int wal_write(sqlite3_file* file, const void* data, int amount, sqlite3_int64 offset) {
    WalFile* f = wal(file);
    requested_writes.fetch_add(1, std::memory_order_relaxed);
    const bool commit_page = f->commit_header_last;
    f->commit_header_last = false;
    const auto size = static_cast<std::size_t>(amount);
    const bool appends = offset == f->last_end;
    f->last_end = offset + amount;
    if (!appends || f->used + size > kWalWriteBufferBytes) {
        if (int rc = flush(f); rc != SQLITE_OK) return rc;
    }
    if (!appends || size > kWalWriteBufferBytes) {
        issued_writes.fetch_add(1, std::memory_order_relaxed);
        return f->real->pMethods->xWrite(f->real, data, amount, offset);
    }
    if (!f->buffer) f->buffer = std::make_unique<char[]>(kWalWriteBufferBytes);
    if (f->used == 0) f->start = offset;
    std::memcpy(f->buffer.get() + f->used, data, size);
    f->used += size;
    // The commit frame complete: on file before SQLite can publish it (the wal-index header it writes next).
    if (commit_page) return flush(f);
    f->commit_header_last = is_commit_header(data, amount);
    return SQLITE_OK;
}

int wal_close(sqlite3_file* file) {
    WalFile* f = wal(file);
    int flushed = flush(f);
    int rc = f->real->pMethods->xClose(f->real);
    f->~WalFile();
    return flushed != SQLITE_OK ? flushed : rc;
}

// Every method but xWrite and xClose: the buffer goes to the file first, then the default VFS answers.
int wal_read(sqlite3_file* file, void* data, int amount, sqlite3_int64 offset) {
    WalFile* f = wal(file);
    if (int rc = flush(f); rc != SQLITE_OK) return rc;
    return f->real->pMethods->xRead(f->real, data, amount, offset);
}

int wal_truncate(sqlite3_file* file, sqlite3_int64 size) {
    WalFile* f = wal(file);
    if (int rc = flush(f); rc != SQLITE_OK) return rc;
    return f->real->pMethods->xTruncate(f->real, size);
}

int wal_sync(sqlite3_file* file, int flags) {
    WalFile* f = wal(file);
    if (int rc = flush(f); rc != SQLITE_OK) return rc;
    return f->real->pMethods->xSync(f->real, flags);
}

int wal_file_size(sqlite3_file* file, sqlite3_int64* size) {
    WalFile* f = wal(file);
    if (int rc = flush(f); rc != SQLITE_OK) return rc;
    return f->real->pMethods->xFileSize(f->real, size);
}

int wal_lock(sqlite3_file* file, int level) {
    WalFile* f = wal(file);
    if (int rc = flush(f); rc != SQLITE_OK) return rc;
    return f->real->pMethods->xLock(f->real, level);
}

int wal_unlock(sqlite3_file* file, int level) {
    WalFile* f = wal(file);
    if (int rc = flush(f); rc != SQLITE_OK) return rc;
    return f->real->pMethods->xUnlock(f->real, level);
}

int wal_check_reserved_lock(sqlite3_file* file, int* out) {
    WalFile* f = wal(file);
    if (int rc = flush(f); rc != SQLITE_OK) return rc;
    return f->real->pMethods->xCheckReservedLock(f->real, out);
}

int wal_file_control(sqlite3_file* file, int op, void* arg) {
    WalFile* f = wal(file);
    if (int rc = flush(f); rc != SQLITE_OK) return rc;
    return f->real->pMethods->xFileControl(f->real, op, arg);
}

int wal_sector_size(sqlite3_file* file) { return wal(file)->real->pMethods->xSectorSize(wal(file)->real); }

int wal_device_characteristics(sqlite3_file* file) {
    return wal(file)->real->pMethods->xDeviceCharacteristics(wal(file)->real);
}

int wal_shm_map(sqlite3_file* file, int region, int size, int extend, void volatile** out) {
    WalFile* f = wal(file);
    if (int rc = flush(f); rc != SQLITE_OK) return rc;
    return f->real->pMethods->xShmMap(f->real, region, size, extend, out);
}

int wal_shm_lock(sqlite3_file* file, int offset, int n, int flags) {
    WalFile* f = wal(file);
    if (int rc = flush(f); rc != SQLITE_OK) return rc;
    return f->real->pMethods->xShmLock(f->real, offset, n, flags);
}

void wal_shm_barrier(sqlite3_file* file) {  // SQLite calls the shm methods on the database file, never the log
    WalFile* f = wal(file);
    (void)flush(f);
    f->real->pMethods->xShmBarrier(f->real);
}

int wal_shm_unmap(sqlite3_file* file, int remove) {
    WalFile* f = wal(file);
    if (int rc = flush(f); rc != SQLITE_OK) return rc;
    return f->real->pMethods->xShmUnmap(f->real, remove);
}

int wal_fetch(sqlite3_file* file, sqlite3_int64 offset, int amount, void** out) {
    WalFile* f = wal(file);
    *out = nullptr;
    if (int rc = flush(f); rc != SQLITE_OK) return rc;
    return f->real->pMethods->xFetch(f->real, offset, amount, out);
}

int wal_unfetch(sqlite3_file* file, sqlite3_int64 offset, void* page) {
    return wal(file)->real->pMethods->xUnfetch(wal(file)->real, offset, page);
}

// Version 3, as the unix VFS's: the shared-memory and fetch methods are forwarded whether used or not.
const sqlite3_io_methods kWalMethods = {
    3,
    wal_close,
    wal_read,
    wal_write,
    wal_truncate,
    wal_sync,
    wal_file_size,
    wal_lock,
    wal_unlock,
    wal_check_reserved_lock,
    wal_file_control,
    wal_sector_size,
    wal_device_characteristics,
    wal_shm_map,
    wal_shm_lock,
    wal_shm_barrier,
    wal_shm_unmap,
    wal_fetch,
    wal_unfetch,
};

int vfs_open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* file, int flags, int* out_flags) {
    if ((flags & SQLITE_OPEN_WAL) == 0) {
        // Not a log: the default VFS's object in our slot (szOsFile covers it), its methods unchanged.
        return base_vfs->xOpen(base_vfs, name, file, flags, out_flags);
    }
    auto* f = new (file) WalFile;
    f->real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(file) + kWalFileBytes);
    int rc = base_vfs->xOpen(base_vfs, name, f->real, flags, out_flags);
    if (rc != SQLITE_OK) {
        if (f->real->pMethods != nullptr) f->real->pMethods->xClose(f->real);
        f->~WalFile();
        file->pMethods = nullptr;
        return rc;
    }
    f->file.pMethods = &kWalMethods;
    return SQLITE_OK;
}

// The rest of the VFS is the default one's.
int vfs_delete(sqlite3_vfs*, const char* name, int sync_dir) { return base_vfs->xDelete(base_vfs, name, sync_dir); }
int vfs_access(sqlite3_vfs*, const char* name, int flags, int* out) {
    return base_vfs->xAccess(base_vfs, name, flags, out);
}
int vfs_full_pathname(sqlite3_vfs*, const char* name, int size, char* out) {
    return base_vfs->xFullPathname(base_vfs, name, size, out);
}
void* vfs_dl_open(sqlite3_vfs*, const char* name) { return base_vfs->xDlOpen(base_vfs, name); }
void vfs_dl_error(sqlite3_vfs*, int size, char* out) { base_vfs->xDlError(base_vfs, size, out); }
void (*vfs_dl_sym(sqlite3_vfs*, void* handle, const char* symbol))(void) {
    return base_vfs->xDlSym(base_vfs, handle, symbol);
}
void vfs_dl_close(sqlite3_vfs*, void* handle) { base_vfs->xDlClose(base_vfs, handle); }
int vfs_randomness(sqlite3_vfs*, int size, char* out) { return base_vfs->xRandomness(base_vfs, size, out); }
int vfs_sleep(sqlite3_vfs*, int micros) { return base_vfs->xSleep(base_vfs, micros); }
int vfs_current_time(sqlite3_vfs*, double* out) { return base_vfs->xCurrentTime(base_vfs, out); }
int vfs_get_last_error(sqlite3_vfs*, int size, char* out) { return base_vfs->xGetLastError(base_vfs, size, out); }
int vfs_current_time_int64(sqlite3_vfs*, sqlite3_int64* out) { return base_vfs->xCurrentTimeInt64(base_vfs, out); }
int vfs_set_system_call(sqlite3_vfs*, const char* name, sqlite3_syscall_ptr call) {
    return base_vfs->xSetSystemCall(base_vfs, name, call);
}
sqlite3_syscall_ptr vfs_get_system_call(sqlite3_vfs*, const char* name) {
    return base_vfs->xGetSystemCall(base_vfs, name);
}
const char* vfs_next_system_call(sqlite3_vfs*, const char* name) { return base_vfs->xNextSystemCall(base_vfs, name); }

}  // namespace

const char* coalescing_wal_vfs() {
    static std::once_flag once;
    static const char* registered = nullptr;
    std::call_once(once, [] {
        base_vfs = sqlite3_vfs_find(nullptr);
        if (base_vfs == nullptr || base_vfs->iVersion < 3) return;
        wal_vfs.iVersion = 3;
        wal_vfs.szOsFile = static_cast<int>(kWalFileBytes + static_cast<std::size_t>(base_vfs->szOsFile));
        wal_vfs.mxPathname = base_vfs->mxPathname;
        wal_vfs.zName = kVfsName;
        wal_vfs.xOpen = vfs_open;
        wal_vfs.xDelete = vfs_delete;
        wal_vfs.xAccess = vfs_access;
        wal_vfs.xFullPathname = vfs_full_pathname;
        wal_vfs.xDlOpen = vfs_dl_open;
        wal_vfs.xDlError = vfs_dl_error;
        wal_vfs.xDlSym = vfs_dl_sym;
        wal_vfs.xDlClose = vfs_dl_close;
        wal_vfs.xRandomness = vfs_randomness;
        wal_vfs.xSleep = vfs_sleep;
        wal_vfs.xCurrentTime = vfs_current_time;
        wal_vfs.xGetLastError = vfs_get_last_error;
        wal_vfs.xCurrentTimeInt64 = vfs_current_time_int64;
        wal_vfs.xSetSystemCall = vfs_set_system_call;
        wal_vfs.xGetSystemCall = vfs_get_system_call;
        wal_vfs.xNextSystemCall = vfs_next_system_call;
        if (sqlite3_vfs_register(&wal_vfs, 0) == SQLITE_OK) registered = kVfsName;
    });
    return registered;
}

WalWriteCounts wal_write_counts() {
    return WalWriteCounts{requested_writes.load(std::memory_order_relaxed), issued_writes.load(std::memory_order_relaxed)};
}

}  // namespace magpie::store::sqlite
