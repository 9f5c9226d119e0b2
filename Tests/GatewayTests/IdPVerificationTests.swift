import Foundation
import XCTest
@testable import Gateway
import TokenCore

/// The rules an identity provider's token must meet, rule by rule, without a network: the key
/// set as the provider would publish it and tokens signed as it signs them (PyJWT), checked at
/// an injected time.
final class IdPVerificationTests: XCTestCase {
    nonisolated(unsafe) private static var keys: TempDir!
    private let issuer = "https://idp.example.com/"
    private let audience = "https://api.example.com"
    private let now: Int64 = 1_800_000_000
    /// The gateway's own users: `admin` logs in with a password.
    nonisolated(unsafe) private static var localUsers: Credentials!

    override class func setUp() {
        super.setUp()
        keys = try! TempDir()
        try! TLSFixture.run(["idp-keys", keys.url.path])
        try! TLSFixture.run(["jwks", keys.path("jwks.json"), keys.path("rsa.pem") + ":k1", keys.path("ec.pem") + ":k2"])
        var config = GatewayConfig()
        config.auth.username = "admin"
        config.auth.password = "admin-password"
        localUsers = try! Credentials(config: config)
    }

    private func tenant(users: [String] = ["auth0|alice"], algorithms: [String] = ["RS256", "ES256"], leeway: Int64 = 0) throws -> IdPTenant {
        var t = GatewayConfig.Tenant()
        t.issuer = issuer
        t.audience = audience
        t.users = users
        t.algorithms = algorithms
        let source = try IdPKeySource(tenant: t)
        let set = try IdPKeySet.parse(Array(try Data(contentsOf: Self.keys.url.appendingPathComponent("jwks.json"))),
                                      allowed: source.allowed)
        _ = source.keep(set, from: "https://idp.example.com/keys", cacheControl: nil, now: now)
        return IdPTenant(t, leeway: leeway, source: source)
    }

    private func claims(_ change: (inout [String: Any]) -> Void = { _ in }) -> [String: Any] {
        var c: [String: Any] = ["iss": issuer, "aud": audience, "sub": "auth0|alice", "iat": now - 60, "exp": now + 300]
        change(&c)
        return c
    }

    private func sign(_ key: String = "rsa.pem", alg: String = "RS256", kid: String = "k1", _ c: [String: Any]) throws -> String {
        try TLSFixture.sign(key: Self.keys.path(key), alg: alg, kid: kid, c)
    }

    private func sign(_ c: [String: Any]) throws -> String { try sign("rsa.pem", alg: "RS256", kid: "k1", c) }

    private func verify(_ token: String, _ tenants: [IdPTenant], at: Int64? = nil) -> Result<IdPVerifiers.Accepted, IdPRefusal> {
        var t = token
        return t.withUTF8 {
            IdPVerifiers().verify(UnsafeRawBufferPointer($0), tenants: tenants, localUsers: Self.localUsers, revocations: RevocationSet(), now: at ?? now)
        }
    }

    private func refusal(_ token: String, _ tenants: [IdPTenant]) -> IdPRefusal? {
        if case let .failure(r) = verify(token, tenants) { return r }
        return nil
    }

    func testATokenMeetingEveryRuleIsAcceptedWithItsSubject() throws {
        let t = try tenant()
        guard case let .success(a) = verify(try sign(claims()), [t]) else { return XCTFail("refused") }
        XCTAssertEqual(a.subject, "auth0|alice")
        guard case .success = verify(try sign("ec.pem", alg: "ES256", kid: "k2", claims { $0["aud"] = ["x", self.audience] }), [t]) else {
            return XCTFail("an ES256 token with the audience in an array is refused")
        }
    }

