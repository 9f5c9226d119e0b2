import Foundation
import TokenCore

/// How each kind of setting reads a TOML or environment value, checks it, and prints it back.
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
        /// A token subject: not empty, at most 256 bytes, no control characters.
        case subject
        /// A public-key signature algorithm an identity provider may sign with.
        case algorithm

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
            case .subject:
                guard !s.isEmpty, s.utf8.count <= 256, !s.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
                    return "must list subjects of 1 to 256 bytes without control characters (\(TOMLReader.quoted(s)) is not one)"
                }
                return nil
            case .algorithm:
                guard let a = JWSAlgorithm(rawValue: s), !a.isHMAC else {
                    return "must list RS256, RS384, RS512, ES256 or ES384 (\(TOMLReader.quoted(s)) is not one of them)"
                }
                return nil
            }
        }

        var noun: String {
            switch self {
            case .ipAddress: return "IP addresses"
            case .strippableField: return "header field names"
            case .subject: return "subjects"
            case .algorithm: return "algorithms"
            }
        }

        var example: String {
            switch self {
            case .ipAddress: return "[\"10.0.0.1\"]"
            case .strippableField: return "[\"X-Remote-User\"]"
            case .subject: return "[\"auth0|61f0c2...\"]"
            case .algorithm: return "[\"RS256\"]"
            }
        }
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
            guard let scheme = ["http://", "https://"].first(where: { s.hasPrefix($0) }) else {
                return "must be http://host:port or https://host:port (it is \(shown))"
            }
            var rest = s.dropFirst(scheme.count)
            if rest.hasSuffix("/") { rest = rest.dropLast() }
            if rest.contains(where: { $0 == "/" || $0 == "?" || $0 == "#" }) {
                return "must be \(scheme)host:port with no path (it is \(shown))"
            }
            if rest.contains("@") { return "must be \(scheme)host:port without user information (it is \(shown))" }
            return ConfigLoader.hostPortProblem(String(rest)).map { "must be \(scheme)host:port: \($0) (it is \(shown))" }
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
