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
        for route in config.routes {
            out += "\n[[route]]\n"
            for key in routeSettings {
                if let text = key.render(route) { out += line(key.path, text, key.doc) }
            }
        }
        return out
    }

    // MARK: - The key table

    /// Every scalar key of gateway.conf, in the order `effectiveText` prints them.
    static var settings: [Setting<GatewayConfig>] {
        [
            .init("server.listen", .text(\.server.listen, .hostPort), "address to listen on, \"host:port\" (IPv6 as \"[::1]:8080\")"),
            .init("server.workers", .workers(\.server.workers), "worker threads, each with its own event loop: \"auto\" (one per core) or a number"),
            .init("server.max_connections", .count(\.server.maxConnections, 1...1_000_000), "open client connections per worker; accepting pauses beyond it"),
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
            .init("log.access", .flag(\.log.access), "one line per request on stdout"),
            .init("log.level", .choice(\.log.level, ["error", "warn", "info", "debug"]), "\"error\", \"warn\", \"info\" or \"debug\""),
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
            .init("upstream", .text(\.upstream, .upstream), "\"http://host:port\", no path"),
            .init("auth", .authMode(\.auth), "\"required\" (a valid access token) or \"none\""),
            .init("forward_authorization", .flag(\.forwardAuthorization), "pass the client's Authorization header to the upstream"),
            .init("max_body", .optionalSize(\.maxBodyBytes), "request body limit for this route; limits.body when absent"),
            .init("errors", .choice(\.errors, ["datarhei", "envelope"]), "shape of the gateway's own errors on this route: \"datarhei\" or \"envelope\""),
            .init("close_on_expiry", .flag(\.closeOnExpiry), "end a WebSocket or streaming answer when the token that opened it expires or is revoked"),
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

// MARK: - Settings

extension ConfigLoader {
    /// One key of gateway.conf: its path, how its value is read and where it goes, whether it is
    /// secret, and a line of documentation.
    struct Setting<Root> {
        let path: String
        let kind: SettingKind<Root>
        let doc: String
        let secret: Bool

        init(_ path: String, _ kind: SettingKind<Root>, _ doc: String, secret: Bool = false) {
            self.path = path
            self.kind = kind
            self.doc = doc
            self.secret = secret
        }

        /// The table the key sits in (`api.auth.jwt`), and its own name (`secret`).
        var table: String { path.split(separator: ".").dropLast().joined(separator: ".") }
        var name: String { String(path.split(separator: ".").last ?? "") }
        var environmentName: String { ConfigLoader.environmentName(path) }
    }

    /// What a key's value is and where it is stored. Durations are read as an integer number of
    /// seconds or a string like `"500ms"`, `"15s"`, `"10m"`, `"24h"`; sizes as an integer number of
    /// bytes or a string like `"512KiB"`, `"10MiB"`, `"1GiB"` (binary units only: "MB" could mean
    /// either, so it is refused).
    enum SettingKind<Root> {
        case text(WritableKeyPath<Root, String>, TextRule)
        case choice(WritableKeyPath<Root, String>, [String])
        case flag(WritableKeyPath<Root, Bool>)
        case count(WritableKeyPath<Root, Int>, ClosedRange<Int>)
        /// `"auto"` (stored as 0) or a number of threads.
        case workers(WritableKeyPath<Root, Int>)
        case milliseconds(WritableKeyPath<Root, Int>, minimum: Int, maximum: Int = .max)
        case seconds(WritableKeyPath<Root, Int64>, minimum: Int64)
        case size(WritableKeyPath<Root, Int64>, minimum: Int64)
        /// A size that may be absent (nil).
        case optionalSize(WritableKeyPath<Root, Int64?>)
        /// A list of strings, each checked by the rule; a comma-separated list in the environment.
        case list(WritableKeyPath<Root, [String]>, ListItem)
        case authMode(WritableKeyPath<Root, GatewayConfig.Route.AuthMode>)
    }

    /// What each string of a list must be.
    enum ListItem {
        /// An IPv4 or IPv6 address literal.
        case ipAddress
        /// A header field name the gateway may drop from requests: not one it needs to read the
        /// request (Host, the framing fields, Authorization, Connection, Upgrade).
        case strippableField

        static let maxFields = 64

        func problem(_ s: String) -> String? {
            switch self {
            case .ipAddress:
                return ConfigLoader.isIPAddress(s) ? nil : "must list IP addresses (\(TOMLReader.quoted(s)) is not one)"
            case .strippableField:
                guard !s.isEmpty, s.utf8.count <= 256, s.utf8.allSatisfy(HTTPBytes.isTchar) else {
                    return "must list header field names (\(TOMLReader.quoted(s)) is not one)"
                }
                let kept = ["host", "content-length", "transfer-encoding", "authorization", "connection", "upgrade", "expect"]
                guard !kept.contains(String(s.lowercased().map { $0 == "_" ? "-" : $0 })) else {
                    return "must not list \(s): the gateway reads it to frame, route or check the request"
                }
                return nil
            }
        }

        var noun: String { self == .ipAddress ? "IP addresses" : "header field names" }
        var example: String { self == .ipAddress ? "[\"10.0.0.1\"]" : "[\"X-Remote-User\"]" }
    }

    /// Checks on a string value that need no other key.
    enum TextRule {
        case any, nonEmpty, hostPort, upstream, pathPrefix
        /// Three dot-separated numbers, like "16.16.0".
        case version
        /// A `[[user]]` name: not empty, no control characters, at most 256 bytes.
        case userName
    }

    /// Why a value does not fit its key, as the end of a sentence whose subject is the key
    /// ("must be ...").
    struct SettingProblem: Error {
        let message: String
        init(_ message: String) { self.message = message }
    }

    /// What is wrong with "host:port" (IPv6 hosts in brackets), or nil.
    static func hostPortProblem(_ s: String) -> String? {
        let host: Substring, port: Substring
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]"), s[s.index(after: close)...].hasPrefix(":") else {
                return "an IPv6 host must be followed by ]:port"
            }
            host = s[s.index(after: s.startIndex)..<close]
            port = s[s.index(close, offsetBy: 2)...]
        } else {
            guard let colon = s.lastIndex(of: ":") else { return "there is no :port" }
            host = s[..<colon]
            port = s[s.index(after: colon)...]
            if host.contains(":") { return "an IPv6 host must be in brackets" }
        }
        if host.isEmpty { return "the host is missing" }
        if host.contains(where: { $0 == " " || $0 == "/" || $0 == "@" }) { return "the host is not a host name or address" }
        guard !port.isEmpty, port.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(port), n >= 1 && n <= 65535 else {
            return "the port must be a number from 1 to 65535"
        }
        return nil
    }

    /// An IPv4 or IPv6 address literal (no brackets, no port).
    static func isIPAddress(_ s: String) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 16)
        return inet_pton(AF_INET, s, &buffer) == 1 || inet_pton(AF_INET6, s, &buffer) == 1
    }
}

