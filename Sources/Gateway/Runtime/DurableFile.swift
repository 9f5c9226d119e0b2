import Foundation
import Glibc
import Synchronization
import TokenCore

/// Files the gateway keeps (the keys file, the revocation journal), written off the loops. Every
/// descriptor they need is opened and closed here.
enum DurableFile {
    /// Replaces `path` with `bytes` atomically: a 0600 temporary beside it, written whole and
    /// fsync'd, renamed over `path`, then the directory fsync'd so the rename survives a crash.
    static func replace(_ path: String, with bytes: [UInt8]) throws(FileError) {
        // A name of its own: two writers with one pid (pid 1 in two containers sharing the
        // directory) never meet, and one left by a crash never blocks the next.
        let tmp = path + ".tmp-\(getpid())-\(Crypto.hex(Crypto.randomBytes(6)))"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw FileError("cannot create", tmp) }
        do {
            try Syscall.writeAll(fd, bytes)
        } catch {
            Syscall.close(fd)
            unlink(tmp)
            throw FileError("cannot write", tmp, errno: error.errno)
        }
        let synced = fsync(fd) == 0
        let e = errno
        Syscall.close(fd)
        guard synced else { unlink(tmp); throw FileError("cannot fsync", tmp, errno: e) }
        guard rename(tmp, path) == 0 else {
            let e = errno
            unlink(tmp)
            throw FileError("cannot rename \(tmp) to", path, errno: e)
        }
        let dir = (path as NSString).deletingLastPathComponent
        let d = open(dir.isEmpty ? "." : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if d >= 0 { fsync(d); Syscall.close(d) }
    }

    /// Runs `body` holding an exclusive advisory lock on `lockPath` (created 0600); nil, without
    /// running it, when another process holds the lock.
    static func withExclusiveLock<T>(_ lockPath: String, _ body: () throws -> T) throws -> T? {
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw FileError("cannot open", lockPath) }
        defer { Syscall.close(fd) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { return nil }
        defer { flock(fd, LOCK_UN) }
        return try body()
    }
}

/// A file appended to record by record, each record written whole and fsync'd before `append`
/// returns (the revocation journal). Opened on the first append; `rewrite` swaps in new contents
/// atomically under the same lock, and the next append opens the new file.
final class AppendOnlyFile: Sendable {
    let path: String
    private let fd = Mutex<Int32>(-1)

    init(path: String) { self.path = path }

    deinit { fd.withLock { if $0 >= 0 { Syscall.close($0) } } }

    func append(_ record: [UInt8]) throws(FileError) {
        try fd.withLock { (fd: inout Int32) throws(FileError) in
            // Replaced by another process (the CLI's `revoke` writing it while no gateway
            // answered): appends go to the file at `path`, never to the unlinked old one.
            if fd >= 0 && !Self.isStill(fd, path) {
                Syscall.close(fd)
                fd = -1
            }
            if fd < 0 {
                fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
                guard fd >= 0 else { throw FileError("cannot open", path) }
            }
            do throws(SystemError) { try Syscall.writeAll(fd, record) } catch { throw FileError("cannot write", path, errno: error.errno) }
            guard fsync(fd) == 0 else { throw FileError("cannot fsync", path) }
        }
    }

    /// `fd` is the file now at `path` (same device and inode).
    private static func isStill(_ fd: Int32, _ path: String) -> Bool {
        var open = stat(), named = stat()
        guard fstat(fd, &open) == 0, stat(path, &named) == 0 else { return false }
        return open.st_dev == named.st_dev && open.st_ino == named.st_ino
    }

    /// Replaces the contents with `transform(current contents)` (nil when the file is missing),
    /// holding off appends meanwhile; nothing changes when `transform` returns nil.
    func rewrite(_ transform: ([UInt8]?) throws -> [UInt8]?) throws {
        try fd.withLock { fd in
            let current = FileManager.default.contents(atPath: path).map { [UInt8]($0) }
            guard let next = try transform(current) else { return }
            try DurableFile.replace(path, with: next)
            if fd >= 0 { Syscall.close(fd); fd = -1 }  // reopened on the next append
        }
    }
}

/// A file operation that failed, with the path and the reason.
struct FileError: Error, CustomStringConvertible {
    let description: String

    init(_ what: String, _ path: String, errno e: Int32 = errno) {
        description = "\(what) \(path): \(String(cString: strerror(e)))"
    }
}
