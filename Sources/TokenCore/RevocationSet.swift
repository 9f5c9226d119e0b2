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
        /// Login families (`lid` claim): every token of the login is void until `until`.
        var families: [UInt64: [Entry]] = [:]
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

    /// Revokes a token id unless it already is; false when it was (a refresh token presented
    /// twice: reuse). Check and insert are one step, so two concurrent uses cannot both win.
    public func revokeIfNew(jti: [UInt8], until expiry: Int64) -> Bool {
        let h = jti.withUnsafeBytes { Self.hash($0) }
        return state.withLock { s -> Bool in
            var list = s.jtis[h] ?? []
            if list.contains(where: { $0.bytes == jti }) { return false }
            list.append(Entry(bytes: jti, until: expiry))
            s.jtis[h] = list
            entries.add(1, ordering: .relaxed)
            return true
        }
    }

    /// Voids every token carrying this login family (`lid`) until `expiry` (refresh-token reuse).
    public func revoke(family: [UInt8], until expiry: Int64) {
        insert(family, until: expiry, table: \.families, keepLater: true)
    }

    /// Whether a single token id is revoked (reuse detection needs to tell this case apart).
    public func isRevoked(jti: UnsafeRawBufferPointer) -> Bool {
        if entries.load(ordering: .relaxed) == 0 { return false }
        let h = Self.hash(jti)
        return state.withLock { s in s.jtis[h]?.contains(where: { Self.equal($0.bytes, jti) }) ?? false }
    }

    private func insert(_ bytes: [UInt8], until: Int64, subjects: Bool, keepLater: Bool) {
        insert(bytes, until: until, table: subjects ? \.subjects : \.jtis, keepLater: keepLater)
    }

    private func insert(_ bytes: [UInt8], until: Int64, table: WritableKeyPath<State, [UInt64: [Entry]]>, keepLater: Bool) {
        let h = bytes.withUnsafeBytes { Self.hash($0) }
        state.withLock { s in
            var list = s[keyPath: table][h] ?? []
            if let i = list.firstIndex(where: { $0.bytes == bytes }) {
                if !keepLater || until > list[i].until { list[i].until = until }
            } else {
                list.append(Entry(bytes: bytes, until: until))
                entries.add(1, ordering: .relaxed)
            }
            s[keyPath: table][h] = list
        }
    }

    /// Why a token is refused, or nil when neither its `jti` nor its subject is revoked.
    @inline(__always)
    public func check(jti: UnsafeRawBufferPointer, subject: UnsafeRawBufferPointer, issuedAt: Int64,
                      family: UnsafeRawBufferPointer? = nil) -> TokenError? {
        if entries.load(ordering: .relaxed) == 0 { return nil }
        let hj = Self.hash(jti), hs = Self.hash(subject)
        return state.withLock { s -> TokenError? in
            if let list = s.jtis[hj], list.contains(where: { Self.equal($0.bytes, jti) }) { return .revoked }
            if let family, !family.isEmpty, let list = s.families[Self.hash(family)],
               list.contains(where: { Self.equal($0.bytes, family) }) { return .revoked }
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
            for (h, list) in s.families {
                let kept = list.filter { $0.until > now }
                removed += list.count - kept.count
                s.families[h] = kept.isEmpty ? nil : kept
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