extension ConfigLoader.Setting {
    typealias Problem = ConfigLoader.SettingProblem

    /// Reads `value` into `root`, or says why it does not fit.
    func apply(_ value: TOMLValue, to root: inout Root) throws(Problem) {
        switch kind {
        case .text(let kp, let rule):
            let s = try Self.string(value)
            if let problem = Self.check(s, rule) { throw Problem(problem) }
            root[keyPath: kp] = s
        case .choice(let kp, let options):
            let s = try Self.string(value)
            guard options.contains(s) else { throw Problem("must be one of \(Self.list(options)) (it is \(TOMLReader.quoted(s)))") }
            root[keyPath: kp] = s
        case .authMode(let kp):
            let s = try Self.string(value)
            guard let mode = GatewayConfig.Route.AuthMode(rawValue: s) else {
                throw Problem("must be \"required\" or \"none\" (it is \(TOMLReader.quoted(s)))")
            }
            root[keyPath: kp] = mode
        case .flag(let kp):
            guard case .bool(let b) = value.kind else { throw Problem("must be true or false, not \(Self.found(value))") }
            root[keyPath: kp] = b
        case .count(let kp, let range):
            guard case .integer(let n) = value.kind else { throw Problem("must be an integer, not \(Self.found(value))") }
            guard n >= range.lowerBound && n <= range.upperBound else {
                throw Problem("must be between \(range.lowerBound) and \(range.upperBound) (it is \(n))")
            }
            root[keyPath: kp] = Int(n)
        case .workers(let kp):
            switch value.kind {
            case .string("auto"): root[keyPath: kp] = 0
            case .integer(let n) where n >= 1 && n <= 1024: root[keyPath: kp] = Int(n)
            case .integer(let n): throw Problem("must be \"auto\" or a number from 1 to 1024 (it is \(n))")
            default: throw Problem("must be \"auto\" or a number from 1 to 1024, not \(Self.found(value))")
            }
        case .milliseconds(let kp, let minimum, let maximum):
            let ms = try Self.duration(value)
            guard ms >= Int64(minimum) else { throw Problem(minimum > 0 ? "must be greater than 0" : "must not be negative") }
            guard ms <= Int64(maximum) else {
                throw Problem("must be at most \(Self.durationWords(Int64(maximum))) (it is \(Self.durationWords(ms)))")
            }
            root[keyPath: kp] = Int(ms)
        case .seconds(let kp, let minimum):
            let ms = try Self.duration(value)
            guard ms % 1000 == 0 else { throw Problem("must be a whole number of seconds (it is \(ms)ms)") }
            guard ms / 1000 >= minimum else { throw Problem(minimum > 0 ? "must be at least \(minimum)s" : "must not be negative") }
            root[keyPath: kp] = ms / 1000
        case .size(let kp, let minimum):
            let n = try Self.size(value)
            guard n >= minimum else { throw Problem("must be at least \(minimum) bytes (it is \(n))") }
            root[keyPath: kp] = n
        case .optionalSize(let kp):
            root[keyPath: kp] = try Self.size(value)
        case .list(let kp, let rule):
            guard case .array(let items) = value.kind else {
                throw Problem("must be an array of \(rule.noun) like \(rule.example), not \(Self.found(value))")
            }
            guard items.count <= ConfigLoader.ListItem.maxFields else {
                throw Problem("must list at most \(ConfigLoader.ListItem.maxFields) \(rule.noun) (it lists \(items.count))")
            }
            var strings: [String] = []
            for item in items {
                guard case .string(let s) = item.kind else { throw Problem("must list \(rule.noun) as strings, not \(Self.found(item))") }
                if let problem = rule.problem(s) { throw Problem(problem) }
                strings.append(s)
            }
            root[keyPath: kp] = strings
        }
    }

