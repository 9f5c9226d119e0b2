import Foundation
import TokenCore

/// Where a key's value came from, so errors can say where to fix it.
enum ConfigOrigin {
    case file(line: Int)
    case environment(String)
}

/// The configuration while it is read: the file, then the environment, then the checks.
struct ConfigBuilder {
    let fileName: String
    let settings = ConfigLoader.settings
    let routeSettings = ConfigLoader.routeSettings
    let userSettings = ConfigLoader.userSettings
    let tenantSettings = ConfigLoader.tenantSettings
    var config = GatewayConfig()
    var warnings: [String] = []
    var origins: [String: ConfigOrigin] = [:]
    /// Line of each route's `[[route]]` header, parallel to `config.routes` (empty for the default).
    var routeLines: [Int] = []
    /// Line of each user's `[[user]]` header, parallel to `config.users`.
    var userLines: [Int] = []
    /// Line of each `[[api.auth.auth0.tenants]]` header, parallel to the tenants.
    var tenantLines: [Int] = []

    init(fileName: String) { self.fileName = fileName }

    /// An error about `path`, placed at its file line or named by its environment variable.
    func error(_ path: String, _ message: String) -> ConfigError {
        switch origins[path] {
        case .file(let line)?: return ConfigError(message: message, line: line, fileName: fileName)
        case .environment(let name)?: return ConfigError(message: "\(name): \(message)", line: nil)
        case nil: return ConfigError(message: message, line: nil)
        }
    }

    func fileError(_ message: String, line: Int) -> ConfigError {
        ConfigError(message: message, line: line, fileName: fileName)
    }

    func unknownKey(_ path: String, line: Int, candidates: [String]) -> ConfigError {
        let hint = ConfigLoader.suggestion(for: path, among: candidates).map { "; did you mean \($0)?" } ?? ""
        return fileError("unknown key \(path)\(hint)", line: line)
    }

    // MARK: File

    mutating func read(_ tree: TOMLValue) throws {
        try readTable(tree.tableEntries ?? [], prefix: [])
    }

    mutating func readTable(_ entries: [(key: String, value: TOMLValue)], prefix: [String]) throws {
        let tables = ConfigLoader.tablePaths
        for (key, value) in entries {
            let segments = prefix + [key]
            // Segments that are not bare keys are shown quoted (so "a.b" is not a.b) and match nothing.
            let path = TOMLReader.display(segments)
            if let setting = settings.first(where: { $0.path == path }) {
                do {
                    try setting.apply(value, to: &config)
                } catch {
                    throw fileError("\(path) \(error.message)", line: value.line)
                }
                origins[path] = .file(line: value.line)
            } else if path == "route" {
                try readRoutes(value)
            } else if path == "user" {
                try readUsers(value)
            } else if path == "api.auth.auth0.tenants" {
                try readTenants(value)
            } else if case .table(let sub) = value.kind, tables.contains(path) || !sub.isEmpty {
                // An unknown table with keys in it: its keys are reported, with suggestions.
                try readTable(sub, prefix: segments)
            } else if tables.contains(path) {
                throw fileError("\(path) must be a table, not \(value.typeDescription)", line: value.line)
            } else {
                throw unknownKey(path, line: value.line, candidates: settings.map(\.path) + ["route", "user", "api.auth.auth0.tenants"] + tables)
            }
        }
    }

    mutating func readRoutes(_ value: TOMLValue) throws {
        guard case .array(let items) = value.kind, !items.isEmpty, items.allSatisfy({ $0.tableEntries != nil }) else {
            throw fileError("route must be written as [[route]] sections", line: value.line)
        }
        var routes: [GatewayConfig.Route] = []
        for item in items {
            var route = GatewayConfig.Route(prefix: "", upstream: "")
            var seen: Set<String> = []
            for (key, v) in item.tableEntries ?? [] {
                guard let setting = routeSettings.first(where: { $0.path == key }) else {
                    throw unknownKey("route.\(TOMLReader.display([key]))", line: v.line, candidates: routeSettings.map { "route.\($0.path)" })
                }
                do {
                    try setting.apply(v, to: &route)
                } catch {
                    throw fileError("route.\(key) \(error.message)", line: v.line)
                }
                seen.insert(key)
            }
            guard seen.contains("prefix") else { throw fileError("[[route]] has no prefix", line: item.line) }
            guard seen.contains("upstream") else { throw fileError("[[route]] \(route.prefix) has no upstream", line: item.line) }
            if let i = routes.firstIndex(where: { $0.prefix == route.prefix }) {
                throw fileError("route prefix \(TOMLReader.quoted(route.prefix)) is already used by the route at line \(routeLines[i])", line: item.line)
            }
            routes.append(route)
            routeLines.append(item.line)
        }
        // Longest prefix first, so the first match is the most specific; ties keep file order.
        let order = routes.indices.sorted { a, b in
            routes[a].prefix.count != routes[b].prefix.count ? routes[a].prefix.count > routes[b].prefix.count : a < b
        }
        config.routes = order.map { routes[$0] }
        routeLines = order.map { routeLines[$0] }
    }

