import Glibc

/// Which login API an endpoint speaks: datarhei Core's or the envelope profile's.
enum LoginAPI: Equatable, Sendable {
    case datarhei, envelope
}

/// Where a request goes.
enum Endpoint: Equatable, Sendable {
    case health, ready, about, login(LoginAPI), refresh(LoginAPI), logout
    /// The route at this index of `GatewayState.routes`.
    case proxy(Int)
    case notFound
}

/// The one table every request path is matched against, compiled with each configuration: the
/// gateway's own endpoints by exact path, then route prefixes, longest first. Matching is byte
/// for byte and case-sensitive throughout (`/HEALTHZ` and `/API/LOGIN` are not endpoints).
struct EndpointTable: Sendable {
    private let exact: [(path: [UInt8], endpoint: Endpoint)]
    private let routes: [CompiledRoute]

    /// `routes` longest prefix first (as `GatewayState` sorts them).
    init(config: GatewayConfig, routes: [CompiledRoute]) {
        var exact: [([UInt8], Endpoint)] = [(Array("/healthz".utf8), .health), (Array("/readyz".utf8), .ready),
                                            (Array("/api".utf8), .about)]
        if config.auth.enable {
            // The envelope paths first: a configuration may place them anywhere.
            if config.profiles.envelope {
                exact.append((Array(config.profiles.envelopeLoginPath.utf8), .login(.envelope)))
                exact.append((Array(config.profiles.envelopeRefreshPath.utf8), .refresh(.envelope)))
            }
            exact.append((Array("/api/login".utf8), .login(.datarhei)))
            exact.append((Array("/api/login/refresh".utf8), .refresh(.datarhei)))
            exact.append((Array("/api/logout".utf8), .logout))
        }
        self.exact = exact
        self.routes = routes
    }

    /// The endpoint of a checked path (`Router.checkTarget`: the target up to `?`).
    func match(_ path: UnsafeRawBufferPointer) -> Endpoint {
        for e in exact where e.path.count == path.count {
            if e.path.withUnsafeBytes({ memcmp($0.baseAddress!, path.baseAddress!, path.count) == 0 }) { return e.endpoint }
        }
        if let i = Router.match(path, routes: routes) { return .proxy(i) }
        return .notFound
    }
}
