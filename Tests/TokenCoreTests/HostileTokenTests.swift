import Foundation
import XCTest
@testable import TokenCore

/// Hostile tokens against the verification rules of DESIGN.md section 2 (RFC 8725): each case
/// breaks exactly one rule and is otherwise valid, so it must be refused with that rule's error.
final class HostileTokenTests: XCTestCase {
    // MARK: - Fixture

    /// Injected time for every check except the PyJWT interop cases.
    static let now: Int64 = 1_800_000_000
    static let issuer = "datarhei-core"

    static let activeSecret = Array("active-secret-of-k-active-0123456789".utf8)
    static let oldSecret = Array("verify-secret-of-k-old-abcdefghijkl".utf8)
    static let retiredSecret = Array("retired-secret-of-k-retired-zyxwvuts".utf8)
    static let secret512 = (0..<64).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
    static let wrongSecret = Array("not-any-secret-of-this-ring-000000".utf8)

    static let standardHeader = #"{"alg":"HS256","typ":"JWT","kid":"k-active"}"#
    static let revokedJTI = "2b8e0c4d-revoked-by-logout"
    static let cutOffSubject = "mallory"
    /// mallory's tokens issued at or before this moment are void.
    static let cutOff: Int64 = now - 100

    /// Keys in this order: 0 k-active (active), 1 k-old (verify), 2 k-retired, 3 k-512 (HS512, verify).
    static func makeRing() throws -> KeyRing {
        try KeyRing(keys: [
            Key(kid: "k-active", algorithm: .hs256, material: .secret(activeSecret), state: .active),
            Key(kid: "k-old", algorithm: .hs256, material: .secret(oldSecret), state: .verify),
            Key(kid: "k-retired", algorithm: .hs256, material: .secret(retiredSecret), state: .retired),
            Key(kid: "k-512", algorithm: .hs512, material: .secret(secret512), state: .verify),
        ])
    }

    static func makeRevocations() -> RevocationSet {
        let set = RevocationSet()
        set.revoke(jti: Array(revokedJTI.utf8), until: now + 86_400)
        set.revoke(subject: Array(cutOffSubject.utf8), issuedAtOrBefore: cutOff)
        return set
    }

    static func verifier(leeway: Int64 = 0) -> TokenVerifier {
        TokenVerifier(policy: VerifierPolicy(issuer: issuer, leeway: leeway))
    }

    static var claims: ForgedClaims { ForgedClaims(now: now) }

    /// A token with the standard header, signed with the active key.
    static func signed(_ claims: ForgedClaims, header: String = HostileTokenTests.standardHeader,
                       secret: [UInt8] = HostileTokenTests.activeSecret, algorithm: JWSAlgorithm = .hs256) -> String {
        TokenForge.token(header: header, payload: claims.json, secret: secret, algorithm: algorithm)
    }

