#if canImport(Glibc)
import Glibc
#endif

/// The rules a token must meet besides its signature.
public struct VerifierPolicy: Sendable {
    /// `iss` must equal this exactly.
    public var issuer: [UInt8]
    /// When set, `aud` must be this string or an array containing it; when nil, a token that
    /// carries `aud` is refused (RFC 7519 4.1.3: the gateway is not its audience).
    public var audience: [UInt8]?
    /// Seconds of clock skew tolerated for `exp`, `iat` and `nbf`.
    public var leeway: Int64
    /// Tokens longer than this many bytes are refused before any decoding.
    public var maxTokenBytes: Int
    /// Whether `jti` must be present (the gateway's tokens always carry one; revocation needs it).
    public var requireTokenID: Bool
    public var maxSubjectBytes: Int
    /// Whether `typ` may also be `at+jwt` (RFC 9068: an identity provider's access token);
    /// `JWT` (any case) or no `typ` is always accepted.
    public var acceptsAccessTokenType: Bool

    public init(issuer: String, audience: String? = nil, leeway: Int64 = 0, maxTokenBytes: Int = 8192,
                requireTokenID: Bool = true, maxSubjectBytes: Int = 256, acceptsAccessTokenType: Bool = false) {
        self.issuer = Array(issuer.utf8)
        self.audience = audience.map { Array($0.utf8) }
        self.leeway = leeway
        self.maxTokenBytes = maxTokenBytes
        self.requireTokenID = requireTokenID
        self.maxSubjectBytes = maxSubjectBytes
        self.acceptsAccessTokenType = acceptsAccessTokenType
    }
}

/// What a verified token says. `subject` and `tokenID` point into the verifier's scratch memory
/// and stay valid only until the next `verify` on the same verifier; copy them to keep them.
public struct VerifiedToken {
    public let keyIndex: Int
    public let issuedAt: Int64
    public let expiresAt: Int64
    public let subject: UnsafeRawBufferPointer
    public let tokenID: UnsafeRawBufferPointer
    /// The login family (`lid` claim) when the token has one: tokens of one login and of the
    /// refreshes that followed share it (revoked together on refresh-token reuse).
    public let loginID: UnsafeRawBufferPointer
    /// The `idp` claim of a token the gateway issued after an identity provider's sign-in (that
    /// provider's issuer); empty when absent.
    public let identityProvider: UnsafeRawBufferPointer

    public var subjectString: String { String(decoding: subject, as: UTF8.self) }
    public var tokenIDString: String { String(decoding: tokenID, as: UTF8.self) }
}

/// Verifies compact JWS tokens against a `KeyRing` by the rules of RFC 8725 and DESIGN.md
/// section 2. One verifier per thread: it owns scratch memory and the thread's HMAC contexts,
/// so a check allocates nothing and never builds a String.
///
/// Order of the checks: size, structure, header (alg, crit, jku/x5u/jwk/x5c, typ, kid, key state,
/// the key's pinned algorithm), signature in constant time, then the claims (`exp`, `iat`, `nbf`,
/// `iss`, `aud`, `sub`, `usefor`, `jti`) and revocation. The claims are not read before the
/// signature holds.
public final class TokenVerifier {
    public let policy: VerifierPolicy
    private let contexts = KeyContexts()
    private let tape = JSONTape()
    private let scratch: UnsafeMutableRawBufferPointer
    private let header: UnsafeMutableRawBufferPointer
    private let payload: UnsafeMutableRawBufferPointer
    private let signature: UnsafeMutableRawBufferPointer
    private let mac: UnsafeMutableRawBufferPointer
    private let subject: UnsafeMutableRawBufferPointer
    private let tokenID: UnsafeMutableRawBufferPointer
    private let loginID: UnsafeMutableRawBufferPointer
    private let identityProvider: UnsafeMutableRawBufferPointer

    private static let maxTokenIDBytes = 128
    /// The longest `idp` claim read (an issuer URL).
    public static let maxIdentityProviderBytes = 1024

    /// Header segments that passed `checkHeader` for `memoRing`, with their key index. Tokens of
    /// one key share one header, so most checks skip decoding and parsing it; the verdict depends
    /// only on these bytes and the ring, so remembering it changes no outcome.
    private var memoRing: KeyRing?
    private var memoHeaders: [[UInt8]] = []
    private var memoKeys: [Int] = []
    private static let memoSize = 8

