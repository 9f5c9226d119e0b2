import Foundation

/// The key table of gateway.conf, environment variable names, and "did you mean" suggestions.
extension ConfigLoader {
    /// Every scalar key of gateway.conf, in the order `effectiveText` prints them.
    static var settings: [Setting<GatewayConfig>] {
        [
            .init("server.listen", .text(\.server.listen, .hostPort), "address to listen on, \"host:port\" (IPv6 as \"[::1]:8080\")"),
            .init("server.workers", .workers(\.server.workers), "worker threads, each with its own event loop: \"auto\" (one per core) or a number"),
            .init("server.max_connections", .count(\.server.maxConnections, 1...1_000_000), "open client connections per worker; at it, idle ones make room"),
            .init("server.header_timeout", .milliseconds(\.server.headerTimeoutMs, minimum: 1), "time allowed to receive a request head"),
            .init("server.idle_timeout", .milliseconds(\.server.idleTimeoutMs, minimum: 1), "how long an idle keep-alive client connection stays open"),
            .init("server.body_timeout", .milliseconds(\.server.bodyTimeoutMs, minimum: 1), "longest pause while receiving a request body"),
            .init("server.connect_timeout", .milliseconds(\.server.connectTimeoutMs, minimum: 1), "time allowed to connect to an upstream"),
            .init("server.response_timeout", .milliseconds(\.server.responseTimeoutMs, minimum: 1), "time allowed for the upstream to start its response"),
            .init("server.shutdown_timeout", .milliseconds(\.server.shutdownTimeoutMs, minimum: 1), "how long SIGTERM waits for requests in flight"),
            .init("server.data_dir", .text(\.server.dataDir, .nonEmpty), "where the gateway keeps state it creates (the generated keys file)"),
            .init("server.trusted_proxies", .list(\.server.trustedProxies, .ipAddress), "peers whose X-Forwarded-For is believed (exact IP addresses)"),
            .init("server.strip_request_fields", .list(\.server.stripRequestFields, .strippableField), "identity fields removed from every client request (any case, `_` for `-`); X-Real-IP and Forwarded, when listed, are set from the peer"),
            .init("server.upstream_idle_per_worker", .count(\.server.upstreamIdlePerWorker, 0...100_000), "idle keep-alive connections kept per upstream and worker"),
            .init("server.upstream_idle_timeout", .milliseconds(\.server.upstreamIdleTimeoutMs, minimum: 1), "how long an idle upstream connection is kept"),
            .init("server.http2", .flag(\.server.http2), "HTTP/2 on both listeners (h2c with prior knowledge, h2 by ALPN); false: HTTP/1.1 only"),
            .init("server.http2_max_concurrent_streams", .count(\.server.http2MaxConcurrentStreams, 1...10_000), "streams a client may have open on one HTTP/2 connection"),
            .init("server.http2_max_connection_buffer", .size(\.server.http2MaxConnectionBuffer, minimum: 65_536), "most bytes of request and answer bodies held for one HTTP/2 connection"),
            .init("tls.enable", .flag(\.tls.enable), "also serve HTTPS on tls.address (datarhei Core's tls.enable)"),
            .init("tls.address", .text(\.tls.address, .hostPort), "address for HTTPS, \"host:port\""),
            .init("tls.cert_file", .text(\.tls.certFile, .any), "PEM certificate chain, leaf first (re-read on reload)"),
            .init("tls.key_file", .text(\.tls.keyFile, .any), "PEM private key of the certificate"),
            .init("tls.min_version", .choice(\.tls.minVersion, ["1.2", "1.3"]), "oldest TLS version accepted: \"1.2\" or \"1.3\""),
            .init("limits.request_line", .count(\.limits.requestLineBytes, 256...HTTPLimits.maxHeadBytes), "longest request line, in bytes"),
            .init("limits.header_bytes", .count(\.limits.headerBytes, 256...HTTPLimits.maxHeadBytes), "largest request or answer head (start line and fields), in bytes; at most 65536, the connection buffer"),
            .init("limits.header_fields", .count(\.limits.headerFields, 1...10_000), "most header fields in a request"),
            .init("limits.body", .size(\.limits.bodyBytes, minimum: 1), "default request body limit: bytes, or \"512KiB\", \"10MiB\", \"1GiB\""),
            .init("api.auth.enable", .flag(\.auth.enable), "require a login (datarhei Core's api.auth.enable)"),
            .init("api.auth.username", .text(\.auth.username, .any), "the user that may log in"),
            .init("api.auth.password", .text(\.auth.password, .any), "a PHC hash from `gateway hash-password` (plaintext works, with a warning)", secret: true),
            .init("api.auth.jwt.secret", .text(\.tokens.secret, .any), "HS256 secret, at least 32 bytes; empty: use keys_file", secret: true),
            .init("api.auth.jwt.kid", .text(\.tokens.kid, .any), "key id for the secret; derived from its hash when empty"),
            .init("api.auth.jwt.keys_file", .text(\.tokens.keysFile, .any), "a JWK Set file; with no secret and no file, one is created in data_dir"),
            .init("api.auth.jwt.issuer", .text(\.tokens.issuer, .any), "the iss claim of issued tokens"),
            .init("api.auth.jwt.access_ttl", .seconds(\.tokens.accessTTLSeconds, minimum: 1), "lifetime of an access token"),
            .init("api.auth.jwt.refresh_ttl", .seconds(\.tokens.refreshTTLSeconds, minimum: 1), "lifetime of a refresh token"),
            .init("api.auth.jwt.leeway", .seconds(\.tokens.leewaySeconds, minimum: 0), "clock skew allowed when checking exp and nbf"),
            .init("api.auth.jwt.auto_retire", .flag(\.tokens.autoRetire), "retire a verify key once the longest token lifetime has passed since it stopped being active"),
            .init("api.auth.jwt.revoke_access_on_logout", .flag(\.tokens.revokeAccessOnLogout), "logout also voids the access tokens of that login at once"),
            .init("api.auth.jwt.rotate_every", .seconds(\.tokens.rotateEverySeconds, minimum: 0), "rotate the keys file by itself this often (0: never); several gateways on one file rotate once"),
            .init("api.auth.auth0.enable", .flag(\.identityProviders.enable), "accept identity providers' access tokens at POST /api/login ([[api.auth.auth0.tenants]]; datarhei Core's api.auth.auth0)"),
            .init("metrics.enable", .flag(\.metrics.enable), "serve Prometheus metrics (GET /metrics) on metrics.listen"),
            .init("metrics.listen", .text(\.metrics.listen, .hostPort), "address of the metrics listener, never the public one"),
            .init("log.access", .flag(\.log.access), "one line per request on stdout"),
            .init("log.level", .choice(\.log.level, ["error", "warn", "info", "debug"]), "\"error\", \"warn\", \"info\" or \"debug\""),
            .init("log.format", .choice(\.log.format, ["text", "json"]), "\"text\" or \"json\" (one object per line) for the access and event logs"),
            .init("log.file", .text(\.log.file, .any), "append the logs to this file (reopened on SIGUSR1, for logrotate); empty: standard output"),
            .init("login.failure_delay", .milliseconds(\.login.failureDelayMs, minimum: 0, maximum: 60_000), "a failed login is answered after this delay (0 to 60s)"),
            .init("login.max_failures_per_address", .count(\.login.maxFailuresPerAddress, 1...1_000_000), "failed logins per client address within window before 429"),
            .init("login.max_failures_per_user", .count(\.login.maxFailuresPerUser, 1...1_000_000), "failed logins per username within window before 429"),
            .init("login.window", .milliseconds(\.login.windowMs, minimum: 1), "how long a failed login counts"),
            .init("login.max_tracked", .count(\.login.maxTrackedEntries, 100...10_000_000), "most addresses and usernames tracked at once (oldest evicted first)"),
            .init("about.app", .text(\.about.app, .nonEmpty), "the app of GET /api; datarhei clients expect \"datarhei-core\""),
            .init("about.name", .text(\.about.name, .any), "the name of GET /api"),
            .init("about.version", .text(\.about.versionNumber, .version), "the version.number of GET /api, \"N.N.N\"; clients expect major 16"),
            .init("about.from_upstream", .flag(\.about.fromUpstream), "take the full about object from the upstream's own GET /api (cached; auths replaced)"),
            .init("profiles.envelope", .flag(\.profiles.envelope), "also offer the envelope login API (login and refresh below)"),
            .init("profiles.envelope_login_path", .text(\.profiles.envelopeLoginPath, .pathPrefix), "path of the envelope login"),
            .init("profiles.envelope_refresh_path", .text(\.profiles.envelopeRefreshPath, .pathPrefix), "path of the envelope refresh"),
            .init("profiles.envelope_access_ttl", .seconds(\.profiles.envelopeAccessTTLSeconds, minimum: 1), "lifetime of an envelope access token"),
            .init("profiles.envelope_refresh_ttl", .seconds(\.profiles.envelopeRefreshTTLSeconds, minimum: 1), "lifetime of an envelope refresh token"),
            .init("profiles.envelope_redirect", .text(\.profiles.envelopeRedirect, .any), "the redirect of a login whose user must change the password"),
        ]
    }

