/// The effective configuration: gateway.conf, then `GATEWAY_*` environment overrides, then
/// defaults. Immutable once built; a reload builds a new one and swaps it in whole.
struct GatewayConfig: Sendable {
    var server = Server()
    var tls = TLS()
    var limits = Limits()
    var auth = Auth()
    var tokens = Tokens()
    var log = Log()
    var login = Login()
    var about = About()
    var profiles = Profiles()
    /// `[[user]]` entries, besides the datarhei single user of `api.auth`.
    var users: [User] = []
    var metrics = Metrics()
    /// Sign-in with identity providers (datarhei Core's `api.auth.auth0`).
    var identityProviders = IdentityProviders()
    var routes: [Route] = [Route.defaultAPI]
    /// File the configuration came from (for reload), nil when built in code.
    var sourcePath: String?

    struct Server: Sendable {
        /// "host:port"; host may be an IPv4 address, "[v6]", or "localhost".
        var listen = "127.0.0.1:8080"
        /// Worker threads, each with its own event loop and SO_REUSEPORT listener; 0 = one per core.
        var workers = 0
        /// Open client connections per worker; accepting pauses beyond it.
        var maxConnections = 10_000
        var headerTimeoutMs = 15_000
        var idleTimeoutMs = 60_000
        var bodyTimeoutMs = 30_000
        var connectTimeoutMs = 5_000
        var responseTimeoutMs = 60_000
        var shutdownTimeoutMs = 10_000
        /// Where the gateway keeps state it creates (the generated keys file).
        var dataDir = "./data"
        /// Peers whose X-Forwarded-For is believed (exact addresses).
        var trustedProxies: [String] = []
        /// Fields a client must not set (identity fields another proxy might have set); removed
        /// from every request, whatever the route. `X-Forwarded-User` is removed in any case.
        var stripRequestFields = ["X-Remote-User", "Remote-User", "X-Auth-Request-User", "X-Auth-Request-Email",
                                  "X-Forwarded-Email", "X-Forwarded-Groups", "X-Real-IP", "Forwarded"]
        /// Idle keep-alive connections kept per upstream and worker.
        var upstreamIdlePerWorker = 1024
        var upstreamIdleTimeoutMs = 30_000
        /// HTTP/2 on both listeners (h2c with prior knowledge, h2 by ALPN).
        var http2 = true
        var http2MaxConcurrentStreams = 128
        /// The most bytes of request and answer bodies held for one HTTP/2 connection (its
        /// receive window, and the answers waiting for the client).
        var http2MaxConnectionBuffer: Int64 = 1 << 20
    }

    /// datarhei Core's `tls.*`: HTTPS on its own address beside plain HTTP.
    struct TLS: Sendable {
        var enable = false
        var address = "127.0.0.1:8181"
        /// PEM certificate chain, leaf first; re-read on every reload.
        var certFile = ""
        var keyFile = ""
        /// "1.2" or "1.3".
        var minVersion = "1.2"
    }

    struct Limits: Sendable {
        var requestLineBytes = 8_192
        var headerBytes = 32_768
        var headerFields = 100
        /// Default request body limit for routes that set none.
        var bodyBytes: Int64 = 10 * 1024 * 1024
    }

    /// datarhei Core's `api.auth.*`.
    struct Auth: Sendable {
        var enable = true
        var username = ""
        /// Plaintext or a PHC hash from `gateway hash-password`.
        var password = ""
    }

    struct Tokens: Sendable {
        /// `api.auth.jwt.secret`: used as the bytes of the string, at least 32 of them.
        var secret = ""
        /// `kid` for the configured secret; derived from its hash when empty.
        var kid = ""
        /// A JWK Set file; when neither secret nor keys file is set, one is created in data_dir.
        var keysFile = ""
        var issuer = "datarhei-core"
        var accessTTLSeconds: Int64 = 600
        var refreshTTLSeconds: Int64 = 86_400
        var leewaySeconds: Int64 = 0
        /// A `verify` key is treated as retired once the longest token lifetime plus the
        /// leeway has passed since it stopped being active.
        var autoRetire = true
        /// Seconds after which the gateway rotates its keys file by itself (0: never).
        var rotateEverySeconds: Int64 = 0
        /// Logout also voids the access tokens of that login at once (logins then carry a `lid`
        /// claim naming the login); otherwise they die at their short expiry.
        var revokeAccessOnLogout = false
    }

    struct Log: Sendable {
        /// One line per request on stdout.
        var access = true
        /// "error", "warn", "info" or "debug".
        var level = "info"
        /// "text" or "json" (one object per line), for the access and the event log alike.
        var format = "text"
        /// Where the lines go; empty: standard output. Reopened on SIGUSR1.
        var file = ""
    }