    /// The header with a member set to a raw JSON value (nil: removed); order alg, typ, kid, extras.
    static func header(alg: String? = #""HS256""#, typ: String? = #""JWT""#, kid: String? = #""k-active""#,
                       extra: [String] = []) -> String {
        var members: [String] = []
        if let alg { members.append(#""alg":"# + alg) }
        if let typ { members.append(#""typ":"# + typ) }
        if let kid { members.append(#""kid":"# + kid) }
        return "{" + (members + extra).joined(separator: ",") + "}"
    }

    // MARK: - Corpus

    struct HostileCase {
        let name: String
        let token: String
        let expected: TokenError
        var use: TokenUse? = .access
    }

    /// Outcome of one check: nil when the token passed.
    static func outcome(_ verifier: TokenVerifier, _ token: String, use: TokenUse?, ring: KeyRing,
                        revocations: RevocationSet?, now: Int64 = HostileTokenTests.now) -> TokenError? {
        do throws(TokenError) {
            _ = try verifier.verify(token, use: use, ring: ring, revocations: revocations, now: now)
            return nil
        } catch {
            return error
        }
    }

    static func corpus() -> [HostileCase] {
        var cases: [HostileCase] = []
        func add(_ name: String, _ token: String, _ expected: TokenError, use: TokenUse? = .access) {
            cases.append(HostileCase(name: name, token: token, expected: expected, use: use))
        }
        let c = claims
        let valid = signed(c)
        let validParts = TokenForge.parts(valid)
        let a = activeSecret

        // alg "none", every spelling, with an empty signature and with a real HS256 signature.
        for spelling in ["none", "None", "NONE", "nOnE"] {
            let h = header(alg: "\"\(spelling)\"")
            add("alg \(spelling), empty signature", TokenForge.unsigned(header: h, payload: c.json), .algNone)
            add("alg \(spelling), signed with the active key", signed(c, header: h), .algNone)
        }
        add("alg none escaped as n\\u006fne", signed(c, header: header(alg: #""n\u006fne""#)), .algNone)
        add("alg none without kid", TokenForge.unsigned(header: header(alg: #""none""#, kid: nil), payload: c.json), .algNone)

        // Algorithm confusion: the key's pinned algorithm decides, never the header.
        add("alg RS256 on the HS256 key", signed(c, header: header(alg: #""RS256""#)), .algorithmMismatch)
        add("alg ES256 on the HS256 key", signed(c, header: header(alg: #""ES256""#)), .algorithmMismatch)
        add("alg HS384 on the HS256 key, HS384 MAC", signed(c, header: header(alg: #""HS384""#), algorithm: .hs384), .algorithmMismatch)
        add("alg HS512 on the HS256 key, HS512 MAC", signed(c, header: header(alg: #""HS512""#), algorithm: .hs512), .algorithmMismatch)
        add("alg HS256 on the HS512 key, HS256 MAC with its secret",
            signed(c, header: header(alg: #""HS256""#, kid: #""k-512""#), secret: secret512), .algorithmMismatch)
        add("alg hs256 in lower case", signed(c, header: header(alg: #""hs256""#)), .unsupportedAlgorithm)
        add("alg missing", signed(c, header: header(alg: nil)), .unsupportedAlgorithm)
        add("alg a number", signed(c, header: header(alg: "256")), .unsupportedAlgorithm)
        add("alg null", signed(c, header: header(alg: "null")), .unsupportedAlgorithm)
        add("alg an array", signed(c, header: header(alg: #"["HS256"]"#)), .unsupportedAlgorithm)
        add("alg empty string", signed(c, header: header(alg: #""""#)), .unsupportedAlgorithm)
        add("alg with a trailing space", signed(c, header: header(alg: #""HS256 ""#)), .unsupportedAlgorithm)
        add("alg PS256 unknown here", signed(c, header: header(alg: #""PS256""#)), .unsupportedAlgorithm)
        add("alg EdDSA unknown here", signed(c, header: header(alg: #""EdDSA""#)), .unsupportedAlgorithm)

        // kid.
        add("kid missing", signed(c, header: header(kid: nil)), .missingKid)
        add("kid a number", signed(c, header: header(kid: "1")), .invalidKid)
        add("kid an array", signed(c, header: header(kid: #"["k-active"]"#)), .invalidKid)
        add("kid null", signed(c, header: header(kid: "null")), .invalidKid)
        add("kid unknown", signed(c, header: header(kid: #""k-nobody""#)), .unknownKid)
        add("kid in another case", signed(c, header: header(kid: #""K-ACTIVE""#)), .unknownKid)
        add("kid with a trailing NUL", signed(c, header: header(kid: #""k-active\u0000""#)), .unknownKid)
        add("kid empty", signed(c, header: header(kid: #""""#)), .unknownKid)
        add("kid of the retired key, signed with it",
            signed(c, header: header(kid: #""k-retired""#), secret: retiredSecret), .retiredKey)

        // Headers that would let the token choose or extend its own verification.
        add("crit header", signed(c, header: header(extra: [#""crit":["exp"]"#, #""exp":1"#])), .criticalHeader)
        add("crit header, empty list", signed(c, header: header(extra: [#""crit":[]"#])), .criticalHeader)
        add("crit header name escaped as cr\\u0069t", signed(c, header: header(extra: [#""cr\u0069t":["b64"]"#])), .criticalHeader)
        add("jku header", signed(c, header: header(extra: [#""jku":"https://evil.example/jwks.json""#])), .forbiddenHeader)
        add("x5u header", signed(c, header: header(extra: [#""x5u":"https://evil.example/cert.pem""#])), .forbiddenHeader)
        add("jwk header", signed(c, header: header(extra: [#""jwk":{"kty":"oct","k":"QUFBQQ"}"#])), .forbiddenHeader)
        add("x5c header", signed(c, header: header(extra: [#""x5c":["MIIB"]"#])), .forbiddenHeader)
        add("jku header name escaped as j\\u006bu", signed(c, header: header(extra: [#""j\u006bu":"https://evil.example/""#])), .forbiddenHeader)

        // typ.
        add("typ at+jwt", signed(c, header: header(typ: #""at+jwt""#)), .wrongType)
        add("typ a number", signed(c, header: header(typ: "1")), .wrongType)
        add("typ JOSE", signed(c, header: header(typ: #""JOSE""#)), .wrongType)
        add("typ null", signed(c, header: header(typ: "null")), .wrongType)

        // Signature.
        let tamperedHeader = TokenForge.part(header(typ: #""jwt""#))
        add("tampered header, signature of the original", tamperedHeader + "." + validParts[1] + "." + validParts[2], .badSignature)
        let tamperedPayload = TokenForge.part(c.with("sub", #""admin""#).json)
        add("tampered payload, signature of the original", validParts[0] + "." + tamperedPayload + "." + validParts[2], .badSignature)
        let sig = validParts[2]
        let flipped = TokenForge.replacing(sig, at: 10, with: Array(sig)[10] == "A" ? "B" : "A")
        add("tampered signature", validParts[0] + "." + validParts[1] + "." + flipped, .badSignature)
        add("signature truncated by 3 characters", validParts[0] + "." + validParts[1] + "." + String(sig.dropLast(3)), .badSignature)
        add("signature truncated to half", validParts[0] + "." + validParts[1] + "." + String(sig.prefix(22)), .badSignature)
        add("signature empty", validParts[0] + "." + validParts[1] + ".", .badSignature)
        add("signature with 4 extra characters", valid + "AAAA", .badSignature)
        add("signature extra long (over 1 KiB decoded)", valid + String(repeating: "A", count: 2000), .badSignature)
        add("signature padded with =", valid + "=", .badSignature)
        add("signature with non-canonical trailing bits", validParts[0] + "." + validParts[1] + "." + TokenForge.nonCanonical(sig), .badSignature)
        add("signed with a wrong secret", signed(c, secret: wrongSecret), .badSignature)
        add("signed with the verify key's secret under the active kid", signed(c, secret: oldSecret), .badSignature)
        add("HS512 MAC under an HS256 header", signed(c, algorithm: .hs512), .badSignature)

        // Encoding: strict unpadded base64url in header and payload (the payload is signed as
        // written, so the signature holds and only the encoding is wrong).
        let paddedHeader = TokenForge.part(TokenForge.spaced(standardHeader, encodedRemainder: 2)) + "=="
        add("header padded with ==", TokenForge.sign(headerPart: paddedHeader, payloadPart: validParts[1], secret: a), .badEncoding)
        let paddedPayload = TokenForge.part(TokenForge.spaced(c.json, encodedRemainder: 3)) + "="
        add("payload padded with =", TokenForge.sign(headerPart: validParts[0], payloadPart: paddedPayload, secret: a), .badEncoding)
        let plusHeader = TokenForge.standardAlphabetPart(header(extra: [#""note":">>>???>>>""#]), containing: "+")
        add("header in the standard alphabet (+)", TokenForge.sign(headerPart: plusHeader, payloadPart: validParts[1], secret: a), .badEncoding)
        let slashPayload = TokenForge.standardAlphabetPart(c.adding(#""note":"???>>>???""#).json, containing: "/")
        add("payload in the standard alphabet (/)", TokenForge.sign(headerPart: validParts[0], payloadPart: slashPayload, secret: a), .badEncoding)
        let plusPayload = TokenForge.standardAlphabetPart(c.adding(#""note":">>>???>>>""#).json, containing: "+")
        add("payload in the standard alphabet (+)", TokenForge.sign(headerPart: validParts[0], payloadPart: plusPayload, secret: a), .badEncoding)
        let oddHeader = TokenForge.part(TokenForge.spaced(standardHeader, encodedRemainder: 2))
        add("header with non-canonical trailing bits",
            TokenForge.sign(headerPart: TokenForge.nonCanonical(oddHeader), payloadPart: validParts[1], secret: a), .badEncoding)
        let oddPayload = TokenForge.part(TokenForge.spaced(c.json, encodedRemainder: 3))
        add("payload with non-canonical trailing bits",
            TokenForge.sign(headerPart: validParts[0], payloadPart: TokenForge.nonCanonical(oddPayload), secret: a), .badEncoding)
        add("header with a space inside", TokenForge.sign(headerPart: TokenForge.replacing(validParts[0], at: 4, with: " "),
                                                          payloadPart: validParts[1], secret: a), .badEncoding)
        add("payload with a dangling character (length % 4 == 1)",
            TokenForge.sign(headerPart: validParts[0], payloadPart: TokenForge.part(TokenForge.spaced(c.json, encodedRemainder: 3)) + "A" + "A",
                            secret: a), .badEncoding)

        // Structure.
        add("two parts (no signature part)", validParts[0] + "." + validParts[1], .malformed)
        add("one part", validParts[0], .malformed)
        add("four parts", valid + "." + sig, .malformed)
        add("five parts", valid + ".." , .malformed)
        add("empty header part", "." + validParts[1] + "." + sig, .malformed)
        add("empty payload part", validParts[0] + ".." + sig, .malformed)
        add("empty token", "", .malformed)
        add("two dots only", "..", .malformed)
        add("three dots only", "...", .malformed)

        // Header JSON.
        add("header an array", signed(c, header: #"["HS256","JWT","k-active"]"#), .malformedHeader)
        add("header a string", signed(c, header: #""HS256""#), .malformedHeader)
        add("header null", signed(c, header: "null"), .malformedHeader)
        add("header invalid JSON (no closing brace)", signed(c, header: #"{"alg":"HS256","typ":"JWT","kid":"k-active""#), .malformedHeader)
        add("header with a trailing comma", signed(c, header: #"{"alg":"HS256","typ":"JWT","kid":"k-active",}"#), .malformedHeader)
        add("header with a lone surrogate", signed(c, header: header(extra: [#""x":"\ud800""#])), .malformedHeader)
        add("header nested too deep", signed(c, header: header(extra: [#""x":[[[[[[[[[[1]]]]]]]]]]"#])), .malformedHeader)
        add("header duplicate alg", signed(c, header: #"{"alg":"HS256","typ":"JWT","kid":"k-active","alg":"none"}"#), .duplicateMember)
        add("header duplicate kid hidden by an escape",
            signed(c, header: #"{"alg":"HS256","typ":"JWT","kid":"k-active","k\u0069d":"k-old"}"#), .duplicateMember)

        // Claims JSON (signed correctly, so only the JSON is wrong).
        add("payload an array", signed(c).replacingPayload(with: #"["alice"]"#), .malformedClaims)
        add("payload a number", signed(c).replacingPayload(with: "1800000600"), .malformedClaims)
        add("payload a string", signed(c).replacingPayload(with: #""alice""#), .malformedClaims)
        add("payload invalid JSON", signed(c).replacingPayload(with: String(c.json.dropLast())), .malformedClaims)
        add("payload with trailing data", signed(c).replacingPayload(with: c.json + "{}"), .malformedClaims)
        add("payload with a raw newline in a string", signed(c.with("sub", "\"ali\nce\"")), .malformedClaims)
        add("payload not UTF-8", TokenForge.token(header: standardHeader, payloadBytes: Array(c.json.utf8).replacingSub(with: [0x61, 0xFF, 0x62]),
                                                 secret: a), .malformedClaims)
        add("payload with too many values", signed(c.adding(#""x":["# + Array(repeating: "0", count: 300).joined(separator: ",") + "]")),
            .malformedClaims)
        add("duplicate sub", signed(c.adding(#""sub":"admin""#)), .duplicateMember)
        add("duplicate exp", signed(c.adding(#""exp":9999999999"#)), .duplicateMember)
        add("duplicate sub hidden by an escape (s\\u0075b)", signed(c.adding(#""s\u0075b":"admin""#)), .duplicateMember)
        add("duplicate usefor hidden by an escape", signed(c.adding(#""use\u0066or":"refresh""#)), .duplicateMember)

        // exp.
        add("exp missing", signed(c.with("exp", nil)), .missingExpiry)
        add("exp a string", signed(c.with("exp", "\"\(now + 600)\"")), .invalidTime)
        add("exp a float", signed(c.with("exp", "\(now + 600).0")), .invalidTime)
        add("exp with an exponent", signed(c.with("exp", "1.8000006e9")), .invalidTime)
        add("exp an integer written with an exponent", signed(c.with("exp", "18000006E2")), .invalidTime)
        add("exp beyond Int64", signed(c.with("exp", "99999999999999999999")), .invalidTime)
        add("exp just beyond Int64.max", signed(c.with("exp", "9223372036854775808")), .invalidTime)
        add("exp null", signed(c.with("exp", "null")), .invalidTime)
        add("exp true", signed(c.with("exp", "true")), .invalidTime)
        add("exp == now", signed(c.with("iat", "\(now - 600)").with("exp", "\(now)")), .expired)
        add("exp < now", signed(c.with("iat", "\(now - 600)").with("exp", "\(now - 1)")), .expired)
        add("exp negative", signed(c.with("iat", "0").with("exp", "-1")), .expired)
        add("exp Int64.min", signed(c.with("iat", "0").with("exp", "-9223372036854775808")), .expired)

        // iat and nbf.
        add("iat missing", signed(c.with("iat", nil)), .missingIssuedAt)
        add("iat a string", signed(c.with("iat", "\"\(now)\"")), .invalidTime)
        add("iat a float", signed(c.with("iat", "\(now).5")), .invalidTime)
        add("iat null", signed(c.with("iat", "null")), .invalidTime)
        add("iat in the future", signed(c.with("iat", "\(now + 1)")), .notYetValid)
        add("iat far in the future", signed(c.with("iat", "\(now + 86_400)").with("exp", "\(now + 90_000)")), .notYetValid)
        add("nbf a string", signed(c.with("nbf", "\"\(now)\"")), .invalidTime)
        add("nbf a float", signed(c.with("nbf", "1.8e9")), .invalidTime)
        add("nbf in the future", signed(c.with("nbf", "\(now + 1)")), .notYetValid)

        // iss and aud.
        add("iss missing", signed(c.with("iss", nil)), .wrongIssuer)
        add("iss another issuer", signed(c.with("iss", #""evil-core""#)), .wrongIssuer)
        add("iss in another case", signed(c.with("iss", #""Datarhei-Core""#)), .wrongIssuer)
        add("iss with a trailing NUL", signed(c.with("iss", #""datarhei-core\u0000""#)), .wrongIssuer)
        add("iss a number", signed(c.with("iss", "1")), .wrongIssuer)
        add("iss an array", signed(c.with("iss", #"["datarhei-core"]"#)), .wrongIssuer)
        add("aud present while no audience is configured", signed(c.with("aud", #""datarhei-core""#)), .wrongAudience)
        add("aud an empty list while no audience is configured", signed(c.with("aud", "[]")), .wrongAudience)

        // sub.
        add("sub missing", signed(c.with("sub", nil)), .invalidSubject)
        add("sub empty", signed(c.with("sub", #""""#)), .invalidSubject)
        add("sub a number", signed(c.with("sub", "42")), .invalidSubject)
        add("sub null", signed(c.with("sub", "null")), .invalidSubject)
        add("sub with an escaped newline", signed(c.with("sub", #""alice\nX-Admin: 1""#)), .invalidSubject)
        add("sub with an escaped carriage return", signed(c.with("sub", #""alice\r""#)), .invalidSubject)
        add("sub with an escaped NUL", signed(c.with("sub", #""alice\u0000""#)), .invalidSubject)
        add("sub with an escaped C1 control (U+0085)", signed(c.with("sub", #""alice\u0085""#)), .invalidSubject)
        add("sub with a raw C1 control (U+0085 as UTF-8)", signed(c.with("sub", "\"alice\u{85}\"")), .invalidSubject)
        add("sub with DEL", signed(c.with("sub", #""alice\u007f""#)), .invalidSubject)
        add("sub of 257 bytes", signed(c.with("sub", "\"" + String(repeating: "a", count: 257) + "\"")), .invalidSubject)

        // usefor.
        add("usefor missing", signed(c.with("usefor", nil)), .wrongUse)
        add("usefor unknown", signed(c.with("usefor", #""admin""#)), .wrongUse)
        add("usefor in another case", signed(c.with("usefor", #""Access""#)), .wrongUse)
        add("usefor a number", signed(c.with("usefor", "1")), .wrongUse)
        add("usefor an array", signed(c.with("usefor", #"["access"]"#)), .wrongUse)
        add("refresh token used as access", signed(ForgedClaims(now: now, use: .refresh, lifetime: 86_400)), .wrongUse)
        add("access token used as refresh", valid, .wrongUse, use: .refresh)
        add("usefor missing, checked as refresh", signed(c.with("usefor", nil)), .wrongUse, use: .refresh)

        // jti.
        add("jti missing", signed(c.with("jti", nil)), .invalidTokenID)
        add("jti empty", signed(c.with("jti", #""""#)), .invalidTokenID)
        add("jti a number", signed(c.with("jti", "12345")), .invalidTokenID)
        add("jti null", signed(c.with("jti", "null")), .invalidTokenID)
        add("jti with a control character", signed(c.with("jti", #""abc\ndef""#)), .invalidTokenID)
        add("jti of 129 bytes", signed(c.with("jti", "\"" + String(repeating: "j", count: 129) + "\"")), .invalidTokenID)

        // idp (the provider a gateway token's sign-in came from).
        add("idp empty", signed(c.with("idp", #""""#)), .invalidIdentityProvider)
        add("idp a number", signed(c.with("idp", "1")), .invalidIdentityProvider)
        add("idp an array", signed(c.with("idp", #"["https://idp.example.com/"]"#)), .invalidIdentityProvider)
        add("idp with a control character", signed(c.with("idp", #""https://idp\n.example.com/""#)), .invalidIdentityProvider)
        add("idp of 1025 bytes", signed(c.with("idp", "\"" + String(repeating: "i", count: 1025) + "\"")), .invalidIdentityProvider)

        // Size.
        let big = signed(c.adding(#""pad":""# + String(repeating: "p", count: 6200) + "\""))
        add("oversize, otherwise valid (\(big.utf8.count) bytes)", big, .oversize)
        add("oversize garbage", String(repeating: "A", count: 8193), .oversize)

        // Revocation.
        add("revoked jti", signed(ForgedClaims(now: now, jti: revokedJTI)), .revoked)
        add("revoked jti of a refresh token", signed(ForgedClaims(now: now, jti: revokedJTI, use: .refresh, lifetime: 86_400)),
            .revoked, use: .refresh)
        add("subject cut off, issued before the cut-off",
            signed(ForgedClaims(now: now, sub: cutOffSubject).with("iat", "\(cutOff - 50)")), .revokedSubject)
        add("subject cut off, issued exactly at the cut-off",
            signed(ForgedClaims(now: now, sub: cutOffSubject).with("iat", "\(cutOff)")), .revokedSubject)
        add("subject cut off, name written with an escape",
            signed(ForgedClaims(now: now).with("sub", #""m\u0061llory""#).with("iat", "\(cutOff - 1)")), .revokedSubject)

        return cases
    }

    // MARK: - The corpus

    func testEveryHostileTokenIsRefusedWithItsRule() throws {
        let ring = try Self.makeRing()
        let revocations = Self.makeRevocations()
        let corpus = Self.corpus()
        XCTAssertGreaterThanOrEqual(corpus.count, 60)
        XCTAssertEqual(Set(corpus.map(\.name)).count, corpus.count, "case names must be unique")

        // One verifier for the whole corpus (its header memo and scratch memory carry over from
        // case to case, with a valid token in between) and a fresh one per case: the verdict
        // must not depend on what the verifier saw before.
        let shared = Self.verifier()
        let baseline = Self.signed(Self.claims)
        for c in corpus {
            let fresh = Self.outcome(Self.verifier(), c.token, use: c.use, ring: ring, revocations: revocations)
            XCTAssertEqual(fresh, c.expected, "case \"\(c.name)\"")
            let again = Self.outcome(shared, c.token, use: c.use, ring: ring, revocations: revocations)
            XCTAssertEqual(again, c.expected, "case \"\(c.name)\" (shared verifier)")
            XCTAssertNil(Self.outcome(shared, baseline, use: .access, ring: ring, revocations: revocations),
                         "the valid baseline token after case \"\(c.name)\"")
        }
    }

    func testCorpusCoversEveryRule() {
        let covered = Set(Self.corpus().map(\.expected))
        let missing = TokenError.allCases.filter { !covered.contains($0) }
        XCTAssertEqual(missing, [], "rules without a hostile case")
    }

    /// Each claims case changes one member of this token: it must pass, or the cases would fail
    /// for a reason other than the one they name.
    func testForgedBaselineTokenPassesSoEachCaseFailsOnlyForItsRule() throws {
        let ring = try Self.makeRing()
        let token = Self.signed(Self.claims)
        let v = Self.verifier()
        let result = try v.verify(token, use: .access, ring: ring, revocations: Self.makeRevocations(), now: Self.now)
        XCTAssertEqual(result.subjectString, "alice")
        XCTAssertEqual(result.keyIndex, 0)
        XCTAssertEqual(result.issuedAt, Self.now)
        XCTAssertEqual(result.expiresAt, Self.now + 600)
        XCTAssertEqual(result.tokenIDString, "8d7f6a2e-4c1b-4e0a-9f3d-2b5c6e7a8f90")
        // The header variants the cases start from are themselves acceptable.
        for h in [Self.header(typ: nil), Self.header(typ: #""jwt""#), Self.header(extra: [#""cty":"x""#])] {
            XCTAssertNil(Self.outcome(v, Self.signed(Self.claims, header: h), use: .access, ring: ring, revocations: nil), h)
        }
        // Revocations touch only the revoked jti and mallory's old tokens.
        XCTAssertNil(Self.outcome(v, Self.signed(ForgedClaims(now: Self.now, sub: Self.cutOffSubject)), use: .access,
                                  ring: ring, revocations: Self.makeRevocations()),
                     "mallory's token issued after the cut-off")
        XCTAssertNil(Self.outcome(v, Self.signed(ForgedClaims(now: Self.now, jti: Self.revokedJTI)), use: .access,
                                  ring: ring, revocations: nil), "the revoked jti without the revocation set")
    }

    // MARK: - Controls that pass

    func testValidAccessTokenOfTheActiveKeyPasses() throws {
        let ring = try Self.makeRing()
        let issued = try TokenIssuer(settings: IssuerSettings()).issue(subject: "alice", use: .access, ring: ring, now: Self.now)
        let result = try Self.verifier().verify(issued.token, use: .access, ring: ring, now: Self.now + 599)
        XCTAssertEqual(result.keyIndex, 0)
        XCTAssertEqual(result.subjectString, "alice")
        XCTAssertEqual(result.tokenIDString, issued.tokenID)
        XCTAssertEqual(result.expiresAt, Self.now + 600)
        // One second later the token is over.
        XCTAssertEqual(Self.outcome(Self.verifier(), issued.token, use: .access, ring: ring, revocations: nil, now: Self.now + 600), .expired)
    }

    func testValidTokenOfAVerifyKeyPasses() throws {
        let ring = try Self.makeRing()
        let token = Self.signed(Self.claims, header: Self.header(kid: #""k-old""#), secret: Self.oldSecret)
        let result = try Self.verifier().verify(token, use: .access, ring: ring, now: Self.now)
        XCTAssertEqual(result.keyIndex, 1)
        XCTAssertEqual(result.subjectString, "alice")
        // The HS512 key in state verify verifies its own algorithm.
        let t512 = Self.signed(Self.claims, header: Self.header(alg: #""HS512""#, kid: #""k-512""#), secret: Self.secret512, algorithm: .hs512)
        XCTAssertEqual(try Self.verifier().verify(t512, use: .access, ring: ring, now: Self.now).keyIndex, 3)
    }

    func testRefreshTokenPassesAsRefreshAndAnyUseWhenUseIsNotChecked() throws {
        let ring = try Self.makeRing()
        let refresh = Self.signed(ForgedClaims(now: Self.now, use: .refresh, lifetime: 86_400))
        XCTAssertNil(Self.outcome(Self.verifier(), refresh, use: .refresh, ring: ring, revocations: nil))
        XCTAssertNil(Self.outcome(Self.verifier(), refresh, use: nil, ring: ring, revocations: nil))
        XCTAssertNil(Self.outcome(Self.verifier(), Self.signed(Self.claims.with("usefor", nil)), use: nil, ring: ring, revocations: nil))
    }

    func testLeewayAcceptsATokenExpiredFiveSecondsAgoOnlyWithinTheLeeway() throws {
        let ring = try Self.makeRing()
        let token = Self.signed(Self.claims.with("iat", "\(Self.now - 605)").with("exp", "\(Self.now - 5)"))
        XCTAssertNil(Self.outcome(Self.verifier(leeway: 10), token, use: .access, ring: ring, revocations: nil), "leeway 10")
        XCTAssertEqual(Self.outcome(Self.verifier(leeway: 0), token, use: .access, ring: ring, revocations: nil), .expired, "leeway 0")
        // The same leeway applies to iat and nbf in the future.
        let early = Self.signed(Self.claims.with("iat", "\(Self.now + 5)").with("nbf", "\(Self.now + 5)"))
        XCTAssertNil(Self.outcome(Self.verifier(leeway: 10), early, use: .access, ring: ring, revocations: nil), "iat/nbf, leeway 10")
        XCTAssertEqual(Self.outcome(Self.verifier(leeway: 0), early, use: .access, ring: ring, revocations: nil), .notYetValid)
    }

    func testEscapedButEqualClaimNameAndValuePass() throws {
        let ring = try Self.makeRing()
        let escapedValue = Self.signed(Self.claims.with("usefor", #""acc\u0065ss""#))
        XCTAssertNil(Self.outcome(Self.verifier(), escapedValue, use: .access, ring: ring, revocations: nil), #""acc\u0065ss""#)
        // An escaped member name counts as that member (no duplicate here).
        var renamed = Self.claims.with("usefor", nil)
        renamed = renamed.adding(#""use\u0066or":"access""#)
        XCTAssertNil(Self.outcome(Self.verifier(), Self.signed(renamed), use: .access, ring: ring, revocations: nil), #""use\u0066or""#)
        XCTAssertEqual(Self.outcome(Self.verifier(), Self.signed(renamed), use: .refresh, ring: ring, revocations: nil), .wrongUse)
        // Escaped issuer and header values are compared after unescaping too.
        let issuer = Self.signed(Self.claims.with("iss", #""datarhei\u002dcore""#),
                                 header: #"{"alg":"HS\u0032\u00356","typ":"JWT","kid":"k\u002dactive"}"#)
        XCTAssertNil(Self.outcome(Self.verifier(), issuer, use: .access, ring: ring, revocations: nil))
    }

    func testUnicodeSubjectPassesAndComesBackIntact() throws {
        let ring = try Self.makeRing()
        let subject = "Jürgen Ωmega 名前 🎥"
        let v = Self.verifier()
        let raw = try v.verify(Self.signed(ForgedClaims(now: Self.now, sub: subject)), use: .access, ring: ring, now: Self.now)
        XCTAssertEqual(raw.subjectString, subject)
        XCTAssertEqual(Array(raw.subject), Array(subject.utf8))
        // The same subject written with \u escapes (a surrogate pair for the emoji) decodes to it.
        let escaped = #""J\u00fcrgen \u03a9mega \u540d\u524d \ud83c\udfa5""#
        let decoded = try v.verify(Self.signed(Self.claims.with("sub", escaped)), use: .access, ring: ring, now: Self.now)
        XCTAssertEqual(decoded.subjectString, subject)
        // Issued by TokenIssuer, too.
        let issued = try TokenIssuer(settings: IssuerSettings()).issue(subject: subject, use: .access, ring: ring, now: Self.now)
        XCTAssertEqual(try v.verify(issued.token, use: .access, ring: ring, now: Self.now).subjectString, subject)
        // A subject of exactly 256 bytes (the limit) passes.
        let longest = String(repeating: "é", count: 128)
        XCTAssertEqual(try v.verify(Self.signed(ForgedClaims(now: Self.now, sub: longest)), use: .access, ring: ring, now: Self.now).subjectString,
                       longest)
    }

    func testTokenAtTheSizeLimitPasses() throws {
        let ring = try Self.makeRing()
        // The largest padded token that fits in 8192 bytes.
        var best: String?
        for n in stride(from: 6200, through: 5000, by: -1) {
            let t = Self.signed(Self.claims.adding(#""pad":""# + String(repeating: "p", count: n) + "\""))
            if t.utf8.count <= 8192 { best = t; break }
        }
        let token = try XCTUnwrap(best)
        XCTAssertGreaterThanOrEqual(token.utf8.count, 8190)
        XCTAssertNil(Self.outcome(Self.verifier(), token, use: .access, ring: ring, revocations: nil), "\(token.utf8.count) bytes")
    }

    // MARK: - Rotation

    func testIssuedTokensCarryTheActiveKid() throws {
        let ring = try Self.makeRing()
        let issued = try TokenIssuer(settings: IssuerSettings()).issue(subject: "alice", use: .refresh, ring: ring, now: Self.now)
        let header = try XCTUnwrap(TokenForge.header(issued.token))
        XCTAssertEqual(header["kid"] as? String, "k-active")
        XCTAssertEqual(header["alg"] as? String, "HS256")
        XCTAssertEqual(header["typ"] as? String, "JWT")
        XCTAssertEqual(header.count, 3)
    }

    func testRotationKeepsOldTokensValidUntilTheirKeyIsRetired() throws {
        let oldKey = Array("rotation-old-secret-0123456789abcdef".utf8)
        let newKey = Array("rotation-new-secret-fedcba9876543210".utf8)
        let issuer = TokenIssuer(settings: IssuerSettings())
        let v = Self.verifier()

        let before = try KeyRing(keys: [Key(kid: "k-2025", algorithm: .hs256, material: .secret(oldKey), state: .active)])
        let old = try issuer.issue(subject: "alice", use: .access, ring: before, now: Self.now)
        XCTAssertEqual(TokenForge.header(old.token)?["kid"] as? String, "k-2025")
        XCTAssertNil(Self.outcome(v, old.token, use: .access, ring: before, revocations: nil))

        // Rotation: new key active, old key demoted to verify.
        let rotated = try KeyRing(keys: [
            Key(kid: "k-2025", algorithm: .hs256, material: .secret(oldKey), state: .verify),
            Key(kid: "k-2026", algorithm: .hs256, material: .secret(newKey), state: .active),
        ])
        XCTAssertNil(Self.outcome(v, old.token, use: .access, ring: rotated, revocations: nil), "old token after rotation")
        let new = try issuer.issue(subject: "alice", use: .access, ring: rotated, now: Self.now + 10)
        XCTAssertEqual(TokenForge.header(new.token)?["kid"] as? String, "k-2026")
        XCTAssertEqual(try v.verify(new.token, use: .access, ring: rotated, now: Self.now + 10).keyIndex, 1)
        XCTAssertEqual(try v.verify(old.token, use: .access, ring: rotated, now: Self.now + 10).keyIndex, 0)

        // Retirement of the old key.
        let retired = try KeyRing(keys: [
            Key(kid: "k-2025", algorithm: .hs256, material: .secret(oldKey), state: .retired),
            Key(kid: "k-2026", algorithm: .hs256, material: .secret(newKey), state: .active),
        ])
        XCTAssertEqual(Self.outcome(v, old.token, use: .access, ring: retired, revocations: nil, now: Self.now + 20), .retiredKey)
        XCTAssertEqual(Self.outcome(Self.verifier(), old.token, use: .access, ring: retired, revocations: nil, now: Self.now + 20), .retiredKey)
        XCTAssertNil(Self.outcome(v, new.token, use: .access, ring: retired, revocations: nil, now: Self.now + 20))
        // A token of the new key forged onto the old kid does not pass either.
        let forged = TokenForge.token(header: #"{"alg":"HS256","typ":"JWT","kid":"k-2025"}"#,
                                      payload: ForgedClaims(now: Self.now).json, secret: newKey)
        XCTAssertEqual(Self.outcome(v, forged, use: .access, ring: rotated, revocations: nil), .badSignature)
    }

    // MARK: - PyJWT interoperability

    private static let python = "/usr/bin/python3"

    private struct PythonResult {
        let status: Int32
        let out: String
        let err: String
    }

    private func runPython(_ script: String, _ arguments: [String]) throws -> PythonResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.python)
        process.arguments = ["-c", script] + arguments
        var env = ProcessInfo.processInfo.environment
        env["PYTHONIOENCODING"] = "utf-8"
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        process.environment = env
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return PythonResult(status: process.terminationStatus,
                            out: String(decoding: outData, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines),
                            err: String(decoding: errData, as: UTF8.self))
    }

    private func requirePyJWT() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.python) else {
            throw XCTSkip("\(Self.python) is not available")
        }
        let probe = try runPython("import jwt", [])
        if probe.status != 0 { throw XCTSkip("PyJWT is not installed for \(Self.python): \(probe.err)") }
    }

    func testTokenMadeByPyJWTVerifies() throws {
        try requirePyJWT()
        let ring = try Self.makeRing()
        let now = Int64(Date().timeIntervalSince1970)
        let script = """
        import json, sys, jwt
        secret = bytes.fromhex(sys.argv[1])
        claims = json.loads(sys.argv[3])
        print(jwt.encode(claims, secret, algorithm="HS256", headers={"kid": sys.argv[2]}))
        """
        let claims = """
        {"iss":"datarhei-core","sub":"Jürgen","iat":\(now),"exp":\(now + 600),"exi":600,\
        "jti":"6f1c2d3e-4a5b-4c6d-8e7f-901a2b3c4d5e","usefor":"access"}
        """
        let result = try runPython(script, [Crypto.hex(Self.activeSecret), "k-active", claims])
        XCTAssertEqual(result.status, 0, result.err)
        let token = result.out
        XCTAssertEqual(TokenForge.parts(token).count, 3, token)
        XCTAssertEqual(TokenForge.header(token)?["kid"] as? String, "k-active")

        let verified = try Self.verifier().verify(token, use: .access, ring: ring, now: now)
        XCTAssertEqual(verified.subjectString, "Jürgen")
        XCTAssertEqual(verified.tokenIDString, "6f1c2d3e-4a5b-4c6d-8e7f-901a2b3c4d5e")
        XCTAssertEqual(verified.keyIndex, 0)
        XCTAssertEqual(verified.expiresAt, now + 600)
        // The same PyJWT token is still held to every rule: not as refresh, not with a wrong key.
        XCTAssertEqual(Self.outcome(Self.verifier(), token, use: .refresh, ring: ring, revocations: nil, now: now), .wrongUse)
        let other = try KeyRing(keys: [Key(kid: "k-active", algorithm: .hs256, material: .secret(Self.wrongSecret), state: .active)])
        XCTAssertEqual(Self.outcome(Self.verifier(), token, use: .access, ring: other, revocations: nil, now: now), .badSignature)
    }

    func testTokenWeIssueVerifiesInPyJWT() throws {
        try requirePyJWT()
        let ring = try Self.makeRing()
        let now = Int64(Date().timeIntervalSince1970)
        let subject = "Jürgen 名前"
        let issued = try TokenIssuer(settings: IssuerSettings()).issue(subject: subject, use: .access, ring: ring, now: now)
        let script = """
        import json, sys, jwt
        secret = bytes.fromhex(sys.argv[1])
        claims = jwt.decode(sys.argv[2], secret, algorithms=["HS256"], issuer="datarhei-core")
        header = jwt.get_unverified_header(sys.argv[2])
        print(json.dumps({"claims": claims, "header": header}, ensure_ascii=False))
        """
        let result = try runPython(script, [Crypto.hex(Self.activeSecret), issued.token])
        XCTAssertEqual(result.status, 0, result.err)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.out.utf8)) as? [String: Any], result.out)
        let claims = try XCTUnwrap(object["claims"] as? [String: Any])
        let header = try XCTUnwrap(object["header"] as? [String: Any])
        XCTAssertEqual(claims["sub"] as? String, subject)
        XCTAssertEqual(claims["iss"] as? String, "datarhei-core")
        XCTAssertEqual(claims["jti"] as? String, issued.tokenID)
        XCTAssertEqual(claims["usefor"] as? String, "access")
        XCTAssertEqual((claims["exp"] as? NSNumber)?.int64Value, now + 600)
        XCTAssertEqual((claims["iat"] as? NSNumber)?.int64Value, now)
        XCTAssertEqual(header["kid"] as? String, "k-active")
        XCTAssertEqual(header["alg"] as? String, "HS256")

        // PyJWT refuses it under another secret, so the check above was a real verification.
        let wrong = try runPython(script, [Crypto.hex(Self.wrongSecret), issued.token])
        XCTAssertNotEqual(wrong.status, 0)
        XCTAssertTrue(wrong.err.contains("InvalidSignatureError") || wrong.err.contains("Signature verification failed"), wrong.err)
    }
}

private extension String {
    /// This token with its payload replaced by `json`, re-signed with the active key so that the
    /// signature holds over the new payload.
    func replacingPayload(with json: String) -> String {
        let parts = TokenForge.parts(self)
        return TokenForge.sign(headerPart: parts[0], payloadPart: TokenForge.part(json), secret: HostileTokenTests.activeSecret)
    }
}

private extension Array where Element == UInt8 {
    /// These claims bytes with the value of "sub" replaced by raw bytes (no escaping, no checks).
    func replacingSub(with bytes: [UInt8]) -> [UInt8] {
        let marker = Array(#""sub":""#.utf8)
        guard let start = (0...(count - marker.count)).first(where: { Array(self[$0..<$0 + marker.count]) == marker }) else {
            preconditionFailure("no sub in claims")
        }
        let valueStart = start + marker.count
        let valueEnd = self[valueStart...].firstIndex(of: UInt8(ascii: "\""))!
        return Array(self[..<valueStart]) + bytes + Array(self[valueEnd...])
    }
}
