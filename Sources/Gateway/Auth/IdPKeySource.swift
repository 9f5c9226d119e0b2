import Glibc
import Synchronization
import TokenCore

/// Where one identity provider's signing keys come from, and the keys last fetched: its JWKS
/// over verified HTTPS (found through OpenID discovery unless `jwks_url` names it), read by
/// `IdPKeySet`, cached as `JWKSCache` decides. Fetches happen only on the identity providers'
/// own thread (`IdentityProviders`); any thread reads the keys. A source outlives reloads that
/// leave its issuer, URL, trust and algorithms unchanged, so its keys stay.
final class IdPKeySource: Sendable {
    let issuer: String
    /// The configured `jwks_url`; nil: discovered.
    let configuredJWKS: String?
    let trust: TLSClientContext
    let allowed: Set<JWSAlgorithm>
    /// What a reload compares to keep this source.
    let identity: String

    private struct State {
        var ring: KeyRing?
        var cache = JWKSCache()
        /// The JWKS URL once known (configured or discovered).
        var jwksURL: String?
        /// A fetch is queued or running on the providers' thread.
        var busy = false
        var fetches = 0
    }

    private let state = Mutex(State())

    /// The most bytes read of a discovery document or a key set.
    static let maxDocumentBytes = 256 * 1024
    static let fetchTimeoutSeconds = 5

    init(tenant: GatewayConfig.Tenant) throws {
        issuer = tenant.effectiveIssuer
        configuredJWKS = tenant.jwksURL.isEmpty ? nil : tenant.jwksURL
        allowed = Set(tenant.algorithms.compactMap(JWSAlgorithm.init(rawValue:)))
        trust = try TLSClientContext.forCAFile(tenant.caFile, setting: "api.auth.auth0 tenant \(issuer)")
        identity = Self.identity(of: tenant)
        state.withLock { $0.jwksURL = configuredJWKS }
    }

    /// What a reload compares: the settings, and the CA file as it is now on disk (a new file
    /// under the same name is new trust: the source, and its keys, are made again).
    static func identity(of t: GatewayConfig.Tenant) -> String {
        var file = "system"
        if !t.caFile.isEmpty {
            var st = stat()
            file = stat(t.caFile, &st) == 0
                ? "\(st.st_dev):\(st.st_ino):\(st.st_size):\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec):\(st.st_mode)" : "missing"
        }
        return "\(t.effectiveIssuer) jwks=\(t.jwksURL) ca=\(t.caFile)@\(file) algs=\(t.algorithms.sorted().joined(separator: ","))"
    }

    /// How long past their freshness the keys held stay in use while fetches fail (the
    /// provider down, or its set unreadable): a day, as Auth0's `stale-if-error`. After that a
    /// key the provider may have withdrawn is no longer trusted on the old word.
    static let staleGraceSeconds: Int64 = 86_400

    /// The keys to verify with at `now`: the last fetched, unless they are older than their
    /// freshness plus `staleGraceSeconds` (nil before the first fetch succeeded).
    func ring(now: Int64) -> KeyRing? {
        state.withLock { s in now <= s.cache.freshUntil + Self.staleGraceSeconds ? s.ring : nil }
    }

    /// A claimed fetch that could not be queued: the next due time or unknown kid may try again.
    func releaseClaim() { state.withLock { $0.busy = false } }

    /// Claims the background refresh when it is due and no fetch is queued.
    func claimRefresh(now: Int64) -> Bool {
        state.withLock { s in
            guard !s.busy, s.cache.refreshDue(at: now) else { return false }
            s.busy = true
            return true
        }
    }

    /// Claims a fetch for a token whose `kid` is not in the set: at most one per cooldown.
    func claimUnknownKidFetch(now: Int64) -> Bool {
        state.withLock { s in
            guard !s.busy, s.cache.mayFetchForUnknownKid(at: now) else { return false }
            s.busy = true
            return true
        }
    }

    /// Fetches the key set now (blocking: the providers' thread only, after a claim); what to
    /// log, if anything.
    func fetch(now: Int64) -> String? {
        var url = state.withLock { $0.jwksURL }
        var problem: String?
        if url == nil {
            switch discover() {
            case let .found(u): url = u
            case let .failed(why): problem = why
            }
        }
        var result: (set: IdPKeySet, cacheControl: String?)?
        if let url, problem == nil {
            switch Self.get(url, trust: trust) {
            case let .success(answer):
                do {
                    result = (try IdPKeySet.parse(answer.body, allowed: allowed), answer.cacheControl)
                } catch {
                    problem = "\(url): \(error)"
                }
            case let .failure(why):
                problem = "\(url): \(why)"
            }
        }
        if let result, let url, problem == nil { return keep(result.set, from: url, cacheControl: result.cacheControl, now: now) }
        return state.withLock { s -> String? in
            s.busy = false
            s.fetches += 1
            s.cache.fetchFailed(at: now)
            // Found again next time: the provider may have moved its keys.
            s.jwksURL = configuredJWKS
            let held = s.ring == nil ? "no keys are held" : "the keys held stay in use until \(s.cache.freshUntil + Self.staleGraceSeconds)"
            return Self.printable("identity provider \(issuer): fetching its keys failed (\(held)): \(problem ?? "unknown")")
        }
    }