    /// An environment variable's text as the value the file would hold: integers where the key
    /// takes numbers, booleans for flags, a comma-separated list for arrays, a string otherwise.
    func environmentValue(_ raw: String) -> TOMLValue {
        let trimmed = raw.trimmingCharacters(in: .whitespaces)
        switch kind {
        case .text, .choice, .authMode:
            return TOMLValue(.string(raw))
        case .flag:
            return trimmed == "true" || trimmed == "false" ? TOMLValue(.bool(trimmed == "true")) : TOMLValue(.string(raw))
        case .count, .workers, .milliseconds, .seconds, .size, .optionalSize:
            if case .success(let n) = TOMLReader.integer(trimmed) { return TOMLValue(.integer(n)) }
            return TOMLValue(.string(trimmed))
        case .list:
            let items = raw.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            return TOMLValue(.array(items.map { TOMLValue(.string($0)) }))
        }
    }

    /// The value in `root` as TOML text (secrets masked), or nil when absent.
    func render(_ root: Root) -> String? {
        switch kind {
        case .text(let kp, _), .choice(let kp, _):
            let s = root[keyPath: kp]
            return TOMLReader.quoted(secret && !s.isEmpty ? ConfigLoader.mask : s)
        case .authMode(let kp): return TOMLReader.quoted(root[keyPath: kp].rawValue)
        case .flag(let kp): return String(root[keyPath: kp])
        case .count(let kp, _): return String(root[keyPath: kp])
        case .workers(let kp): return root[keyPath: kp] == 0 ? "\"auto\"" : String(root[keyPath: kp])
        case .milliseconds(let kp, _, _): return Self.durationText(milliseconds: Int64(root[keyPath: kp]))
        case .seconds(let kp, _): return Self.durationText(milliseconds: root[keyPath: kp] * 1000)
        case .size(let kp, _): return Self.sizeText(root[keyPath: kp])
        case .optionalSize(let kp): return root[keyPath: kp].map(Self.sizeText)
        case .list(let kp, _): return "[" + root[keyPath: kp].map(TOMLReader.quoted).joined(separator: ", ") + "]"
        }
    }

