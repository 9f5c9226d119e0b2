import Synchronization

/// Revoked tokens, shared by every thread: single `jti`s until their expiry (logout), and
/// per-user cut-offs ("every token of this user issued at or before T is void").
///
/// Look-ups take a lock only when something is revoked at all, and hash the bytes they are given,
/// so the request path neither allocates nor builds a String. Persistence (the journal) is a
/// layer above: this set is what the verifier consults.
public final class RevocationSet: Sendable {
    private struct Entry {
        var bytes: [UInt8]
        var until: Int64
    }

    private struct State {
        var jtis: [UInt64: [Entry]] = [:]
        /// `until` here is the cut-off: tokens with `iat <= until` are void.
        var subjects: [UInt64: [Entry]] = [:]
    }

    private let state = Mutex(State())
    private let entries = Atomic<Int>(0)

    public init() {}

    /// Number of entries held (revoked jtis plus user cut-offs).
    public var count: Int { entries.load(ordering: .relaxed) }

    /// Revokes one token id until `expiry` (after which the token is refused as expired anyway).
    public func revoke(jti: [UInt8], until expiry: Int64) {
        insert(jti, until: expiry, subjects: false, keepLater: true)
    }

    /// Voids every token of `subject` issued at or before `cutoff` (Unix seconds). A later
    /// cut-off replaces an earlier one.
    public func revoke(subject: [UInt8], issuedAtOrBefore cutoff: Int64) {
        insert(subject, until: cutoff, subjects: true, keepLater: true)
    }

    private func insert(_ bytes: [UInt8], until: Int64, subjects: Bool, keepLater: Bool) {
        let h = bytes.withUnsafeBytes { Self.hash($0) }
        state.withLock { s in
            var list = (subjects ? s.subjects[h] : s.jtis[h]) ?? []
            if let i = list.firstIndex(where: { $0.bytes == bytes }) {
                if !keepLater || until > list[i].until { list[i].until = until }
            } else {
                list.append(Entry(bytes: bytes, until: until))
                entries.add(1, ordering: .relaxed)
            }
            if subjects { s.subjects[h] = list } else { s.jtis[h] = list }
        }
    }

    /// Why a token is refused, or nil when neither its `jti` nor its subject is revoked.
    @inline(__always)
    public func check(jti: UnsafeRawBufferPointer, subject: UnsafeRawBufferPointer, issuedAt: Int64) -> TokenError? {
        if entries.load(ordering: .relaxed) == 0 { return nil }
        let hj = Self.hash(jti), hs = Self.hash(subject)
        return state.withLock { s -> TokenError? in
            if let list = s.jtis[hj], list.contains(where: { Self.equal($0.bytes, jti) }) { return .revoked }
            if let list = s.subjects[hs], let e = list.first(where: { Self.equal($0.bytes, subject) }), issuedAt <= e.until {
                return .revokedSubject
            }
            return nil
        }
    }

    /// Drops `jti` entries whose token has expired by `now`; subject cut-offs older than
    /// `now - maxLifetime` can no longer match a valid token and go too. Returns how many went.
    @discardableResult
    public func purge(now: Int64, maxLifetime: Int64) -> Int {
        state.withLock { s -> Int in
            var removed = 0
            for (h, list) in s.jtis {
                let kept = list.filter { $0.until > now }
                removed += list.count - kept.count
                s.jtis[h] = kept.isEmpty ? nil : kept
            }
            for (h, list) in s.subjects {
                let kept = list.filter { $0.until > now - maxLifetime }
                removed += list.count - kept.count
                s.subjects[h] = kept.isEmpty ? nil : kept
            }
            entries.subtract(removed, ordering: .relaxed)
            return removed
        }
    }

    /// FNV-1a, 64 bit: the table key; collisions are settled by comparing the bytes.
    @inline(__always)
    static func hash(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return h
    }

    @inline(__always)
    static func equal(_ a: [UInt8], _ b: UnsafeRawBufferPointer) -> Bool {
        a.count == b.count && a.withUnsafeBytes { $0.elementsEqual(b) }
    }
}
