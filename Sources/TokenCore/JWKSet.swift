/// Reading and writing key rings as JWK Sets (RFC 7517).
///
/// Secret keys are `{"kty":"oct","kid","alg","k"}` with `k` base64url; the gateway adds
/// `state` (`active` | `verify` | `retired`), `created_at` and `deactivated_at` (Unix seconds).
/// RSA (`n`, `e`) and EC (`crv`, `x`, `y`) public keys are read for verification only.
/// A key without `state` is `active` when it is the set's only secret key, `verify` otherwise.
extension KeyRing {
    public static func fromJWKSet(_ bytes: [UInt8]) throws(KeyRingError) -> KeyRing {
        let doc: JSONValue
        do {
            doc = try JSONValue.parse(bytes)
        } catch {
            throw .invalidDocument("invalid JSON (\(error))")
        }
        guard let list = doc["keys"]?.arrayValue else { throw .invalidDocument("no \"keys\" array") }
        let secretCount = list.filter { $0["kty"]?.stringValue == "oct" }.count
        var keys: [Key] = []
        for (i, jwk) in list.enumerated() {
            keys.append(try key(from: jwk, index: i, onlySecret: secretCount == 1))
        }
        return try KeyRing(keys: keys)
    }

    public static func fromJWKSet(_ text: String) throws(KeyRingError) -> KeyRing {
        try fromJWKSet(Array(text.utf8))
    }

    private static func key(from jwk: JSONValue, index i: Int, onlySecret: Bool) throws(KeyRingError) -> Key {
        func field(_ name: String) throws(KeyRingError) -> String? {
            guard let v = jwk[name] else { return nil }
            guard let s = v.stringValue else { throw .invalidJWK(index: i, detail: "\"\(name)\" must be a string") }
            return s
        }
        func bytes(_ name: String) throws(KeyRingError) -> [UInt8] {
            guard let text = try field(name) else { throw .invalidJWK(index: i, detail: "missing \"\(name)\"") }
            guard let b = Base64URL.decode(text), !b.isEmpty else {
                throw .invalidJWK(index: i, detail: "\"\(name)\" is not unpadded base64url")
            }
            return b
        }
        func seconds(_ name: String) throws(KeyRingError) -> Int64 {
            guard let v = jwk[name] else { return 0 }
            guard let n = v.int64Value, n >= 0 else { throw .invalidJWK(index: i, detail: "\"\(name)\" must be Unix seconds") }
            return n
        }
        guard case .object = jwk else { throw .invalidJWK(index: i, detail: "not an object") }
        guard let kty = try field("kty") else { throw .invalidJWK(index: i, detail: "missing \"kty\"") }
        guard let kid = try field("kid") else { throw .invalidJWK(index: i, detail: "missing \"kid\": every key needs one") }
        if let use = try field("use"), use != "sig" { throw .invalidJWK(index: i, detail: "\"use\" is \"\(use)\", not \"sig\"") }
        let stateName = try field("state")
        let alg = try field("alg")
        func algorithm(_ fallback: JWSAlgorithm) throws(KeyRingError) -> JWSAlgorithm {
            guard let alg else { return fallback }
            guard let a = JWSAlgorithm(rawValue: alg) else { throw .invalidJWK(index: i, detail: "unsupported \"alg\" \"\(alg)\"") }
            return a
        }
        let material: Key.Material
        let algo: JWSAlgorithm
        var defaultState = KeyState.verify
        switch kty {
        case "oct":
            material = .secret(try bytes("k"))
            algo = try algorithm(.hs256)
            if onlySecret { defaultState = .active }
        case "RSA":
            guard let pk = PublicKey(rsaModulus: try bytes("n"), exponent: try bytes("e")) else {
                throw .invalidJWK(index: i, detail: "libcrypto refused the RSA key")
            }
            material = .publicKey(pk)
            algo = try algorithm(.rs256)
        case "EC":
            let crv = try field("crv") ?? ""
            guard let pk = PublicKey(curve: crv, x: try bytes("x"), y: try bytes("y")) else {
                throw .invalidJWK(index: i, detail: "not a valid P-256 or P-384 public key")
            }
            material = .publicKey(pk)
            algo = try algorithm(crv == "P-384" ? .es384 : .es256)
        default:
            throw .invalidJWK(index: i, detail: "unsupported \"kty\" \"\(kty)\"")
        }
        var state = defaultState
        if let stateName {
            guard let s = KeyState(rawValue: stateName) else {
                throw .invalidJWK(index: i, detail: "\"state\" must be active, verify or retired, not \"\(stateName)\"")
            }
            state = s
        }
        return try Key(kid: kid, algorithm: algo, material: material, state: state,
                       createdAt: try seconds("created_at"), deactivatedAt: try seconds("deactivated_at"))
    }

    /// The ring as a JWK Set document, secrets included (for the keys file, mode 0600).
    public func jwkSet() -> JSONValue {
        .object([("keys", .array(keys.compactMap { key -> JSONValue? in
            guard let secret = key.secret else { return nil }
            var members: [(key: String, value: JSONValue)] = [
                ("kty", .string("oct")),
                ("kid", .string(key.kid)),
                ("alg", .string(key.algorithm.rawValue)),
                ("use", .string("sig")),
                ("k", .string(Base64URL.encode(secret))),
                ("state", .string(key.state.rawValue)),
                ("created_at", .number(String(key.createdAt))),
            ]
            if key.deactivatedAt > 0 { members.append(("deactivated_at", .number(String(key.deactivatedAt)))) }
            return .object(members)
        }))])
    }

    /// The JWK Set file text: pretty-printed with a final newline.
    public func jwkSetText() -> String { jwkSet().pretty() + "\n" }
}