    /// The value as it would be read back, for the checks across keys.
    func textValue(_ root: Root) -> String? {
        if case .text(let kp, _) = kind { return root[keyPath: kp] }
        return nil
    }

    // MARK: Reading values

    /// What was found instead: the type, or for environment values (line 0, all text to begin
    /// with) the text itself. Only non-text keys use it, so secrets are never shown.
    private static func found(_ v: TOMLValue) -> String {
        switch v.kind {
        case .string(let s) where v.line == 0: return "\(TOMLReader.quoted(s))"
        default: return v.typeDescription
        }
    }

    private static func list(_ options: [String]) -> String {
        options.map(TOMLReader.quoted).joined(separator: ", ")
    }

    private static func string(_ v: TOMLValue) throws(Problem) -> String {
        guard case .string(let s) = v.kind else { throw Problem("must be a string, not \(v.typeDescription)") }
        return s
    }

    /// Milliseconds from an integer number of seconds or `"<n>ms|s|m|h"`.
    private static func duration(_ v: TOMLValue) throws(Problem) -> Int64 {
        let expected = "a number of seconds or a string like \"500ms\", \"15s\", \"10m\" or \"24h\""
        switch v.kind {
        case .integer(let n):
            guard n >= 0 else { throw Problem("must not be negative") }
            let (ms, overflow) = n.multipliedReportingOverflow(by: 1000)
            guard !overflow else { throw Problem("is too large") }
            return ms
        case .string(let s):
            let digits = s.prefix(while: { $0.isASCII && $0.isNumber })
            let units: [Substring: Int64] = ["ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000]
            guard !digits.isEmpty, let unit = units[s.dropFirst(digits.count)], let n = Int64(digits) else {
                throw Problem("must be a duration: \(expected) (it is \(TOMLReader.quoted(s)))")
            }
            let (ms, overflow) = n.multipliedReportingOverflow(by: unit)
            guard !overflow else { throw Problem("is too large") }
            return ms
        default:
            throw Problem("must be a duration: \(expected), not \(v.typeDescription)")
        }
    }

    /// Bytes from an integer or `"<n>B|KiB|MiB|GiB"`.
    private static func size(_ v: TOMLValue) throws(Problem) -> Int64 {
        let expected = "a number of bytes or a string like \"512KiB\", \"10MiB\" or \"1GiB\""
        switch v.kind {
        case .integer(let n):
            guard n >= 0 else { throw Problem("must not be negative") }
            return n
        case .string(let s):
            let digits = s.prefix(while: { $0.isASCII && $0.isNumber })
            let unit = s.dropFirst(digits.count).trimmingCharacters(in: .whitespaces)
            let units: [String: Int64] = ["": 1, "b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40]
            if ["k", "kb", "m", "mb", "g", "gb", "t", "tb"].contains(unit.lowercased()) {
                throw Problem("uses the ambiguous unit \"\(unit)\"; write KiB, MiB or GiB (powers of 1024) or a plain number of bytes")
            }
            guard !digits.isEmpty, let n = Int64(digits), let multiplier = units[unit.lowercased()] else {
                throw Problem("must be a size: \(expected) (it is \(TOMLReader.quoted(s)))")
            }
            let (bytes, overflow) = n.multipliedReportingOverflow(by: multiplier)
            guard !overflow else { throw Problem("is too large") }
            return bytes
        default:
            throw Problem("must be a size: \(expected), not \(v.typeDescription)")
        }
    }

    private static func durationText(milliseconds ms: Int64) -> String {
        if ms == 0 { return "\"0s\"" }
        for (unit, size) in [("h", Int64(3_600_000)), ("m", 60_000), ("s", 1000)] where ms % size == 0 {
            return "\"\(ms / size)\(unit)\""
        }
        return "\"\(ms)ms\""
    }

    /// `60s` or `1500ms`, for messages.
    private static func durationWords(_ ms: Int64) -> String {
        ms % 1000 == 0 ? "\(ms / 1000)s" : "\(ms)ms"
    }

    private static func sizeText(_ bytes: Int64) -> String {
        guard bytes > 0 else { return "0" }
        for (unit, size) in [("GiB", Int64(1) << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] where bytes % size == 0 {
            return "\"\(bytes / size)\(unit)\""
        }
        return String(bytes)
    }

    /// A problem with a string under `rule`, or nil when it is fine.
    private static func check(_ s: String, _ rule: ConfigLoader.TextRule) -> String? {
        switch rule {
        case .any:
            return nil
        case .nonEmpty:
            return s.isEmpty ? "must not be empty" : nil
        case .hostPort:
            return ConfigLoader.hostPortProblem(s).map { "must be host:port like \"127.0.0.1:8080\" or \"[::1]:8080\": \($0) (it is \(TOMLReader.quoted(s)))" }
        case .pathPrefix:
            guard s.hasPrefix("/") else { return "must start with \"/\" (it is \(TOMLReader.quoted(s)))" }
            if s.unicodeScalars.contains(where: { $0 == "?" || $0 == "#" || $0.value <= 0x20 || $0.value == 0x7F }) {
                return "must be a path without spaces, control characters, '?' or '#' (it is \(TOMLReader.quoted(s)))"
            }
            return nil
        case .upstream:
            let shown = TOMLReader.quoted(s)
            if s.lowercased().hasPrefix("https://") {
                return "must be http://host:port: https upstreams are not supported yet (it is \(shown))"
            }
            guard s.hasPrefix("http://") else { return "must be http://host:port (it is \(shown))" }
            var rest = s.dropFirst("http://".count)
            if rest.hasSuffix("/") { rest = rest.dropLast() }
            if rest.contains(where: { $0 == "/" || $0 == "?" || $0 == "#" }) {
                return "must be http://host:port with no path (it is \(shown))"
            }
            if rest.contains("@") { return "must be http://host:port without user information (it is \(shown))" }
            return ConfigLoader.hostPortProblem(String(rest)).map { "must be http://host:port: \($0) (it is \(shown))" }
        case .version:
            let parts = s.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 3, parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy { $0.isASCII && $0.isNumber } }) else {
                return "must be a version of three numbers like \"16.16.0\" (it is \(TOMLReader.quoted(s)))"
            }
            return nil
        case .userName:
            if s.isEmpty { return "must not be empty" }
            if s.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
                return "must not contain control characters"
            }
            let bytes = s.utf8.count
            return bytes > 256 ? "must be at most 256 bytes (it is \(bytes))" : nil
        }
    }
}

