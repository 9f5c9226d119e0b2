import Foundation
import FuzzSupport
import Glibc
import TokenCore
@testable import Gateway

/// The revocation journal by its properties. Input byte 0: even, the rest is a journal file as
/// it is; odd, a journal is built from the rest as choices (JournalModel.swift: records with
/// right and wrong checksums, spelling variants, torn and CRLF lines).
/// - `parse` accepts exactly the lines an independent reader accepts: four fields separated by
///   runs of spaces (leading and trailing spaces allowed), a kind `jti|sub|lid`, canonical
///   base64url of at least one byte, a decimal Int64 with optional sign and leading zeros, and
///   the FNV-1a 32 checksum (8 lower-case hex digits) of the first three fields as written,
///   joined by single spaces. `format(parse(x))` is the canonical form: single spaces, no
///   sign or leading zero; it equals x (plus its line feed) exactly when x is canonical, and
///   `format(parse(format(parse(x)))) == format(parse(x))`.
/// - `replay` (on tmpfs) refuses exactly the files whose first line is not the v1 header, skips
///   with one note each the unreadable lines and a last line without its line feed, revokes
///   exactly the records read, and writes a compacted file that is the header plus the
///   canonical form of each record still live; replaying that file is clean (no note of a
///   skipped line), revokes the same, and rewrites it byte for byte; `compact` leaves it as is.
enum JournalFuzz {
    static let now: Int64 = 1_750_000_000
    static let dir: String = {
        // Folders of earlier runs that trapped (no atexit then) go first.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/dev/shm")) ?? [] where name.hasPrefix("gateway-fuzz-journal-") {
            if let pid = Int32(name.dropFirst(21)), kill(pid, 0) != 0 { removeDirectory("/dev/shm/" + name) }
        }
        let d = "/dev/shm/gateway-fuzz-journal-\(getpid())"
        mkdir(d, 0o700)
        atexit { removeDirectory(JournalFuzz.dir) }
        return d
    }()
    static func removeDirectory(_ d: String) {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: d)) ?? [] { unlink(d + "/" + name) }
        rmdir(d)
    }

    /// FUZZ_TRACE=1 in a replay prints each journal file.
    static let trace = ProcessInfo.processInfo.environment["FUZZ_TRACE"] != nil

    static func check(_ input: UnsafeRawBufferPointer) {
        guard let mode = input.first else { return }
        let rest = UnsafeRawBufferPointer(rebasing: input[1...])
        let file = mode & 1 == 0 ? Array(rest) : JournalModel.build(rest)
        if trace { FileHandle.standardError.write(Data((String(decoding: file, as: UTF8.self).debugDescription + "\n").utf8)) }
        let lines = file.split(separator: 0x0A, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        for line in lines { checkLine(line) }
        // FileManager.contents(atPath:) of an empty file leaks 4 KiB (FoundationEssentials'
        // readBytesFromFile; LeakSanitizer stops the run), so the empty journal is left to the
        // unit tests.
        if file.isEmpty { return }
        checkReplay(file, lines)
    }

    // MARK: One line

    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// Canonical unpadded base64url of at least one byte.
    static func isBase64URL(_ f: [UInt8]) -> Bool {
        guard !f.isEmpty, f.count % 4 != 1, let last = f.last.flatMap(alphabet.firstIndex(of:)),
              f.allSatisfy({ alphabet.contains($0) }) else { return false }
        return f.count % 4 == 0 || (f.count % 4 == 2 ? last & 0x0F == 0 : last & 0x03 == 0)
    }

    /// A decimal Int64 with an optional sign (leading zeros allowed), by hand.
    static func int64(_ f: [UInt8]) -> Int64? {
        var digits = f[...], negative = false
        if let s = digits.first, s == UInt8(ascii: "+") || s == UInt8(ascii: "-") { negative = s == UInt8(ascii: "-"); digits = digits.dropFirst() }
        guard !digits.isEmpty, digits.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
        var v: Int128 = 0
        for d in digits { v = min(v * 10 + Int128(d - 48), Int128(UInt64.max)) }
        if negative { v = -v }
        return v >= Int128(Int64.min) && v <= Int128(Int64.max) ? Int64(v) : nil
    }

    static func fnv(_ bytes: [UInt8]) -> String {
        var h: UInt32 = 0x811C_9DC5
        for b in bytes { h = (h ^ UInt32(b)) &* 0x0100_0193 }
        let hex = String(h, radix: 16)
        return String(repeating: "0", count: 8 - hex.count) + hex
    }

    /// The record an independent reading finds in `line`, and whether the line is canonical.
    static func read(_ line: String) -> (record: (RevocationJournal.Kind, [UInt8], Int64), canonical: Bool)? {
        let bytes = Array(line.utf8)
        let fields = bytes.split(separator: 0x20).map(Array.init)
        guard fields.count == 4, let kind = RevocationJournal.Kind(rawValue: String(decoding: fields[0], as: UTF8.self)),
              isBase64URL(fields[1]), let until = int64(fields[2]),
              Array(fnv(fields[0] + [0x20] + fields[1] + [0x20] + fields[2]).utf8) == fields[3] else { return nil }
        let canonical = bytes == fields.joined(separator: [0x20]).map { $0 } && fields[2] == Array(String(until).utf8)
        return ((kind, base64Decode(fields[1]), until), canonical)
    }

    static func foundationEncode(_ bytes: [UInt8]) -> String {
        String(Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .prefix { $0 != "=" })
    }

    static func base64Decode(_ f: [UInt8]) -> [UInt8] {
        var s = String(decoding: f.map { $0 == 0x2D ? 0x2B : $0 == 0x5F ? 0x2F : $0 }, as: UTF8.self)
        while s.utf8.count % 4 != 0 { s += "=" }
        return Array(Data(base64Encoded: s)!)
    }

    static func checkLine(_ line: String) {
        let parsed = RevocationJournal.parse(line), mine = read(line)
        precondition((parsed == nil) == (mine == nil), "parse \(parsed == nil ? "refused" : "accepted") \(line.debugDescription)")
        guard let (kind, bytes, until) = parsed, let mine else { return }
        precondition(kind == mine.record.0 && bytes == mine.record.1 && until == mine.record.2, "parse read \(line.debugDescription) wrong")
        let formatted = RevocationJournal.format(kind, bytes, until)
        precondition((formatted == line + "\n") == mine.canonical, "format gives \(formatted.debugDescription) for \(line.debugDescription)")
        guard formatted.hasSuffix("\n"), let again = RevocationJournal.parse(String(formatted.dropLast())) else {
            preconditionFailure("format(parse(x)) does not parse: \(formatted.debugDescription)")
        }
        precondition(RevocationJournal.format(again.0, again.1, again.2) == formatted, "format(parse(format(parse(x)))) moved")
    }

    // MARK: Replay

    static func checkReplay(_ file: [UInt8], _ lines: [String]) {
        let path = dir + "/revocations.journal"
        precondition(FileManager.default.createFile(atPath: path, contents: Data(file)))
        let complete = file.last == 0x0A
        var body = lines
        if complete { body.removeLast() }
        let first = set(), notes: [String]
        do { notes = try RevocationJournal(path: path).replay(into: first, now: now) } catch {
            precondition(!file.isEmpty && body.first != RevocationJournal.header, "refused a journal with its header: \(error)")
            return
        }
        precondition(file.isEmpty || body.first == RevocationJournal.header, "read a file that is not a v1 journal")

        // What an independent reading expects, line by line of bytes.
        var live: [(RevocationJournal.Kind, [UInt8], Int64)] = [], skipped = 0
        for (i, line) in body.enumerated().dropFirst() {
            guard let r = read(line), i < body.count - 1 || complete else { skipped += 1; continue }
            live.append(r.record)
        }
        let kept = live.filter { $0.0 == .sub || $0.2 > now }
        precondition(notes.filter { $0.contains("skipped") }.count == skipped, "\(skipped) lines to skip, notes: \(notes)")
        expectRevoked(first, live)
        let compacted = RevocationJournal.header + "\n" + kept.map { RevocationJournal.format($0.0, $0.1, $0.2) }.joined()
        let written = FileManager.default.contents(atPath: path).map { Array($0) }
        precondition(written == Array(compacted.utf8), "the compacted file is not the live records")

        let second = set()
        let clean = try! RevocationJournal(path: path).replay(into: second, now: now)
        precondition(!clean.contains { $0.contains("skipped") }, "the compacted file replays with skipped lines: \(clean)")
        expectRevoked(second, kept)
        precondition(FileManager.default.contents(atPath: path).map { Array($0) } == written, "a second replay rewrote differently")
        try! RevocationJournal(path: path).compact(now: now)
        precondition(FileManager.default.contents(atPath: path).map { Array($0) } == written, "compact changed a compacted file")
    }

    static func set() -> RevocationSet { RevocationSet() }

    /// `set` holds exactly the records: each (kind, bytes) once, at its latest time.
    static func expectRevoked(_ set: RevocationSet, _ records: [(RevocationJournal.Kind, [UInt8], Int64)]) {
        var latest: [String: (RevocationJournal.Kind, [UInt8], Int64)] = [:]
        for r in records {
            let key = r.0.rawValue + " " + Base64URL.encode(r.1)
            if let old = latest[key], old.2 >= r.2 { continue }
            latest[key] = r
        }
        precondition(set.count == latest.count, "\(set.count) revocations, expected \(latest.count)")
        let none = UnsafeRawBufferPointer(start: nil, count: 0)
        for (kind, bytes, until) in latest.values {
            bytes.withUnsafeBytes { b in
                switch kind {
                case .jti: precondition(set.isRevoked(jti: b), "jti not revoked")
                case .lid: precondition(set.check(jti: none, subject: none, issuedAt: 0, family: b) == .revoked, "family not revoked")
                case .sub:
                    precondition(set.check(jti: none, subject: b, issuedAt: until) == .revokedSubject, "subject cut-off missing")
                    if until < .max { precondition(set.check(jti: none, subject: b, issuedAt: until + 1) == nil, "subject cut-off too late") }
                }
            }
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    JournalFuzz.check(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

@main enum Main {
    static func main() { FuzzReplay.main(fuzzOne) }
}
