/// When an identity provider's key set is fetched again, as a value with the time passed in (no
/// clock inside, so every rule is tested without waiting). A fetched set stays fresh as long as
/// its `Cache-Control: max-age` says, bounded to `minimumSeconds...maximumSeconds`; it is
/// refreshed in the background when three quarters of that have passed, so it never goes stale
/// while the IdP answers. A token naming a `kid` the set lacks (the IdP rotated its key) may cause
/// a fetch at once, but at most one per `unknownKidCooldownSeconds` however many such tokens come.
/// A failed fetch keeps the keys already held and is retried after a backoff that doubles up to
/// `minimumSeconds`.
public struct JWKSCache: Sendable {
    public struct Policy: Sendable {
        public var minimumSeconds: Int64 = 300
        public var maximumSeconds: Int64 = 86_400
        /// Freshness when the IdP says nothing usable.
        public var defaultSeconds: Int64 = 3_600
        public var unknownKidCooldownSeconds: Int64 = 30
        public init() {}

        /// How long a set fetched with this `Cache-Control` value stays fresh.
        public func lifetime(cacheControl: String?) -> Int64 {
            guard let value = cacheControl else { return defaultSeconds }
            var maxAge: Int64?
            for directive in value.split(separator: ",") {
                let parts = directive.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let name = parts[0].trimmingSpaces.lowercased()
                if name == "no-store" || name == "no-cache" { return minimumSeconds }
                guard name == "max-age", parts.count == 2 else { continue }
                var v = parts[1].trimmingSpaces
                if v.count >= 2 && v.hasPrefix("\"") && v.hasSuffix("\"") { v = v.dropFirst().dropLast() }
                // Digits only; a number too large for the bound is the maximum.
                guard !v.isEmpty, v.allSatisfy({ $0.isASCII && $0.isNumber }) else { continue }
                maxAge = Int64(v) ?? maximumSeconds
            }
            return min(max(maxAge ?? defaultSeconds, minimumSeconds), maximumSeconds)
        }
    }

    public let policy: Policy
    /// When the set held was fetched, and until when it is fresh (nil: none fetched yet).
    public private(set) var fetchedAt: Int64?
    public private(set) var freshUntil: Int64 = 0
    private var refreshAt: Int64 = 0
    private var lastUnknownKidFetch: Int64?
    private var failures = 0
    private var retryAt: Int64 = 0

    public init(policy: Policy = Policy()) {
        self.policy = policy
    }

    /// A fetch succeeded at `now`.
    public mutating func fetched(at now: Int64, cacheControl: String?) {
        let lifetime = policy.lifetime(cacheControl: cacheControl)
        fetchedAt = now
        freshUntil = now + lifetime
        refreshAt = now + lifetime * 3 / 4
        failures = 0
        retryAt = 0
    }

    /// A fetch failed at `now`: the keys held stay in use; the next try waits a backoff.
    public mutating func fetchFailed(at now: Int64) {
        failures += 1
        let backoff = min(policy.unknownKidCooldownSeconds << min(failures - 1, 20), policy.minimumSeconds)
        retryAt = now + backoff
    }

    /// The background fetch is due: no set yet, or three quarters of its freshness passed (and
    /// no failed fetch waits for its retry time).
    public func refreshDue(at now: Int64) -> Bool {
        guard now >= retryAt else { return false }
        return fetchedAt == nil || now >= refreshAt
    }

    /// A token named a `kid` the set lacks: true when a fetch may start now (then counted against
    /// the cooldown), false when one started within it.
    public mutating func mayFetchForUnknownKid(at now: Int64) -> Bool {
        if let last = lastUnknownKidFetch, now - last < policy.unknownKidCooldownSeconds { return false }
        guard now >= retryAt else { return false }
        lastUnknownKidFetch = now
        return true
    }
}

extension Substring {
    fileprivate var trimmingSpaces: Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return s
    }
}