    public init(policy: VerifierPolicy) {
        self.policy = policy
        let part = Base64URL.decodedLength(policy.maxTokenBytes) ?? policy.maxTokenBytes
        let sizes = [part, part, 1024, 64, policy.maxSubjectBytes, Self.maxTokenIDBytes, Self.maxTokenIDBytes,
                     Self.maxIdentityProviderBytes]
        let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: sizes.reduce(0, +), alignment: 16)
        var parts: [UnsafeMutableRawBufferPointer] = []
        var offset = 0
        for n in sizes {
            parts.append(UnsafeMutableRawBufferPointer(rebasing: memory[offset..<offset + n]))
            offset += n
        }
        scratch = memory
        header = parts[0]; payload = parts[1]; signature = parts[2]
        mac = parts[3]; subject = parts[4]; tokenID = parts[5]; loginID = parts[6]; identityProvider = parts[7]
        try? tape.parse([UInt8]("{}".utf8), limits: .token) // sizes the tape once
    }

    deinit { scratch.deallocate() }

    /// Verifies `token` (the bytes after "Bearer ") for `use` (nil: `usefor` not checked, for
    /// external issuers) at time `now` (Unix seconds, injected).
    public func verify(_ token: UnsafeRawBufferPointer, use: TokenUse?, ring: KeyRing,
                       revocations: RevocationSet? = nil, now: Int64) throws(TokenError) -> VerifiedToken {
        guard token.count <= policy.maxTokenBytes else { throw .oversize }
        guard let base = token.baseAddress, token.count > 0 else { throw .malformed }
        guard let dot1 = memchr(base, Int32(UInt8(ascii: ".")), token.count) else { throw .malformed }
        let d1 = base.distance(to: UnsafeRawPointer(dot1))
        guard let dot2 = memchr(base + d1 + 1, Int32(UInt8(ascii: ".")), token.count - d1 - 1) else { throw .malformed }
        let d2 = base.distance(to: UnsafeRawPointer(dot2))
        if memchr(base + d2 + 1, Int32(UInt8(ascii: ".")), token.count - d2 - 1) != nil { throw .malformed }
        guard d1 > 0, d2 > d1 + 1 else { throw .malformed }

        // Header.
        let headerPart = UnsafeRawBufferPointer(rebasing: token[0..<d1])
        let keyIndex: Int
        if let known = rememberedHeader(headerPart, ring: ring) {
            keyIndex = known
        } else {
            guard let hLen = Base64URL.decode(headerPart, into: header) else { throw .badEncoding }
            let h = UnsafeRawBufferPointer(rebasing: header[0..<hLen])
            try parse(h, failure: .malformedHeader)
            keyIndex = try checkHeader(h, ring: ring)
            remember(headerPart, keyIndex: keyIndex)
        }
        let key = ring.keys[keyIndex]

        // Signature over "header.payload".
        let signingInput = UnsafeRawBufferPointer(rebasing: token[0..<d2])
        let sigPart = UnsafeRawBufferPointer(rebasing: token[(d2 + 1)...])
        guard let sLen = Base64URL.decode(sigPart, into: signature) else { throw .badSignature }
        let sig = UnsafeRawBufferPointer(rebasing: signature[0..<sLen])
        switch key.material {
        case .secret:
            guard let ctx = contexts.context(keyIndex, of: ring),
                  let mLen = ctx.mac(signingInput, into: mac),
                  Crypto.constantTimeEqual(UnsafeRawBufferPointer(rebasing: mac[0..<mLen]), sig) else { throw .badSignature }
        case let .publicKey(pk):
            guard pk.verify(key.algorithm, data: signingInput, signature: sig) else { throw .badSignature }
        }

        // Claims.
        let payloadPart = UnsafeRawBufferPointer(rebasing: token[(d1 + 1)..<d2])
        guard let pLen = Base64URL.decode(payloadPart, into: payload) else { throw .badEncoding }
        let p = UnsafeRawBufferPointer(rebasing: payload[0..<pLen])
        try parse(p, failure: .malformedClaims)
        return try checkClaims(p, keyIndex: keyIndex, use: use, revocations: revocations, now: now)
    }

    /// Convenience for tools and tests.
    public func verify(_ token: String, use: TokenUse?, ring: KeyRing, revocations: RevocationSet? = nil,
                       now: Int64) throws(TokenError) -> VerifiedToken {
        var t = token
        let result = t.withUTF8 { u -> Result<VerifiedToken, TokenError> in
            do throws(TokenError) {
                return .success(try verify(UnsafeRawBufferPointer(u), use: use, ring: ring, revocations: revocations, now: now))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    @inline(__always)
    private func rememberedHeader(_ part: UnsafeRawBufferPointer, ring: KeyRing) -> Int? {
        if ring !== memoRing {
            memoRing = ring
            memoHeaders.removeAll()
            memoKeys.removeAll()
            return nil
        }
        for i in memoHeaders.indices {
            let same = memoHeaders[i].withUnsafeBytes { $0.count == part.count && memcmp($0.baseAddress!, part.baseAddress!, part.count) == 0 }
            if same { return memoKeys[i] }
        }
        return nil
    }

    private func remember(_ part: UnsafeRawBufferPointer, keyIndex: Int) {
        if memoHeaders.count == Self.memoSize {
            memoHeaders.removeFirst()
            memoKeys.removeFirst()
        }
        memoHeaders.append(Array(part))
        memoKeys.append(keyIndex)
    }

    /// A member name as one comparable word: up to 7 bytes after unescaping, with the length in
    /// the top byte (so "exp" and "exp\u0000" differ); 0 for longer names, which match nothing.
    @inline(__always)
    static func nameKey(_ node: JSONNode, in bytes: UnsafeRawBufferPointer) -> UInt64 {
        let n = Int(node.end - node.start)
        if !node.flag {
            guard n <= 7, let w = JSONText.shortWord(node, in: bytes) else { return 0 }
            return w | UInt64(n) << 56
        }
        var it = JSONText.DecodedBytes(node, in: bytes)
        var w: UInt64 = 0, len: UInt64 = 0
        while let b = it.next() {
            guard len < 7 else { return 0 }
            w |= UInt64(b) << (8 * len)
            len += 1
        }
        return w | len << 56
    }

    @inline(__always)
    static func nameKey(_ literal: StaticString) -> UInt64 {
        JSONText.word(literal) | UInt64(literal.utf8CodeUnitCount) << 56
    }

    private func parse(_ bytes: UnsafeRawBufferPointer, failure: TokenError) throws(TokenError) {
        do {
            try tape.parse(bytes, limits: .token)
        } catch .duplicateKey {
            throw .duplicateMember
        } catch {
            throw failure
        }
        guard tape[0].kind == .object else { throw failure }
    }

    /// Applies the header rules; returns the index of the key that must verify the signature.
    private func checkHeader(_ h: UnsafeRawBufferPointer, ring: KeyRing) throws(TokenError) -> Int {
        let nodes = tape
        var alg = -1, kid = -1, typ = -1
        var critical = false, forbidden = false
        var i = 1
        let end = Int(nodes[0].next)
        while i < end {
            let k = nodes[i]
            if JSONText.string(k, in: h, equals: "alg") { alg = i + 1 }
            else if JSONText.string(k, in: h, equals: "kid") { kid = i + 1 }
            else if JSONText.string(k, in: h, equals: "typ") { typ = i + 1 }
            else if JSONText.string(k, in: h, equals: "crit") { critical = true }
            else if JSONText.string(k, in: h, equals: "jku") || JSONText.string(k, in: h, equals: "x5u")
                        || JSONText.string(k, in: h, equals: "jwk") || JSONText.string(k, in: h, equals: "x5c") { forbidden = true }
            i = Int(nodes[i + 1].next)
        }
        guard alg >= 0, nodes[alg].kind == .string else { throw .unsupportedAlgorithm }
        if Self.equalsIgnoringCase(nodes[alg], in: h, "none") { throw .algNone }
        guard let algorithm = JWSAlgorithm.named(nodes[alg], in: h) else { throw .unsupportedAlgorithm }
        if critical { throw .criticalHeader }
        if forbidden { throw .forbiddenHeader }
        if typ >= 0 {
            guard nodes[typ].kind == .string,
                  Self.equalsIgnoringCase(nodes[typ], in: h, "jwt")
                    || (policy.acceptsAccessTokenType && Self.equalsIgnoringCase(nodes[typ], in: h, "at+jwt")) else { throw .wrongType }
        }
        guard kid >= 0 else { throw .missingKid }
        guard nodes[kid].kind == .string else { throw .invalidKid }
        guard let index = ring.index(ofKid: nodes[kid], in: h) else { throw .unknownKid }
        let key = ring.keys[index]
        if key.state == .retired { throw .retiredKey }
        guard key.algorithm == algorithm else { throw .algorithmMismatch }
        return index
    }

    private func checkClaims(_ p: UnsafeRawBufferPointer, keyIndex: Int, use: TokenUse?,
                             revocations: RevocationSet?, now: Int64) throws(TokenError) -> VerifiedToken {
        let nodes = tape
        var exp = -1, iat = -1, nbf = -1, iss = -1, aud = -1, sub = -1, usefor = -1, jti = -1, lid = -1, idp = -1
        var i = 1
        let end = Int(nodes[0].next)
        while i < end {
            switch Self.nameKey(nodes[i], in: p) {
            case Self.nameKey("exp"): exp = i + 1
            case Self.nameKey("iat"): iat = i + 1
            case Self.nameKey("nbf"): nbf = i + 1
            case Self.nameKey("iss"): iss = i + 1
            case Self.nameKey("aud"): aud = i + 1
            case Self.nameKey("sub"): sub = i + 1
            case Self.nameKey("usefor"): usefor = i + 1
            case Self.nameKey("jti"): jti = i + 1
            case Self.nameKey("lid"): lid = i + 1
            case Self.nameKey("idp"): idp = i + 1
            default: break
            }
            i = Int(nodes[i + 1].next)
        }

        // Times: exact integers, compared without overflow.
        guard exp >= 0 else { throw .missingExpiry }
        guard let expiresAt = JSONText.int64(nodes[exp], in: p) else { throw .invalidTime }
        guard iat >= 0 else { throw .missingIssuedAt }
        guard let issuedAt = JSONText.int64(nodes[iat], in: p) else { throw .invalidTime }
        var notBefore = Int64.min
        if nbf >= 0 {
            guard let v = JSONText.int64(nodes[nbf], in: p) else { throw .invalidTime }
            notBefore = v
        }
        let leeway = policy.leeway
        if expiresAt <= now.subtractingReportingOverflow(leeway).partialValue { throw .expired }
        let horizon = now.addingReportingOverflow(leeway)
        let latest = horizon.overflow ? Int64.max : horizon.partialValue
        if issuedAt > latest || notBefore > latest { throw .notYetValid }

        // Issuer and audience.
        guard iss >= 0, nodes[iss].kind == .string,
              policy.issuer.withUnsafeBytes({ JSONText.string(nodes[iss], in: p, equals: $0) }) else { throw .wrongIssuer }
        if aud >= 0 {
            guard let wanted = policy.audience else { throw .wrongAudience }
            guard audienceContains(aud, wanted, nodes: nodes, in: p) else { throw .wrongAudience }
        } else if policy.audience != nil {
            throw .wrongAudience
        }

        // Subject: it becomes a header value upstream, so no control characters at all.
        guard sub >= 0, nodes[sub].kind == .string,
              let subLen = JSONText.decode(nodes[sub], in: p, into: subject), subLen > 0,
              !Self.hasControlCharacter(UnsafeRawBufferPointer(rebasing: subject[0..<subLen])) else { throw .invalidSubject }

        if let use {
            guard usefor >= 0, nodes[usefor].kind == .string,
                  JSONText.string(nodes[usefor], in: p, equals: use == .access ? "access" : "refresh") else { throw .wrongUse }
        }

        var jtiLen = 0
        if jti >= 0 {
            guard nodes[jti].kind == .string, let n = JSONText.decode(nodes[jti], in: p, into: tokenID), n > 0,
                  !Self.hasControlCharacter(UnsafeRawBufferPointer(rebasing: tokenID[0..<n])) else { throw .invalidTokenID }
            jtiLen = n
        } else if policy.requireTokenID {
            throw .invalidTokenID
        }

        var lidLen = 0
        if lid >= 0 {
            guard nodes[lid].kind == .string, let n = JSONText.decode(nodes[lid], in: p, into: loginID), n > 0,
                  !Self.hasControlCharacter(UnsafeRawBufferPointer(rebasing: loginID[0..<n])) else { throw .invalidTokenID }
            lidLen = n
        }

        var idpLen = 0
        if idp >= 0 {
            guard nodes[idp].kind == .string, let n = JSONText.decode(nodes[idp], in: p, into: identityProvider), n > 0,
                  !Self.hasControlCharacter(UnsafeRawBufferPointer(rebasing: identityProvider[0..<n])) else { throw .invalidIdentityProvider }
            idpLen = n
        }

        let subjectBytes = UnsafeRawBufferPointer(rebasing: subject[0..<subLen])
        let tokenIDBytes = UnsafeRawBufferPointer(rebasing: tokenID[0..<jtiLen])
        let loginIDBytes = UnsafeRawBufferPointer(rebasing: loginID[0..<lidLen])
        if let revocations, let why = revocations.check(jti: tokenIDBytes, subject: subjectBytes, issuedAt: issuedAt,
                                                        family: lidLen > 0 ? loginIDBytes : nil) {
            throw why
        }
        return VerifiedToken(keyIndex: keyIndex, issuedAt: issuedAt, expiresAt: expiresAt,
                             subject: subjectBytes, tokenID: tokenIDBytes, loginID: loginIDBytes,
                             identityProvider: UnsafeRawBufferPointer(rebasing: identityProvider[0..<idpLen]))
    }

    private func audienceContains(_ aud: Int, _ wanted: [UInt8], nodes: JSONTape, in p: UnsafeRawBufferPointer) -> Bool {
        wanted.withUnsafeBytes { w in
            switch nodes[aud].kind {
            case .string:
                return JSONText.string(nodes[aud], in: p, equals: w)
            case .array:
                var j = aud + 1
                while j < Int(nodes[aud].next) {
                    if nodes[j].kind == .string && JSONText.string(nodes[j], in: p, equals: w) { return true }
                    j = Int(nodes[j].next)
                }
                return false
            default:
                return false
            }
        }
    }

    /// C0 controls, DEL and the C1 controls (U+0080...U+009F, encoded C2 80...C2 9F). Eight bytes
    /// at a time; a word holding a byte below 0x20, 0x7F or 0xC2 is looked at byte by byte.
    static func hasControlCharacter(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101, highs: UInt64 = 0x8080_8080_8080_8080
        @inline(__always) func hasZero(_ v: UInt64) -> Bool { (v &- ones) & ~v & highs != 0 }
        var i = 0
        while i + 8 <= bytes.count {
            let w = bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            let below20 = (w &- 0x2020_2020_2020_2020) & ~w & highs != 0
            if below20 || hasZero(w ^ 0x7F7F_7F7F_7F7F_7F7F) || hasZero(w ^ 0xC2C2_C2C2_C2C2_C2C2) {
                if slowControlCheck(bytes, from: i, to: min(bytes.count, i + 9)) { return true }
            }
            i += 8
        }
        return slowControlCheck(bytes, from: max(0, i - 1), to: bytes.count)
    }

    private static func slowControlCheck(_ bytes: UnsafeRawBufferPointer, from: Int, to: Int) -> Bool {
        var i = from
        while i < to {
            let b = bytes[i]
            if b < 0x20 || b == 0x7F { return true }
            if b == 0xC2 && i + 1 < bytes.count && bytes[i + 1] < 0xA0 { return true }
            i += 1
        }
        return false
    }

    /// ASCII case-insensitive equality of a string node with a lower-case literal.
    static func equalsIgnoringCase(_ node: JSONNode, in bytes: UnsafeRawBufferPointer, _ lower: StaticString) -> Bool {
        var it = JSONText.DecodedBytes(node, in: bytes)
        for i in 0..<lower.utf8CodeUnitCount {
            guard var b = it.next() else { return false }
            if b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z") { b += 32 }
            if b != lower.utf8Start[i] { return false }
        }
        return it.next() == nil
    }
}