    func testEachBrokenRuleIsRefusedForThatRule() throws {
        let t = try tenant()
        let cases: [(String, String, IdPRefusal)] = [
            ("expired", try sign(claims { $0["exp"] = self.now - 1 }), .token(.expired)),
            ("not yet valid", try sign(claims { $0["nbf"] = self.now + 60 }), .token(.notYetValid)),
            ("issued in the future", try sign(claims { $0["iat"] = self.now + 60 }), .token(.notYetValid)),
            ("wrong audience", try sign(claims { $0["aud"] = "https://other" }), .token(.wrongAudience)),
            ("no audience", try sign(claims { $0["aud"] = nil }), .token(.wrongAudience)),
            ("issuer without its slash", try sign(claims { $0["iss"] = "https://idp.example.com" }), .token(.wrongIssuer)),
            ("subject not allowed", try sign(claims { $0["sub"] = "auth0|mallory" }), .subjectNotAllowed),
            ("alg none", try sign(alg: "none", claims()), .token(.algNone)),
            ("HS256 with the public key", try sign(alg: "HS256", claims()), .token(.algorithmMismatch)),
            ("RS256 under the EC key's kid", try sign(kid: "k2", claims()), .token(.algorithmMismatch)),
            ("another key under k1", try sign("rsa2.pem", claims()), .token(.badSignature)),
            ("unknown kid", try sign("rsa2.pem", kid: "k9", claims()), .unknownKid),
        ]
        for (why, token, expected) in cases {
            XCTAssertEqual(refusal(token, [t]), expected, why)
        }
    }

    func testLeewayAppliesToTheTimes() throws {
        let t = try tenant(leeway: 30)
        guard case .success = verify(try sign(claims { $0["exp"] = self.now - 10 }), [t]) else { return XCTFail("within the leeway") }
        XCTAssertEqual(refusal(try sign(claims { $0["exp"] = self.now - 31 }), [t]), .token(.expired))
    }

    func testEverySubjectIsAllowedByAStar() throws {
        guard case .success = verify(try sign(claims { $0["sub"] = "google-oauth2|123" }), [try tenant(users: ["*"])]) else {
            return XCTFail("users = [\"*\"] lets every subject in")
        }
    }

    func testAStarNeverLetsInTheNameOfALocalUserButNamingItDoes() throws {
        let admin = try sign(claims { $0["sub"] = "admin" })
        XCTAssertEqual(refusal(admin, [try tenant(users: ["*"])]), .subjectNotAllowed,
                       "the upstream could not tell the provider's admin from the gateway's")
        guard case .success = verify(admin, [try tenant(users: ["admin"])]) else { return XCTFail("named explicitly, it is meant") }
    }

    func testKeysHeldPastTheirFreshnessAndADayAreNoLongerUsed() throws {
        let t = try tenant()
        let token = try sign(claims { $0["exp"] = self.now + 10 * 86_400 })
        let freshUntil = now + 3_600   // no Cache-Control: an hour
        guard case .success = verify(token, [t], at: freshUntil + IdPKeySource.staleGraceSeconds) else {
            return XCTFail("within a day past freshness, while fetches fail, the keys held still verify")
        }
        XCTAssertEqual(refusal2(token, [t], at: freshUntil + IdPKeySource.staleGraceSeconds + 1), .unknownKid)
    }

    private func refusal2(_ token: String, _ tenants: [IdPTenant], at: Int64) -> IdPRefusal? {
        if case let .failure(r) = verify(token, tenants, at: at) { return r }
        return nil
    }

    func testAnAlgorithmOffTheAllowListIsNotUsedEvenWithItsKeyPublished() throws {
        let t = try tenant(algorithms: ["RS256"])
        XCTAssertEqual(refusal(try sign("ec.pem", alg: "ES256", kid: "k2", claims()), [t]), .unknownKid,
                       "the EC key was passed over when the set was read")
    }

    func testTheTenantWhoseKeyAndRulesFitWinsAmongSeveral() throws {
        var other = GatewayConfig.Tenant()
        other.issuer = "https://other.example.com/"
        other.audience = audience
        other.users = ["*"]
        let empty = IdPTenant(other, leeway: 0, source: try IdPKeySource(tenant: other))
        guard case let .success(a) = verify(try sign(claims()), [empty, try tenant()]) else { return XCTFail("refused") }
        XCTAssertEqual(a.tenant, 1)
    }
}
