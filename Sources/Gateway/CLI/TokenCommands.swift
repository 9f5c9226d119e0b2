import CGatewayShims
import Foundation
import TokenCore

/// `gateway keys generate`, `gateway token issue|verify`, `gateway hash-password`.
enum TokenCommands {
    /// The keys file, refused as the gateway refuses it when another user could change it.
    static func loadRing(_ path: String) throws -> KeyRing {
        if let problem = FileTrust.problem(path) { throw CommandFailure("keys file refused: \(problem)") }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw CommandFailure("cannot read keys file \(path): \(error.localizedDescription)")
        }
        do {
            return try KeyRing.fromJWKSet([UInt8](data))
        } catch {
            throw CommandFailure("keys file \(path): \(error)")
        }
    }

    static func algorithm(_ name: String) throws -> JWSAlgorithm {
        guard let a = JWSAlgorithm(rawValue: name), a.isHMAC else { throw UsageError("--alg must be HS256, HS384 or HS512") }
        return a
    }

    static func use(_ a: Arguments) throws -> TokenUse {
        guard let u = TokenUse(rawValue: a.options["use"] ?? "access") else { throw UsageError("--use must be access or refresh") }
        return u
    }

    /// `token issue --keys FILE --sub USER [--use access|refresh] [--iss NAME] [--ttl SECONDS]`.
    static func issue(_ args: ArraySlice<String>) throws -> Int32 {
        let a = try Arguments(args, options: ["keys", "sub", "use", "iss", "ttl"])
        guard a.positional.isEmpty else { throw UsageError("token issue takes no positional arguments") }
        let use = try use(a)
        let ttl = try a.int("ttl", default: use == .access ? 600 : 86_400)
        guard ttl > 0 else { throw UsageError("--ttl must be positive") }
        let subject = try a.require("sub")
        let ring = try loadRing(try a.require("keys"))
        let issuer = TokenIssuer(settings: IssuerSettings(issuer: a.options["iss"] ?? "datarhei-core"))
        do {
            let t = try issuer.issue(subject: subject, use: use, ring: ring, now: unixNow(), lifetime: ttl)
            print(t.token)
            return 0
        } catch {
            throw CommandFailure("cannot issue: \(error)")
        }
    }

    /// `token verify --keys FILE [--use access|refresh] [--iss NAME] [--leeway S] TOKEN`:
    /// the claims as JSON on stdout and exit 0, or the failed rule on stderr and exit 1.
    static func verify(_ args: ArraySlice<String>) throws -> Int32 {
        let a = try Arguments(args, options: ["keys", "use", "iss", "leeway"])
        guard a.positional.count == 1 else { throw UsageError("token verify needs exactly one TOKEN") }
        let use = try use(a)
        let policy = VerifierPolicy(issuer: a.options["iss"] ?? "datarhei-core", leeway: try a.int("leeway", default: 0))
        let ring = try loadRing(try a.require("keys"))
        let verifier = TokenVerifier(policy: policy)
        let token = a.positional[0]
        do {
            _ = try verifier.verify(token, use: use, ring: ring, now: unixNow())
        } catch {
            printError("invalid token: \(error.rule)")
            return 1
        }
        // Valid: print the claims (the signature holds, so they are the issuer's words).
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        if let bytes = Base64URL.decode(parts[1]), let claims = try? JSONValue.parse(bytes) {
            print(claims.pretty())
        }
        return 0
    }

    /// `hash-password [--scheme scrypt|pbkdf2]`: reads the password from stdin (without echo on a
    /// terminal) and prints its PHC string.
    static func hashPassword(_ args: ArraySlice<String>) throws -> Int32 {
        let a = try Arguments(args, options: ["scheme"])
        guard a.positional.isEmpty else { throw UsageError("hash-password reads the password from stdin, not from arguments") }
        let scheme: PasswordHasher.Scheme
        switch a.options["scheme"] ?? "scrypt" {
        case "scrypt": scheme = .default
        case "pbkdf2": scheme = .pbkdf2SHA256(iterations: 600_000)
        default: throw UsageError("--scheme must be scrypt or pbkdf2")
        }
        guard let password = readPassword(prompt: "Password: "), !password.isEmpty else {
            throw CommandFailure("no password given on standard input")
        }
        print(try PasswordHasher.hash(password, scheme: scheme))
        return 0
    }

    /// One line from stdin; on a terminal the prompt goes to stderr and echo is off meanwhile.
    static func readPassword(prompt: String) -> [UInt8]? {
        let tty = isatty(0) == 1
        var previous: Int32 = -1
        if tty {
            printErrorNoNewline(prompt)
            previous = gw_set_echo(0, 0)
        }
        defer {
            if tty {
                if previous >= 0 { _ = gw_set_echo(0, previous) }
                printError("")
            }
        }
        var bytes: [UInt8] = []
        var c: UInt8 = 0
        while read(0, &c, 1) == 1 {
            if c == 0x0A { break }
            bytes.append(c)
        }
        if bytes.last == 0x0D { bytes.removeLast() }
        return bytes
    }

    static func printErrorNoNewline(_ text: String) {
        writeAll(2, text)
    }
}

/// A command that could not do its work (exit status 1, message on stderr).
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