    /// The keys of a `[[user]]` block (paths relative to the block). Users come from the file
    /// only: they have no environment variables.
    static var userSettings: [Setting<GatewayConfig.User>] {
        [
            .init("name", .text(\.name, .userName), "the name to log in with"),
            .init("password", .text(\.password, .nonEmpty), "a PHC hash from `gateway hash-password` (plaintext works, with a warning)", secret: true),
            .init("enabled", .flag(\.enabled), "false: the user cannot log in"),
            .init("must_change_password", .flag(\.mustChangePassword), "the login answer asks for a new password"),
        ]
    }

    /// The keys of a `[[route]]` block (paths relative to the block).
    static var routeSettings: [Setting<GatewayConfig.Route>] {
        [
            .init("prefix", .text(\.prefix, .pathPrefix), "path prefix matched case-sensitively; the longest match wins"),
            .init("upstream", .text(\.upstream, .upstream), "\"http://host:port\" or \"https://host:port\" (verified TLS), no path"),
            .init("ca_file", .text(\.caFile, .any), "https upstream: PEM CAs its certificate must chain to; empty: the system's store"),
            .init("tls_server_name", .text(\.tlsServerName, .any), "https upstream: the name its certificate must carry, sent as SNI; empty: the upstream's host"),
            .init("auth", .authMode(\.auth), "\"required\" (a valid access token) or \"none\""),
            .init("forward_authorization", .flag(\.forwardAuthorization), "pass the client's Authorization header to the upstream"),
            .init("max_body", .optionalSize(\.maxBodyBytes), "request body limit for this route; limits.body when absent"),
            .init("errors", .choice(\.errors, ["datarhei", "envelope"]), "shape of the gateway's own errors on this route: \"datarhei\" or \"envelope\""),
            .init("close_on_expiry", .flag(\.closeOnExpiry), "end a WebSocket or streaming answer when the token that opened it expires or is revoked"),
            .init("accept_idp_tokens", .flag(\.acceptIdPTokens), "an access token of an api.auth.auth0 tenant opens this route directly (X-Forwarded-User: its subject)"),
        ]
    }