    mutating func readUsers(_ value: TOMLValue) throws {
        guard case .array(let items) = value.kind, !items.isEmpty, items.allSatisfy({ $0.tableEntries != nil }) else {
            throw fileError("user must be written as [[user]] sections", line: value.line)
        }
        for item in items {
            var user = GatewayConfig.User(name: "", password: "")
            var lines: [String: Int] = [:]
            for (key, v) in item.tableEntries ?? [] {
                guard let setting = userSettings.first(where: { $0.path == key }) else {
                    throw unknownKey("user.\(TOMLReader.display([key]))", line: v.line, candidates: userSettings.map { "user.\($0.path)" })
                }
                do {
                    try setting.apply(v, to: &user)
                } catch {
                    throw fileError("user.\(key) \(error.message)", line: v.line)
                }
                lines[key] = v.line
            }
            guard lines["name"] != nil else { throw fileError("[[user]] has no name", line: item.line) }
            let shown = TOMLReader.quoted(user.name)
            guard let passwordLine = lines["password"] else { throw fileError("[[user]] \(shown) has no password", line: item.line) }
            if user.password == ConfigLoader.mask {
                throw fileError("user.password of user \(shown) is the mask \(TOMLReader.quoted(ConfigLoader.mask)) that check-config prints, not the real password", line: passwordLine)
            }
            if Self.looksHashed(user.password) && !PasswordHasher.isHash(user.password) {
                throw fileError("user.password of user \(shown) starts like a PHC hash but is not one `gateway hash-password` makes (check for a truncated copy)", line: passwordLine)
            }
            if let i = config.users.firstIndex(where: { $0.name == user.name }) {
                throw fileError("user name \(shown) is already used by the user at line \(userLines[i])", line: item.line)
            }
            config.users.append(user)
            userLines.append(item.line)
        }
    }

    mutating func readTenants(_ value: TOMLValue) throws {
        guard case .array(let items) = value.kind, !items.isEmpty, items.allSatisfy({ $0.tableEntries != nil }) else {
            throw fileError("api.auth.auth0.tenants must be written as [[api.auth.auth0.tenants]] sections", line: value.line)
        }
        for item in items {
            var tenant = GatewayConfig.Tenant()
            var seen: Set<String> = []
            for (key, v) in item.tableEntries ?? [] {
                guard let setting = tenantSettings.first(where: { $0.path == key }) else {
                    throw unknownKey("api.auth.auth0.tenants.\(TOMLReader.display([key]))", line: v.line,
                                     candidates: tenantSettings.map { "api.auth.auth0.tenants.\($0.path)" })
                }
                do {
                    try setting.apply(v, to: &tenant)
                } catch {
                    throw fileError("api.auth.auth0.tenants.\(key) \(error.message)", line: v.line)
                }
                seen.insert(key)
            }
            guard seen.contains("domain") || seen.contains("issuer") else {
                throw fileError("[[api.auth.auth0.tenants]] has neither domain nor issuer", line: item.line)
            }
            guard seen.contains("audience") else { throw fileError("[[api.auth.auth0.tenants]] has no audience", line: item.line) }
            config.identityProviders.tenants.append(tenant)
            tenantLines.append(item.line)
        }
    }

    /// Whether a password is meant to be a PHC hash rather than plaintext.
    static func looksHashed(_ password: String) -> Bool {
        password.hasPrefix("$scrypt$") || password.hasPrefix("$pbkdf2-sha256$")
    }
}
