/// Where a route's requests go: an address resolved when the configuration is loaded, and for an
/// `https://` upstream the trust its certificate must meet. Routes that agree on all of it share
/// one pool per worker.
struct UpstreamTarget: Sendable {
    /// `http://host:port` or `https://host:port`, as configured (without a trailing slash).
    let url: String
    /// `host:port`: the Host of the gateway's own requests to it.
    let hostPort: String
    let address: SocketAddress
    let tls: UpstreamTLS?
    /// Scheme, host, port, CA file and server name: what makes two routes share a pool, and a
    /// pool survive a reload.
    let key: String

    /// Resolves `route`'s upstream (blocking: only where configuration is loaded), sharing
    /// client contexts with `contexts` by CA file ("" for the system's store).
    static func resolve(_ route: GatewayConfig.Route, contexts: inout [String: TLSClientContext]) throws -> UpstreamTarget {
        var url = route.upstream
        if url.hasSuffix("/") { url.removeLast() }
        let secure = url.hasPrefix("https://")
        let hostPort = String(url.dropFirst(secure ? "https://".count : "http://".count))
        let address: SocketAddress
        let host: String
        do {
            address = try SocketAddress.resolve(hostPort)
            host = try SocketAddress.split(hostPort).0
        } catch {
            throw StartupError("route \(route.prefix): upstream \(route.upstream): \(error)")
        }
        guard secure else {
            return UpstreamTarget(url: url, hostPort: hostPort, address: address, tls: nil, key: url)
        }
        let context: TLSClientContext
        if let shared = contexts[route.caFile] {
            context = shared
        } else {
            context = try TLSClientContext.forCAFile(route.caFile, setting: "route \(route.prefix)")
            contexts[route.caFile] = context
        }
        let serverName = route.tlsServerName.isEmpty ? host : route.tlsServerName
        return UpstreamTarget(url: url, hostPort: hostPort, address: address,
                              tls: UpstreamTLS(context: context, serverName: serverName),
                              key: "\(url) ca=\(route.caFile) name=\(serverName)")
    }
}

/// How the gateway speaks TLS to an upstream: the trust it verifies against, and the name its
/// certificate must carry (sent as SNI; an address is matched against the IP entries instead).
struct UpstreamTLS: Sendable {
    let context: TLSClientContext
    let serverName: String
}
