import Synchronization

/// Failed-login counters per client address and per username, shared by all workers (a client's
/// connections land on any of them). A key with `limit` failures inside the window is refused
/// until the window ends. Memory is bounded: past `maxEntries`, expired entries go first, then
/// the oldest.
final class LoginThrottle: Sendable {
    private struct Counter {
        var failures: Int
        var windowStart: UInt64
    }

    private struct State {
        var addresses: [PeerKey: Counter] = [:]
        var users: [[UInt8]: Counter] = [:]
    }

    struct PeerKey: Hashable, Sendable {
        let high: UInt64
        let low: UInt64
    }

    private let state = Mutex(State())
    let maxPerAddress: Int
    let maxPerUser: Int
    let windowMs: UInt64
    let maxEntries: Int

    init(maxPerAddress: Int, maxPerUser: Int, windowMs: UInt64, maxEntries: Int) {
        self.maxPerAddress = maxPerAddress
        self.maxPerUser = maxPerUser
        self.windowMs = windowMs
        self.maxEntries = maxEntries
    }

    var trackedCount: Int { state.withLock { $0.addresses.count + $0.users.count } }

    /// Milliseconds until the address and the user may both try again (0: now).
    private func waitMs(_ s: State, address: PeerKey, user: [UInt8]?, now: UInt64) -> UInt64 {
        var wait: UInt64 = 0
        if let c = s.addresses[address], now - c.windowStart < windowMs, c.failures >= maxPerAddress {
            wait = max(wait, c.windowStart + windowMs - now)
        }
        if let user, let c = s.users[user], now - c.windowStart < windowMs, c.failures >= maxPerUser {
            wait = max(wait, c.windowStart + windowMs - now)
        }
        return wait
    }

    /// Admits one login attempt: the seconds to wait when the address or the user is throttled,
    /// else nil, and the attempt is counted as a failure at once, under the same lock as the
    /// check — so concurrent attempts cannot all slip in while their password checks run. A
    /// success gives the count back (`succeeded`). `user` nil: the address alone counts (a
    /// sign-in with an identity provider's token names no user before it is verified).
    func admit(address: PeerKey, user: [UInt8]?, now: UInt64) -> Int? {
        state.withLock { s -> Int? in
            let wait = waitMs(s, address: address, user: user, now: now)
            if wait > 0 { return Int((wait + 999) / 1000) }
            Self.bump(&s.addresses, address, now: now, window: windowMs)
            if let user { Self.bump(&s.users, user, now: now, window: windowMs) }
            if s.addresses.count + s.users.count > maxEntries { evict(&s, now: now) }
            return nil
        }
    }

    /// The admitted attempt was right: the user's count is cleared and the address's attempt is
    /// given back (one success does not excuse a spray of failures from the same place).
    func succeeded(address: PeerKey, user: [UInt8]?) {
        state.withLock { s in
            if let user { s.users.removeValue(forKey: user) }
            if var c = s.addresses[address], c.failures > 0 {
                c.failures -= 1
                s.addresses[address] = c
            }
        }
    }

    private static func bump<K: Hashable>(_ table: inout [K: Counter], _ key: K, now: UInt64, window: UInt64) {
        if var c = table[key], now - c.windowStart < window {
            c.failures += 1
            table[key] = c
        } else {
            table[key] = Counter(failures: 1, windowStart: now)
        }
    }

    private func evict(_ s: inout State, now: UInt64) {
        s.addresses = s.addresses.filter { now - $0.value.windowStart < windowMs }
        s.users = s.users.filter { now - $0.value.windowStart < windowMs }
        // Still over: drop the oldest half of each table.
        if s.addresses.count + s.users.count > maxEntries {
            for table in [0, 1] {
                if table == 0 {
                    let keep = s.addresses.sorted { $0.value.windowStart > $1.value.windowStart }.prefix(maxEntries / 4)
                    s.addresses = Dictionary(uniqueKeysWithValues: keep.map { ($0.key, $0.value) })
                } else {
                    let keep = s.users.sorted { $0.value.windowStart > $1.value.windowStart }.prefix(maxEntries / 4)
                    s.users = Dictionary(uniqueKeysWithValues: keep.map { ($0.key, $0.value) })
                }
            }
        }
    }
}