    /// Abuse resistance of the login endpoints.
    struct Login: Sendable {
        /// A failed login is answered after this delay (a loop timer, never a sleep).
        var failureDelayMs = 1_000
        /// Failures allowed per client address within `windowMs` before 429.
        var maxFailuresPerAddress = 10
        /// Failures allowed per username within `windowMs` before 429.
        var maxFailuresPerUser = 5
        var windowMs = 60_000
        /// Most addresses and usernames tracked at once (oldest evicted first).
        var maxTrackedEntries = 100_000
    }

    /// What `GET /api` answers (datarhei Core's about object).
    struct About: Sendable {
        /// datarhei clients check `app == "datarhei-core"` and major version 16.
        var app = "datarhei-core"
        var name = "gateway"
        var versionNumber = "16.16.0"
        /// The full object comes from the first route's upstream's own `GET /api`, fetched off
        /// the loops every 30 s and cached; `auths` is always the gateway's.
        var fromUpstream = false
    }

    /// Login APIs besides datarhei Core's.
    struct Profiles: Sendable {
        /// The envelope login API (`{"code","result",...}` bodies), beside the datarhei one.
        var envelope = false
        var envelopeLoginPath = "/api/v1/auth/login"
        var envelopeRefreshPath = "/api/v1/auth/refresh"
        var envelopeAccessTTLSeconds: Int64 = 1_800
        var envelopeRefreshTTLSeconds: Int64 = 14_400
        /// Sent as `redirect` when the user must change its password.
        var envelopeRedirect = "pw/reset"
    }

    /// `[api.auth.auth0]`: identity providers whose access tokens the gateway accepts at
    /// `POST /api/login` (and, on routes that say so, on requests).
    struct IdentityProviders: Sendable {
        var enable = false
        var tenants: [Tenant] = []
    }

    /// One `[[api.auth.auth0.tenants]]` entry: an OpenID Connect issuer (Auth0, Keycloak, Okta,
    /// Google...), the audience its tokens must name, and the subjects allowed in.
    struct Tenant: Sendable {
        /// host[:port]; the issuer is `https://<domain>/` unless `issuer` says otherwise.
        var domain = ""
        var audience = ""
        var clientID = ""
        /// Allowed subjects; `["*"]` allows every subject of the tenant.
        var users: [String] = []
        /// Compared byte for byte with `iss`.
        var issuer = ""
        /// Empty: `jwks_uri` of the issuer's OpenID discovery document, else
        /// `<issuer>/.well-known/jwks.json`.
        var jwksURL = ""
        var algorithms = ["RS256", "ES256"]
        /// PEM CAs the provider's certificate must chain to; empty: the system's store.
        var caFile = ""

        /// The `iss` its tokens carry.
        var effectiveIssuer: String { issuer.isEmpty ? "https://\(domain)/" : issuer }
    }

    /// `[metrics]`: Prometheus's text format on a listener of its own.
    struct Metrics: Sendable {
        var enable = false
        /// Never the public listener: scrapes come from the monitoring network only.
        var listen = "127.0.0.1:9090"
    }

    /// A `[[user]]` entry.
    struct User: Sendable {
        var name: String
        /// A PHC hash from `gateway hash-password` (plaintext is accepted with a warning).
        var password: String
        var enabled = true
        /// The envelope profile's login answer then carries a `redirect` (a later issue).
        var mustChangePassword = false
    }

    struct Route: Sendable {
        enum AuthMode: String, Sendable { case required, none }
        /// Matched case-sensitively against the raw request path.
        var prefix: String
        /// "http://host:port" or "https://host:port".
        var upstream: String
        /// PEM CAs an https upstream's certificate must chain to; empty: the system's store.
        var caFile = ""
        /// The name an https upstream's certificate must carry (and SNI); empty: its host.
        var tlsServerName = ""
        var auth: AuthMode = .required
        var forwardAuthorization = false
        /// nil: `limits.body`.
        var maxBodyBytes: Int64?
        /// "datarhei" (DESIGN section 1 bodies) or "envelope" (`{"code","error","desc"}`).
        var errors = "datarhei"
        /// A WebSocket tunnel or streaming answer ends when the token that opened it expires or
        /// is revoked.
        var closeOnExpiry = true
        /// An access token of a configured identity provider opens the route directly.
        var acceptIdPTokens = false

        static let defaultAPI = Route(prefix: "/api/v3/", upstream: "http://127.0.0.1:9000")
    }
}
