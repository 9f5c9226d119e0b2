import TokenCore

/// The checks of `[api.auth.auth0]` and its tenants that need more than one key.
extension ConfigBuilder {
    mutating func validateIdentityProviders() throws {
        let idp = config.identityProviders
        let usesIdP = config.routes.contains(where: \.acceptIdPTokens)
        if usesIdP && !(idp.enable && !idp.tenants.isEmpty) {
            let i = config.routes.firstIndex(where: \.acceptIdPTokens)!
            throw fileError("route \(config.routes[i].prefix) says accept_idp_tokens, but no identity provider is on (api.auth.auth0.enable and [[api.auth.auth0.tenants]])",
                            line: i < routeLines.count ? routeLines[i] : 0)
        }
        for (i, route) in config.routes.enumerated() where route.acceptIdPTokens && route.auth == .none {
            throw fileError("route \(route.prefix) says accept_idp_tokens but auth = \"none\": it checks no token at all", line: i < routeLines.count ? routeLines[i] : 0)
        }
        guard idp.enable else { return }
        guard !idp.tenants.isEmpty else {
            throw error("api.auth.auth0.enable", "api.auth.auth0.enable is true but there is no [[api.auth.auth0.tenants]] section")
        }
        guard config.auth.enable else {
            throw error("api.auth.auth0.enable", "api.auth.auth0.enable needs api.auth.enable = true (sign-in gives the gateway's own tokens)")
        }
        var issuers: [String: Int] = [:]
        for (i, t) in idp.tenants.enumerated() {
            let line = i < tenantLines.count ? tenantLines[i] : 0
            if let problem = Self.tenantProblem(t) { throw fileError("[[api.auth.auth0.tenants]] \(problem)", line: line) }
            if let other = issuers[t.effectiveIssuer] {
                throw fileError("[[api.auth.auth0.tenants]] issuer \(t.effectiveIssuer) is also the issuer of the tenant at line \(other)", line: line)
            }
            issuers[t.effectiveIssuer] = line
            if t.users.contains("*") && t.users.count > 1 {
                throw fileError("[[api.auth.auth0.tenants]] users lists \"*\" beside names; \"*\" alone allows every subject", line: line)
            }
            if t.users == ["*"] {
                warnings.append("the api.auth.auth0 tenant \(t.effectiveIssuer) lets every subject in (users = [\"*\"]); anyone who can sign up there can sign in here (a local user's name never, unless listed)")
            }
            if t.users.isEmpty {
                warnings.append("the api.auth.auth0 tenant \(t.effectiveIssuer) lists no users: nobody can sign in with it (users = [\"*\"] allows every subject)")
            }
        }
    }

    /// What is wrong with one tenant, or nil.
    static func tenantProblem(_ t: GatewayConfig.Tenant) -> String? {
        if !t.domain.isEmpty {
            guard HTTPSLocation("https://\(t.domain)/")?.path == "/" else {
                return "domain must be a host name with an optional :port, no scheme or path (it is \(TOMLReader.quoted(t.domain)))"
            }
        }
        guard HTTPSLocation(t.effectiveIssuer) != nil else {
            return "issuer must be an https:// URL (it is \(TOMLReader.quoted(t.effectiveIssuer)))"
        }
        guard t.effectiveIssuer.utf8.count <= TokenVerifier.maxIdentityProviderBytes else {
            return "issuer is longer than \(TokenVerifier.maxIdentityProviderBytes) bytes"
        }
        if !t.jwksURL.isEmpty && HTTPSLocation(t.jwksURL) == nil {
            return "jwks_url must be an https:// URL (it is \(TOMLReader.quoted(t.jwksURL)))"
        }
        if t.algorithms.isEmpty { return "algorithms must list at least one algorithm" }
        return nil
    }
}
