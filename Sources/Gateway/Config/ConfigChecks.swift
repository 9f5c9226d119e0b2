import Foundation
import TokenCore

/// The environment over the file, then the checks across keys.
extension ConfigBuilder {
    // MARK: Environment

    mutating func applyEnvironment(_ environment: [String: String]) throws {
        var known: Set<String> = []
        for setting in settings {
            let name = setting.environmentName
            known.insert(name)
            var raw = environment[name]
            var source = name
            if setting.secret {
                let fileVariable = name + "_FILE"
                known.insert(fileVariable)
                if let path = environment[fileVariable] {
                    guard raw == nil else { throw ConfigError(message: "\(name) and \(fileVariable) are both set; use one", line: nil) }
                    raw = try Self.readSecretFile(path, variable: fileVariable)
                    source = fileVariable
                }
            }
            guard let raw else { continue }
            do {
                try setting.apply(setting.environmentValue(raw), to: &config)
            } catch {
                throw ConfigError(message: "\(source): \(setting.path) \(error.message)", line: nil)
            }
            origins[setting.path] = .environment(source)
        }
        for name in environment.keys.sorted() where name.hasPrefix("GATEWAY_") && !known.contains(name) {
            if name.hasSuffix("_FILE"), known.contains(String(name.dropLast("_FILE".count))) {
                let secrets = settings.filter(\.secret).map(\.path).joined(separator: ", ")
                warnings.append("environment variable \(name) ignored: only secrets (\(secrets)) can be read from a file")
                continue
            }
            let hint = ConfigLoader.suggestion(for: name, among: known.sorted()).map { "; did you mean \($0)?" } ?? ""
            warnings.append("unknown environment variable \(name) ignored\(hint)")
        }
    }

    /// A secret from a file, without the one trailing newline editors add.
    static func readSecretFile(_ path: String, variable: String) throws -> String {
        if let problem = FileTrust.problem(path) {
            throw ConfigError(message: "\(variable): refused: \(problem)", line: nil)
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(message: "\(variable): cannot read \(path)", line: nil)
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(message: "\(variable): \(path) is not UTF-8 text", line: nil)
        }
        // Scalars, not Characters: "\r\n" is a single Character.
        var scalars = text.unicodeScalars
        if scalars.last == "\n" {
            scalars.removeLast()
            if scalars.last == "\r" { scalars.removeLast() }
        }
        return String(scalars)
    }

    // MARK: Checks across keys

    mutating func validate() throws {
        let limits = config.limits, auth = config.auth, tokens = config.tokens

        for setting in settings where setting.secret && setting.textValue(config) == ConfigLoader.mask {
            throw error(setting.path, "\(setting.path) is the mask \(TOMLReader.quoted(ConfigLoader.mask)) that check-config prints, not the real value")
        }
        // Checked here rather than when read, so a masked value in the file can be replaced
        // from the environment.
        let secretBytes = tokens.secret.utf8.count
        if secretBytes > 0 && secretBytes < 32 {
            throw error("api.auth.jwt.secret", "api.auth.jwt.secret must be at least 32 bytes (it is \(secretBytes))")
        }
        if config.tls.enable {
            for (path, value) in [("tls.cert_file", config.tls.certFile), ("tls.key_file", config.tls.keyFile)] where value.isEmpty {
                throw error(path, "tls.enable is true but \(path) is empty (`gateway tls self-signed` makes a pair for testing)")
            }
            if config.tls.address == config.server.listen {
                throw error("tls.address", "tls.address and server.listen are the same address (\(config.tls.address)); give HTTPS its own")
            }
        }
        if limits.headerBytes < limits.requestLineBytes {
            let at = origins["limits.header_bytes"] != nil ? "limits.header_bytes" : "limits.request_line"
            throw error(at, "limits.header_bytes (\(limits.headerBytes)) must be at least limits.request_line (\(limits.requestLineBytes))")
        }
        if !tokens.secret.isEmpty && !tokens.keysFile.isEmpty {
            throw error("api.auth.jwt.secret", "api.auth.jwt.secret and api.auth.jwt.keys_file are both set; use one")
        }
        if tokens.accessTTLSeconds >= tokens.refreshTTLSeconds {
            let at = origins["api.auth.jwt.access_ttl"] != nil ? "api.auth.jwt.access_ttl" : "api.auth.jwt.refresh_ttl"
            throw error(at, "api.auth.jwt.access_ttl (\(tokens.accessTTLSeconds)s) must be shorter than api.auth.jwt.refresh_ttl (\(tokens.refreshTTLSeconds)s)")
        }
        if !auth.enable {
            for (i, route) in config.routes.enumerated() where route.auth != .none {
                if i < routeLines.count {
                    throw fileError("route \(route.prefix) must say auth = \"none\": api.auth.enable is false, so nobody can log in", line: routeLines[i])
                }
                throw error("api.auth.enable", "api.auth.enable is false, but the default route \(route.prefix) requires auth; add a [[route]] with auth = \"none\"")
            }
        }

        for (i, route) in config.routes.enumerated() where !route.upstream.hasPrefix("https://") {
            for (key, value) in [("ca_file", route.caFile), ("tls_server_name", route.tlsServerName)] where !value.isEmpty {
                throw fileError("route \(route.prefix) sets \(key), but its upstream \(route.upstream) is not https://", line: i < routeLines.count ? routeLines[i] : 0)
            }
        }

        try validateIdentityProviders()

        if config.metrics.enable {
            let public_ = [config.server.listen] + (config.tls.enable ? [config.tls.address] : [])
            if let clash = public_.first(where: { Self.sameListener($0, config.metrics.listen) }) {
                throw error("metrics.listen", "metrics.listen (\(config.metrics.listen)) would share \(clash) with the public listener; give metrics an address of its own")
            }
        }

        // Checked here rather than when read, as api.auth.username may come from the environment.
        if let i = config.users.firstIndex(where: { $0.name == auth.username }) {
            throw fileError("user name \(TOMLReader.quoted(auth.username)) is also api.auth.username; give the [[user]] another name", line: userLines[i])
        }

        if !auth.password.isEmpty && !Self.looksHashed(auth.password) {
            warnings.append("api.auth.password is plaintext; store a hash from `gateway hash-password`")
        }
        for user in config.users where !Self.looksHashed(user.password) {
            warnings.append("the password of user \(TOMLReader.quoted(user.name)) is plaintext; store a hash from `gateway hash-password`")
        }
        let hasEnabledUser = config.users.contains(where: \.enabled)
        let idpSignIn = config.identityProviders.enable && !config.identityProviders.tenants.isEmpty
        if auth.enable && !hasEnabledUser && !idpSignIn && (auth.username.isEmpty || auth.password.isEmpty) {
            warnings.append("api.auth.enable is true but api.auth.username or api.auth.password is empty: nobody can log in until both are set (GATEWAY_API_AUTH_PASSWORD or GATEWAY_API_AUTH_PASSWORD_FILE)")
        }
    }
}

extension ConfigBuilder {
    /// Two host:port listeners that would take the same connections: the same port, and the
    /// same host or either a wildcard (0.0.0.0, [::]).
    static func sameListener(_ a: String, _ b: String) -> Bool {
        guard let (ha, pa) = try? SocketAddress.split(a), let (hb, pb) = try? SocketAddress.split(b), pa == pb else { return false }
        let wildcard: Set<String> = ["0.0.0.0", "::", ""]
        return ha == hb || wildcard.contains(ha) || wildcard.contains(hb)
    }
}
