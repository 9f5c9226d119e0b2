import TokenCore

/// Everything a request reads that a reload may replace: configuration, routes with resolved
/// upstreams, keys. Immutable; a reload builds a new one and every worker swaps it in whole
/// between events, so a request sees one snapshot from start to end.
final class GatewayState: Sendable {
    let config: GatewayConfig
    let routes: [CompiledRoute]
    /// Every path's endpoint: the gateway's own, then the routes.
    let endpoints: EndpointTable
    /// Resolved upstreams; routes refer to them by index.
    let upstreams: [UpstreamTarget]
    let ring: KeyRing
    let policy: VerifierPolicy
    let httpLimits: HTTPLimits
    let strippedFields: StrippedFields
    let listen: SocketAddress
    /// HTTPS: where it listens and the certificate it serves (nil when `tls.enable` is off).
    let tlsListen: SocketAddress?
    let tls: TLSContext?
    /// Revocations outlive snapshots: a reload keeps the same set.
    let revocations: RevocationSet
    /// Who may log in (plaintext passwords already hashed: building this is slow, so it is
    /// done where configuration is loaded, never on a loop).
    let credentials: Credentials
    let about: AboutInfo
    /// The upstream's own about object, when `about.from_upstream` is on (outlives snapshots).
    let upstreamAbout: UpstreamAbout?
    /// Where revocations are made durable (outlives snapshots).
    let journal: RevocationJournal?
    /// Whether the upstreams answer (`GET /readyz`), probed off the loops.
    let readiness: Readiness?
    let issuerSettings: IssuerSettings
    /// The identity providers whose tokens sign users in (empty unless `api.auth.auth0.enable`).
    let idpTenants: [IdPTenant]
    /// Their key fetching and sign-ins (nil where nothing runs, as in check-config).
    let identityProviders: IdentityProviders?

    init(config: GatewayConfig, ring: KeyRing, revocations: RevocationSet, startedAt: Int64 = 0, instanceID: String = "",
         upstreamAbout: UpstreamAbout? = nil, journal: RevocationJournal? = nil, previous: GatewayState? = nil,
         readiness: Readiness? = nil, identityProviders: IdentityProviders? = nil) throws {
        self.config = config
        self.identityProviders = identityProviders
        self.journal = journal
        self.readiness = readiness
        self.upstreamAbout = config.about.fromUpstream ? upstreamAbout : nil
        self.ring = ring
        self.revocations = revocations
        do {
            if let previous, previous.credentials.source == Credentials.source(of: config) {
                credentials = previous.credentials
            } else {
                credentials = try Credentials(config: config)
            }
        } catch {
            throw StartupError("users: \(error)")
        }
        if let identityProviders {
            idpTenants = try identityProviders.tenants(for: config)
        } else if config.identityProviders.enable {
            idpTenants = try config.identityProviders.tenants.map {
                IdPTenant($0, leeway: config.tokens.leewaySeconds, source: try IdPKeySource(tenant: $0))
            }
        } else {
            idpTenants = []
        }
        about = AboutInfo(config: config, passwordLogin: config.auth.enable && !credentials.isEmpty,
                          identityProviders: idpTenants.map(\.about), startedAt: startedAt, id: instanceID)
        issuerSettings = IssuerSettings(issuer: config.tokens.issuer, accessLifetime: config.tokens.accessTTLSeconds,
                                        refreshLifetime: config.tokens.refreshTTLSeconds)
        do {
            listen = try SocketAddress.resolve(config.server.listen)
        } catch {
            throw StartupError("server.listen: \(error)")
        }
        if config.tls.enable {
            do {
                tlsListen = try SocketAddress.resolve(config.tls.address)
            } catch {
                throw StartupError("tls.address: \(error)")
            }
            tls = try TLSContext(certFile: config.tls.certFile, keyFile: config.tls.keyFile,
                                 tls13Only: config.tls.minVersion == "1.3", offerHTTP2: config.server.http2)
        } else {
            tlsListen = nil
            tls = nil
        }
        var targets: [UpstreamTarget] = []
        var contexts: [String: TLSClientContext] = [:]
        var compiled: [CompiledRoute] = []
        for r in config.routes {
            let target = try UpstreamTarget.resolve(r, contexts: &contexts)
            let index: Int
            if let i = targets.firstIndex(where: { $0.key == target.key }) {
                index = i
            } else {
                targets.append(target)
                index = targets.count - 1
            }
            compiled.append(CompiledRoute(prefix: Array(r.prefix.utf8), upstreamIndex: index,
                                          authRequired: r.auth == .required, forwardAuthorization: r.forwardAuthorization,
                                          maxBodyBytes: r.maxBodyBytes ?? config.limits.bodyBytes,
                                          envelopeErrors: r.errors == "envelope", closeOnExpiry: r.closeOnExpiry,
                                          acceptIdPTokens: r.acceptIdPTokens && !idpTenants.isEmpty))
        }
        // Longest prefix first, so the most specific route wins.
        routes = compiled.enumerated().sorted { a, b in
            a.element.prefix.count != b.element.prefix.count ? a.element.prefix.count > b.element.prefix.count : a.offset < b.offset
        }.map(\.element)
        endpoints = EndpointTable(config: config, routes: routes)
        upstreams = targets
        policy = VerifierPolicy(issuer: config.tokens.issuer, leeway: config.tokens.leewaySeconds)
        strippedFields = StrippedFields(config.server.stripRequestFields)
        httpLimits = HTTPLimits(requestLineBytes: config.limits.requestLineBytes, headerBytes: config.limits.headerBytes,
                                maxHeaderFields: config.limits.headerFields)
    }
}

/// A configuration or environment problem found while starting or reloading.
struct StartupError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