// MARK: - Building

/// Where a key's value came from, so errors can say where to fix it.
private enum Origin {
    case file(line: Int)
    case environment(String)
}

/// The configuration while it is read: the file, then the environment, then the checks.
private struct ConfigBuilder {
    let fileName: String
    let settings = ConfigLoader.settings
    let routeSettings = ConfigLoader.routeSettings
    let userSettings = ConfigLoader.userSettings
    var config = GatewayConfig()
    var warnings: [String] = []
    var origins: [String: Origin] = [:]
    /// Line of each route's `[[route]]` header, parallel to `config.routes` (empty for the default).
    var routeLines: [Int] = []
    /// Line of each user's `[[user]]` header, parallel to `config.users`.
    var userLines: [Int] = []

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
            } else if case .table(let sub) = value.kind, tables.contains(path) || !sub.isEmpty {
                // An unknown table with keys in it: its keys are reported, with suggestions.
                try readTable(sub, prefix: segments)
            } else if tables.contains(path) {
                throw fileError("\(path) must be a table, not \(value.typeDescription)", line: value.line)
            } else {
                throw unknownKey(path, line: value.line, candidates: settings.map(\.path) + ["route", "user"] + tables)
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

    /// Whether a password is meant to be a PHC hash rather than plaintext.
    static func looksHashed(_ password: String) -> Bool {
        password.hasPrefix("$scrypt$") || password.hasPrefix("$pbkdf2-sha256$")
    }

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
        if auth.enable && !hasEnabledUser && (auth.username.isEmpty || auth.password.isEmpty) {
            warnings.append("api.auth.enable is true but api.auth.username or api.auth.password is empty: nobody can log in until both are set (GATEWAY_API_AUTH_PASSWORD or GATEWAY_API_AUTH_PASSWORD_FILE)")
        }
    }
}