    /// The keys of a `[[api.auth.auth0.tenants]]` block (paths relative to the block).
    static var tenantSettings: [Setting<GatewayConfig.Tenant>] {
        [
            .init("domain", .text(\.domain, .any), "the tenant's host[:port]; the issuer is https://<domain>/ unless issuer is set"),
            .init("audience", .text(\.audience, .nonEmpty), "the audience its access tokens must name (aud, a string or an array)"),
            .init("clientid", .text(\.clientID, .any), "the client id, shown in GET /api's auths"),
            .init("users", .list(\.users, .subject), "subjects allowed to sign in; [\"*\"] allows every subject of the tenant"),
            .init("issuer", .text(\.issuer, .any), "the full issuer URL, compared byte for byte with iss; empty: https://<domain>/"),
            .init("jwks_url", .text(\.jwksURL, .any), "https URL of its keys; empty: jwks_uri of <issuer>/.well-known/openid-configuration"),
            .init("algorithms", .list(\.algorithms, .algorithm), "signature algorithms accepted (RS256, RS384, RS512, ES256, ES384)"),
            .init("ca_file", .text(\.caFile, .any), "PEM CAs the provider's certificate must chain to; empty: the system's store"),
        ]
    }

    /// Table paths that hold settings (`server`, `api`, `api.auth`, ...).
    static var tablePaths: Set<String> {
        var tables: Set<String> = []
        for key in settings {
            var parts = key.path.split(separator: ".").dropLast()
            while !parts.isEmpty {
                tables.insert(parts.joined(separator: "."))
                parts = parts.dropLast()
            }
        }
        return tables
    }

    /// The environment variable for a key path: `server.max_connections` →
    /// `GATEWAY_SERVER_MAX_CONNECTIONS`.
    static func environmentName(_ path: String) -> String {
        "GATEWAY_" + path.uppercased().replacingOccurrences(of: ".", with: "_")
    }

    /// The candidate closest to `name` (by edit distance over the whole path, or over its last
    /// segment), when close enough to be what was meant.
    static func suggestion(for name: String, among candidates: [String]) -> String? {
        func last(_ s: String) -> String { String(s.split(separator: ".").last ?? Substring(s)) }
        var best: (String, Int)?
        for candidate in candidates {
            var d = editDistance(name, candidate)
            if name.contains(".") && candidate.contains(".") {
                d = min(d, editDistance(last(name), last(candidate)) + 1)
            }
            if best == nil || d < best!.1 { best = (candidate, d) }
        }
        guard let (candidate, d) = best, d <= max(2, name.count / 4) else { return nil }
        return candidate
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var row = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = row
        }
        return previous[b.count]
    }
}
