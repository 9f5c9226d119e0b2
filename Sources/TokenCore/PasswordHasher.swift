import CGatewayShims

/// Password hashes in PHC string format, computed by libcrypto:
/// `$scrypt$ln=15,r=8,p=1$<salt>$<hash>` (default) or `$pbkdf2-sha256$i=600000$<salt>$<hash>`,
/// salt and hash in unpadded standard base64. Verification recomputes and compares in constant
/// time. Hashing is deliberately slow (tens of milliseconds): never call it on an event loop.
public enum PasswordHasher {
    public enum Scheme: Equatable, Sendable {
        /// scrypt with N = 2^logN.
        case scrypt(logN: Int, r: Int, p: Int)
        case pbkdf2SHA256(iterations: Int)

        public static let `default` = Scheme.scrypt(logN: 15, r: 8, p: 1)
    }

    public enum Failure: Error, Equatable, Sendable {
        /// The stored string is not a PHC string this gateway reads.
        case malformedHash(String)
        /// Parameters outside the accepted bounds (too weak, or costly enough to be an attack).
        case unsupportedParameters(String)
        case cryptoFailure
    }

    static let saltBytes = 16
    static let hashBytes = 32

    /// A new PHC string for `password` with a random salt.
    public static func hash(_ password: [UInt8], scheme: Scheme = .default) throws(Failure) -> String {
        try check(scheme)
        let salt = Crypto.randomBytes(saltBytes)
        let derived = try derive(password, salt: salt, scheme: scheme, length: hashBytes)
        let params: String
        switch scheme {
        case let .scrypt(logN, r, p): params = "$scrypt$ln=\(logN),r=\(r),p=\(p)"
        case let .pbkdf2SHA256(iterations): params = "$pbkdf2-sha256$i=\(iterations)"
        }
        return params + "$" + base64(salt) + "$" + base64(derived)
    }

    /// Whether `password` matches the PHC string `stored`.
    public static func verify(_ password: [UInt8], against stored: String) throws(Failure) -> Bool {
        let (scheme, salt, expected) = try parse(stored)
        let derived = try derive(password, salt: salt, scheme: scheme, length: expected.count)
        return Crypto.constantTimeEqual(derived, expected)
    }

    /// Whether a string looks like a PHC hash this hasher reads (config: plaintext vs hash).
    public static func isHash(_ text: String) -> Bool { (try? parse(text)) != nil }

    /// The scheme, salt and hash of a PHC string.
    public static func parse(_ stored: String) throws(Failure) -> (Scheme, [UInt8], [UInt8]) {
        let parts = stored.split(separator: "$", omittingEmptySubsequences: false)
        guard parts.count == 5, parts[0].isEmpty else { throw .malformedHash("expected $id$params$salt$hash") }
        var params: [Substring: Int] = [:]
        for item in parts[2].split(separator: ",") {
            let kv = item.split(separator: "=", maxSplits: 1)
            guard kv.count == 2, let v = Int(kv[1]), params[kv[0]] == nil else { throw .malformedHash("bad parameter \"\(item)\"") }
            params[kv[0]] = v
        }
        let scheme: Scheme
        switch parts[1] {
        case "scrypt":
            guard let ln = params["ln"], let r = params["r"], let p = params["p"], params.count == 3 else {
                throw .malformedHash("scrypt needs ln, r and p")
            }
            scheme = .scrypt(logN: ln, r: r, p: p)
        case "pbkdf2-sha256":
            guard let i = params["i"], params.count == 1 else { throw .malformedHash("pbkdf2-sha256 needs i") }
            scheme = .pbkdf2SHA256(iterations: i)
        default:
            throw .malformedHash("unknown scheme \"\(parts[1])\"")
        }
        try check(scheme)
        guard let salt = unbase64(parts[3]), salt.count >= 8, salt.count <= 64,
              let hash = unbase64(parts[4]), hash.count >= 16, hash.count <= 64 else {
            throw .malformedHash("salt or hash is not unpadded base64 of a sensible length")
        }
        return (scheme, salt, hash)
    }

    /// Bounds: weak enough to be useless is refused, and so is costly enough to stall the pool.
    static func check(_ scheme: Scheme) throws(Failure) {
        switch scheme {
        case let .scrypt(logN, r, p):
            guard (10...20).contains(logN), (1...32).contains(r), (1...16).contains(p) else {
                throw .unsupportedParameters("scrypt needs 10 <= ln <= 20, 1 <= r <= 32, 1 <= p <= 16")
            }
        case let .pbkdf2SHA256(iterations):
            guard (10_000...10_000_000).contains(iterations) else {
                throw .unsupportedParameters("pbkdf2-sha256 needs 10000 <= i <= 10000000")
            }
        }
    }

    static func derive(_ password: [UInt8], salt: [UInt8], scheme: Scheme, length: Int) throws(Failure) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: length)
        let ok = password.withUnsafeBytes { pw in
            salt.withUnsafeBufferPointer { s in
                out.withUnsafeMutableBufferPointer { o -> Int32 in
                    switch scheme {
                    case let .scrypt(logN, r, p):
                        return gw_scrypt(pw.baseAddress, pw.count, s.baseAddress, s.count, UInt32(logN), UInt32(r), UInt32(p), o.baseAddress, length)
                    case let .pbkdf2SHA256(iterations):
                        return gw_pbkdf2_sha256(pw.baseAddress, pw.count, s.baseAddress, s.count, UInt32(iterations), o.baseAddress, length)
                    }
                }
            }
        }
        guard ok == 1 else { throw .cryptoFailure }
        return out
    }

    /// Standard base64 without padding: base64url with the two differing characters mapped.
    static func base64(_ bytes: [UInt8]) -> String {
        String(Base64URL.encode(bytes).map { $0 == "-" ? "+" : $0 == "_" ? "/" : $0 })
    }

    static func unbase64(_ text: Substring) -> [UInt8]? {
        guard !text.contains("-"), !text.contains("_") else { return nil }
        return Base64URL.decode(String(text.map { $0 == "+" ? "-" : $0 == "/" ? "_" : $0 }))
    }
}