    /// Makes `set` (fetched from `url`) the keys in use; what to log, if anything.
    func keep(_ set: IdPKeySet, from url: String, cacheControl: String?, now: Int64) -> String? {
        // IdPKeySet has already refused duplicate kids and keys unfit for their algorithm.
        let ring = try? KeyRing(keys: set.keys.sorted { $0.key < $1.key }.compactMap { kid, entry in
            try? Key(kid: kid, algorithm: entry.algorithm, material: .publicKey(entry.key), state: .verify)
        })
        return state.withLock { s -> String? in
            s.busy = false
            s.fetches += 1
            guard let ring else {
                s.cache.fetchFailed(at: now)
                return "identity provider \(issuer): the key set from \(url) could not be used"
            }
            s.ring = ring
            s.jwksURL = url
            s.cache.fetched(at: now, cacheControl: cacheControl)
            let skipped = set.skipped.isEmpty ? "" : "; passed over: " + set.skipped.joined(separator: "; ")
            // The first fetch is said, and any that passed keys over; a quiet refresh is not.
            return s.fetches == 1 || !skipped.isEmpty
                ? Self.printable("identity provider \(issuer): \(ring.keys.count) key(s) from \(url)\(skipped)") : nil
        }
    }

    /// A log line of what a provider sent (kids, algorithms, its issuer): one line of printable
    /// ASCII, at most 2 KiB.
    static func printable(_ text: String) -> String {
        var bytes = Array(text.utf8.prefix(2048)).map { $0 >= 0x20 && $0 < 0x7F ? $0 : UInt8(ascii: "?") }
        if text.utf8.count > 2048 { bytes += Array("...".utf8) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The `jwks_uri` of the issuer's OpenID discovery document, whose `issuer` must be this
    /// one (OpenID Connect Discovery 4.3); else `<issuer>/.well-known/jwks.json`.
    private enum Discovery { case found(String), failed(String) }

    private func discover() -> Discovery {
        let base = issuer.hasSuffix("/") ? String(issuer.dropLast()) : issuer
        let discovery = base + "/.well-known/openid-configuration"
        switch Self.get(discovery, trust: trust) {
        case let .success(answer):
            guard let doc = try? JSONValue.parse(answer.body), case .object = doc else {
                return .failed("\(discovery): not a JSON object")
            }
            guard doc["issuer"]?.stringValue == issuer else {
                return .failed("\(discovery): its issuer is \(doc["issuer"]?.stringValue ?? "missing"), not \(issuer)")
            }
            guard let uri = doc["jwks_uri"]?.stringValue, HTTPSLocation(uri) != nil else {
                return .failed("\(discovery): no https jwks_uri")
            }
            return .found(uri)
        case .failure(.status(404)):
            return .found(base + "/.well-known/jwks.json")
        case let .failure(why):
            return .failed("\(discovery): \(why)")
        }
    }

    enum GetFailure: Error, CustomStringConvertible {
        case fetch(BlockingFetch.Failure)
        case status(Int)
        case resolve(String)

        var description: String {
            switch self {
            case let .fetch(f): return "\(f)"
            case let .status(code): return "answered \(code)"
            case let .resolve(why): return why
            }
        }
    }

    /// One GET over verified HTTPS (name resolution included: this thread may block).
    static func get(_ url: String, trust: TLSClientContext) -> Result<BlockingFetch.Answer, GetFailure> {
        guard let location = HTTPSLocation(url) else { return .failure(.resolve("not an https URL")) }
        let address: SocketAddress
        do {
            address = try SocketAddress.resolve(location.hostPort)
        } catch {
            return .failure(.resolve("\(error)"))
        }
        let fetch = BlockingFetch(maxBodyBytes: maxDocumentBytes, timeoutSeconds: fetchTimeoutSeconds)
        let hostHeader = location.port == 443 ? (location.host.contains(":") ? "[\(location.host)]" : location.host) : location.hostPort
        switch fetch.get(address: address, hostHeader: hostHeader, path: location.path,
                         tls: UpstreamTLS(context: trust, serverName: location.host)) {
        case let .success(answer):
            return answer.status == 200 ? .success(answer) : .failure(.status(answer.status))
        case let .failure(f):
            return .failure(.fetch(f))
        }
    }
}
