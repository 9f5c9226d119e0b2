import Foundation
import Glibc
import Synchronization
import TokenCore

/// Revocations on disk, so a restart does not bring revoked tokens back: an append-only text
/// file in data_dir, one record a line, each fsync'd before the revocation is acknowledged.
///
///     # gateway revocation journal v1
///     jti <base64url id> <until> <fnv32 hex>
///     sub <base64url subject> <cut-off> <fnv32 hex>
///     lid <base64url login id> <until> <fnv32 hex>
///
/// Replayed at start; a last line without its newline or with a wrong checksum (a write torn by
/// a crash) is skipped with a log line, never fatal; a header of a newer version is refused with
/// a clear error. Compaction (expired records dropped) rewrites the file atomically at start.
/// Writes happen on the blocking pool, never on a loop.
final class RevocationJournal: Sendable {
    enum Kind: String, Sendable { case jti, sub, lid }

    static let header = "# gateway revocation journal v1"
    let path: String
    private let file: AppendOnlyFile
    private let appends = Atomic<Int>(0)
    /// Compaction runs after this many appends (on the blocking pool, like the appends).
    let compactEvery: Int

    init(path: String, compactEvery: Int = 1000) {
        self.path = path
        self.file = AppendOnlyFile(path: path)
        self.compactEvery = compactEvery
    }

    /// Reads the journal into `set`, then compacts it. Returns notes for the log.
    func replay(into set: RevocationSet, now: Int64) throws -> [String] {
        var notes: [String] = []
        var live: [(Kind, [UInt8], Int64)] = []
        if let data = FileManager.default.contents(atPath: path), !data.isEmpty {
            // Split on line-feed bytes, not Characters: "\r\n" is one Character, and a line
            // ending in CR would swallow the record after it.
            let bytes = Array(data)
            var lines = bytes.split(separator: 0x0A, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
            let complete = bytes.last == 0x0A
            if complete { lines.removeLast() }
            guard let first = lines.first else { return notes }
            if first != Self.header {
                if first.hasPrefix("# gateway revocation journal v") {
                    throw StartupError("\(path) is a revocation journal of a newer format (\(first.dropFirst(2))); this gateway reads v1 only")
                }
                throw StartupError("\(path) is not a revocation journal (first line \"\(first.prefix(60))\")")
            }
            for (i, line) in lines.enumerated().dropFirst() {
                let isLast = i == lines.count - 1
                guard let record = Self.parse(line) else {
                    if isLast && !complete {
                        notes.append("revocation journal: skipped a torn last record (line \(i + 1))")
                    } else {
                        notes.append("revocation journal: skipped an unreadable record at line \(i + 1)")
                    }
                    continue
                }
                if isLast && !complete { notes.append("revocation journal: skipped a torn last record (line \(i + 1))"); continue }
                live.append(record)
            }
        }
        for (kind, bytes, until) in live {
            switch kind {
            case .jti: set.revoke(jti: bytes, until: until)
            case .sub: set.revoke(subject: bytes, issuedAtOrBefore: until)
            case .lid: set.revoke(family: bytes, until: until)
            }
        }
        // Compact: keep what can still match a token (subject cut-offs are kept: they are few).
        let kept = live.filter { $0.0 == .sub || $0.2 > now }
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty { try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        try file.rewrite { _ in Self.contents(kept) }
        if !live.isEmpty { notes.append("revocation journal: \(live.count) record(s) replayed, \(kept.count) kept") }
        return notes
    }

    /// Appends and fsyncs one record (blocking: call on the blocking pool).
    func append(_ kind: Kind, _ bytes: [UInt8], until: Int64) throws {
        let line = Array(Self.format(kind, bytes, until).utf8)
        do { try file.append(line) } catch { throw StartupError("\(error)") }
        if appends.add(1, ordering: .relaxed).newValue % compactEvery == 0 { try compact(now: Int64(Date().timeIntervalSince1970)) }
    }

    /// Drops expired records while running: reads the file, keeps what can still match, and
    /// swaps the rewrite in atomically, holding the append lock meanwhile.
    func compact(now: Int64) throws {
        try file.rewrite { data in
            guard let data else { return nil }
            let lines = String(decoding: data, as: UTF8.self).split(separator: "\n").dropFirst()
            let kept = lines.compactMap { Self.parse(String($0)) }.filter { $0.0 == .sub || $0.2 > now }
            return Self.contents(kept)
        }
    }

    /// The whole file: the header, then one line per record.
    private static func contents(_ records: [(Kind, [UInt8], Int64)]) -> [UInt8] {
        var text = header + "\n"
        for (k, b, u) in records { text += format(k, b, u) }
        return Array(text.utf8)
    }

    static func format(_ kind: Kind, _ bytes: [UInt8], _ until: Int64) -> String {
        let body = "\(kind.rawValue) \(Base64URL.encode(bytes)) \(until)"
        return body + " " + checksum(body) + "\n"
    }

    static func parse(_ line: String) -> (Kind, [UInt8], Int64)? {
        let parts = line.split(separator: " ")
        guard parts.count == 4, let kind = Kind(rawValue: String(parts[0])), let bytes = Base64URL.decode(parts[1]), !bytes.isEmpty,
              let until = Int64(parts[2]), String(parts[3]) == checksum(parts[0...2].joined(separator: " ")) else { return nil }
        return (kind, bytes, until)
    }

    /// FNV-1a 32 of the record text, in hex: detects a record torn or changed on disk.
    static func checksum(_ text: String) -> String {
        var h: UInt32 = 0x811c_9dc5
        for b in text.utf8 { h = (h ^ UInt32(b)) &* 0x0100_0193 }
        let hex = String(h, radix: 16)
        return String(repeating: "0", count: 8 - hex.count) + hex
    }
}
