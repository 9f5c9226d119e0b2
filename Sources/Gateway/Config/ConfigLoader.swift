import Foundation
import TokenCore

/// A configuration problem in the user's words, with the file line when it came from the file.
struct ConfigError: Error, CustomStringConvertible {
    let message: String
    let line: Int?
    var column: Int? = nil
    var fileName = ""

    /// `gateway.conf:12: message` (with `:column` for syntax errors) when the line is known.
    var description: String {
        guard let line else { return message }
        let position = column.map { "\(line):\($0)" } ?? "\(line)"
        return fileName.isEmpty ? "line \(position): \(message)" : "\(fileName):\(position): \(message)"
    }
}

/// A configuration ready to use, and what deserves a word in the log.
struct LoadedConfig: Sendable {
    var config: GatewayConfig
    var warnings: [String]
}

/// Builds a `GatewayConfig`: gateway.conf, then `GATEWAY_*` environment overrides, then checks
/// across keys. Everything a key is (its TOML path, how its value is read, where it goes, whether
/// it is secret) is in `settings`, `routeSettings` and `userSettings`; the file reader, the
/// environment overrides and `effectiveText` all work from those tables.
enum ConfigLoader {
    /// What `effectiveText` prints for a secret that is set.
    static let mask = "********"

    static func load(path: String, environment: [String: String]) throws -> LoadedConfig {
        if let problem = FileTrust.problem(path) {
            throw ConfigError(message: "refused: \(problem)", line: nil)
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(message: "cannot read \(path)", line: nil)
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(message: "\(path) is not UTF-8 text", line: nil)
        }
        var loaded = try load(text: text, fileName: path, environment: environment)
        loaded.config.sourcePath = path
        return loaded
    }

    static func load(text: String, fileName: String, environment: [String: String]) throws -> LoadedConfig {
        let tree: TOMLValue
        do {
            tree = try TOMLReader.parse(text, fileName: fileName)
        } catch {
            throw ConfigError(message: error.message, line: error.line, column: error.column, fileName: fileName)
        }
        var builder = ConfigBuilder(fileName: fileName)
        try builder.read(tree)
        try builder.applyEnvironment(environment)
        try builder.validate()
        return LoadedConfig(config: builder.config, warnings: builder.warnings)
    }

    /// The effective configuration as TOML text with every secret masked (`"********"` when set,
    /// `""` when empty), one key per line, users as `[[user]]` and routes as `[[route]]` blocks:
    /// what `gateway check-config` prints. Loading it back (secrets supplied through the
    /// environment, users' passwords written back in place of the mask) gives the same
    /// configuration.
    static func effectiveText(_ config: GatewayConfig) -> String {
        /// `key = value`, then the key's doc as a comment, aligned as in the example gateway.conf.
        func line(_ name: String, _ value: String, _ doc: String) -> String {
            let assignment = "\(name) = \(value)"
            let padding = String(repeating: " ", count: max(1, 36 - assignment.count))
            return assignment + padding + "# " + doc + "\n"
        }
        var out = "# Effective configuration: gateway.conf, then GATEWAY_* environment overrides. Secrets are masked.\n"
        var section = ""
        for key in settings {
            let table = key.table
            if table != section {
                out += "\n[\(table)]\n"
                section = table
            }
            if let text = key.render(config) { out += line(key.name, text, key.doc) }
        }
        for user in config.users {
            out += "\n[[user]]\n"
            for key in userSettings {
                if let text = key.render(user) { out += line(key.path, text, key.doc) }
            }
        }
        for tenant in config.identityProviders.tenants {
            out += "\n[[api.auth.auth0.tenants]]\n"
            for key in tenantSettings {
                if let text = key.render(tenant) { out += line(key.path, text, key.doc) }
            }
        }
        for route in config.routes {
            out += "\n[[route]]\n"
            // The TLS keys only where they mean something.
            let plain = !route.upstream.hasPrefix("https://")
            let idpOff = !route.acceptIdPTokens && !config.identityProviders.enable
            for key in routeSettings where !(plain && (key.path == "ca_file" || key.path == "tls_server_name"))
                && !(idpOff && key.path == "accept_idp_tokens") {
                if let text = key.render(route) { out += line(key.path, text, key.doc) }
            }
        }
        return out
    }
}
