import Foundation
import XCTest
@testable import Gateway

/// Sign-in with an identity provider (datarhei Core's Auth0 login), against a python HTTPS
/// identity provider on loopback whose certificate a CA of the test's own signed: OpenID
/// discovery, a JWKS it counts fetches of, tokens signed as the provider signs them (PyJWT).
final class IdentityProviderTests: XCTestCase {
    /// Made once: the CA, the server pairs and the provider's signing keys.
    nonisolated(unsafe) private static var keys: TempDir!
    private var idp: TLSFixture.Server!
    private let audience = "https://api.example.com"

    override class func setUp() {
        super.setUp()
        keys = try! TempDir()
        try! TLSFixture.makePKI(in: keys)
        try! TLSFixture.run(["idp-keys", keys.url.path])
    }

    override func setUpWithError() throws {
        idp = try TLSFixture.Server(mode: "idp", cert: Self.keys.path("server.pem"), key: Self.keys.path("server.key"))
        try writeJWKS(["rsa.pem:k1", "ec.pem:k2"])
    }

    override func tearDown() {
        idp?.stop()
    }

    private var issuer: String { "https://localhost:\(idp.port)/" }

    private func writeJWKS(_ members: [String]) throws {
        try TLSFixture.run(["jwks", idp.stateDir.path("jwks.json")] + members.map { Self.keys.url.path + "/" + $0 })
    }

    /// A gateway with one tenant (the test's provider) and the demo upstream; failures answered
    /// at once (no failed-login delay).
    private func gateway(tenant extra: String = "", users: String = "[\"auth0|alice\"]", caFile: String = "ca.pem",
                         routes: String? = nil) throws -> GatewayHarness {
        let gw = try GatewayHarness(sections: """
            [login]
            failure_delay = 0
            max_failures_per_address = 1000

            [api.auth.auth0]
            enable = true

            [[api.auth.auth0.tenants]]
            domain = "localhost:\(idp.port)"
            audience = "\(audience)"
            clientid = "abc123"
            users = \(users)
            ca_file = "\(Self.keys.path(caFile))"
            \(extra)
            """, routes: routes)
        return gw
    }

    private func waitForFirstFetch(_ gw: GatewayHarness) {
        XCTAssertTrue(waitUntil(seconds: 10) { self.idp.count("fetches") >= 1 }, gw.log)
    }

    private func claims(sub: String = "auth0|alice", aud: Any? = nil, iss: String? = nil, iat: Int? = nil, exp: Int? = nil) -> [String: Any] {
        let now = Int(Date().timeIntervalSince1970)
        return ["iss": iss ?? issuer, "aud": aud ?? [audience, "https://localhost/userinfo"], "sub": sub,
                "iat": iat ?? now - 10, "exp": exp ?? now + 300, "scope": "openid"]
    }

    private func token(_ key: String = "rsa.pem", alg: String = "RS256", kid: String = "k1", _ c: [String: Any]? = nil) throws -> String {
        try TLSFixture.sign(key: Self.keys.path(key), alg: alg, kid: kid, c ?? claims())
    }

    private func token(_ c: [String: Any]) throws -> String { try token("rsa.pem", alg: "RS256", kid: "k1", c) }

    private func signIn(_ gw: GatewayHarness, _ token: String) throws -> HTTPResponse {
        try gw.request("POST /api/login HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer \(token)\r\n\r\n")
    }

    private func payload(_ jwt: String) throws -> [String: Any] {
        var part = String(jwt.split(separator: ".")[1]).replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while part.count % 4 != 0 { part += "=" }
        return try XCTUnwrap(JSONSerialization.jsonObject(with: XCTUnwrap(Data(base64Encoded: part))) as? [String: Any])
    }

    private func tokens(_ r: HTTPResponse) throws -> (access: String, refresh: String) {
        let body = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any])
        return (try XCTUnwrap(body["access_token"] as? String), try XCTUnwrap(body["refresh_token"] as? String))
    }

    // MARK: sign-in

    func testRS256AndES256TokensOfTheTenantSignInAndTheirTokensWorkAsAPasswordLogins() throws {
        let gw = try gateway()
        waitForFirstFetch(gw)
        for (key, alg, kid) in [("rsa.pem", "RS256", "k1"), ("ec.pem", "ES256", "k2")] {
            let r = try signIn(gw, try token(key, alg: alg, kid: kid))
            XCTAssertEqual(r.status, 200, "\(alg): \(r.text)\n\(gw.log)")
            let (access, refresh) = try tokens(r)
            let claims = try payload(access)
            XCTAssertEqual(claims["sub"] as? String, "auth0|alice")
            XCTAssertEqual(claims["idp"] as? String, issuer)
            XCTAssertEqual(claims["usefor"] as? String, "access")
            let proxied = try gw.get("/api/v3/whoami", headers: "Authorization: Bearer \(access)\r\n")
            XCTAssertEqual(proxied.status, 200, proxied.text)
            XCTAssertEqual(proxied.upstreamHeader("X-Forwarded-User"), ["auth0|alice"])
            let refreshed = try gw.get("/api/login/refresh", headers: "Authorization: Bearer \(refresh)\r\n")
            XCTAssertEqual(refreshed.status, 200, refreshed.text)
            let again = try payload(try XCTUnwrap((JSONSerialization.jsonObject(with: Data(refreshed.body)) as? [String: Any])?["access_token"] as? String))
            XCTAssertEqual(again["idp"] as? String, issuer, "the refreshed token still says where the user signed in")
        }
    }

    func testLogoutAndRevocationByUserApplyToTheTokensOfASignIn() throws {
        let gw = try gateway()
        waitForFirstFetch(gw)
        let first = try tokens(try signIn(gw, try token()))
        let out = try gw.request("POST /api/logout HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer \(first.refresh)\r\n\r\n")
        XCTAssertLessThan(out.status, 300, out.text)
        XCTAssertEqual(try gw.get("/api/login/refresh", headers: "Authorization: Bearer \(first.refresh)\r\n").status, 401)
        let second = try tokens(try signIn(gw, try token()))
        XCTAssertEqual(try gw.get("/api/v3/x", headers: "Authorization: Bearer \(second.access)\r\n").status, 200)
        let revoked = try GatewayBinary.run(["revoke", "--config", gw.configPath, "--user", "auth0|alice"])
        XCTAssertEqual(revoked.status, 0, revoked.stdout + revoked.stderr)
        XCTAssertEqual(try gw.get("/api/v3/x", headers: "Authorization: Bearer \(second.access)\r\n").status, 401)
        XCTAssertEqual(try gw.get("/api/login/refresh", headers: "Authorization: Bearer \(second.refresh)\r\n").status, 401)
    }

    func testTokensThatBreakARuleAreRefusedWithDatarheisAnswer() throws {
        let gw = try gateway()
        waitForFirstFetch(gw)
        let now = Int(Date().timeIntervalSince1970)
        let refused: [(String, String)] = [
            ("expired", try token(claims(iat: now - 600, exp: now - 300))),
            ("wrong audience", try token(claims(aud: "https://other.example.com"))),
            ("no audience", try token(claims(aud: [String]()))),
            ("wrong issuer", try token(claims(iss: "https://localhost:\(idp.port)"))),
            ("subject not allowed", try token(claims(sub: "auth0|mallory"))),
            ("alg none", try token(alg: "none")),
            ("HS256 with the public key as secret", try token(alg: "HS256")),
            ("signed by another key under k1", try token("rsa2.pem")),
            ("RS256 named for the EC key", try token(kid: "k2")),
        ]
        for (why, t) in refused {
            let r = try signIn(gw, t)
            XCTAssertEqual(r.status, 401, "\(why): \(r.text)")
            XCTAssertTrue(r.text.contains("Invalid authorization credentials"), "\(why): \(r.text)")
            XCTAssertNil(r.header("Set-Cookie"))
        }
        XCTAssertFalse(gw.log.contains("eyJ"), "no token in the log")
    }

    func testAnUnknownKidRefetchesTheKeysOnceWithinTheCooldown() throws {
        let gw = try gateway()
        waitForFirstFetch(gw)
        XCTAssertEqual(idp.count("fetches"), 1)
        XCTAssertEqual(try signIn(gw, try token("rsa2.pem", kid: "k9")).status, 401)
        XCTAssertEqual(idp.count("fetches"), 2, "one refetch for the unknown kid")
        for _ in 0..<3 { XCTAssertEqual(try signIn(gw, try token("rsa2.pem", kid: "k9")).status, 401) }
        XCTAssertEqual(idp.count("fetches"), 2, "no more within the cooldown")
    }

    func testAKeyTheProviderRotatedInSignsInAtOnce() throws {
        let gw = try gateway()
        waitForFirstFetch(gw)
        try writeJWKS(["rsa.pem:k1", "rsa2.pem:k3"])
        let r = try signIn(gw, try token("rsa2.pem", kid: "k3"))
        XCTAssertEqual(r.status, 200, "\(r.text)\n\(gw.log)")
        XCTAssertEqual(idp.count("fetches"), 2)
    }

    // MARK: trust

    func testAProviderCertificateFromAnotherCAIsRefused() throws {
        let gw = try gateway(caFile: "other-ca.pem")
        XCTAssertTrue(waitUntil(seconds: 10) { gw.log.contains("fetching its keys failed") }, gw.log)
        XCTAssertTrue(gw.log.contains("certificate refused"), gw.log)
        XCTAssertEqual(idp.count("fetches"), 0, "the TLS handshake fails before any request")
        XCTAssertEqual(try signIn(gw, try token()).status, 401)
    }

    func testAProviderCertificateForAnotherNameIsRefused() throws {
        idp.stop()
        idp = try TLSFixture.Server(mode: "idp", cert: Self.keys.path("wrong-name.pem"), key: Self.keys.path("wrong-name.key"))
        try writeJWKS(["rsa.pem:k1"])
        let gw = try gateway()
        XCTAssertTrue(waitUntil(seconds: 10) { gw.log.contains("hostname mismatch") }, gw.log)
        XCTAssertEqual(idp.count("fetches"), 0)
        XCTAssertEqual(try signIn(gw, try token()).status, 401)
    }

    // MARK: a provider that is down or slow

    func testWithTheProviderStoppedPasswordLoginsAnswerAndACachedKeyStillVerifies() throws {
        let gw = try gateway()
        waitForFirstFetch(gw)
        idp.stop()
        XCTAssertEqual(try gw.login(password: "test-password-not-used").status, 200)
        let r = try signIn(gw, try token())
        XCTAssertEqual(r.status, 200, r.text)
    }

    func testASlowProviderDelaysOnlyItsOwnSignIns() throws {
        let gw = try gateway()
        waitForFirstFetch(gw)
        try idp.setFile("hang", "")
        // A sign-in whose kid is unknown waits on the (hanging) provider...
        let unknown = try token("rsa2.pem", kid: "k9")
        let signInDone = Locked(false)
        let started = DispatchSemaphore(value: 0)
        let port = gw.port, request = "POST /api/login HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer \(unknown)\r\n\r\n"
        Thread.detachNewThread {
            started.signal()
            if let c = try? RawClient(port: port) {
                try? c.send(request)
                _ = try? c.readResponse()
            }
            signInDone.withLock { $0 = true }
        }
        started.wait()
        // ...while password logins, refreshes and the bearer check go on.
        let login = try gw.login(password: "test-password-not-used")
        XCTAssertEqual(login.status, 200)
        XCTAssertEqual(try gw.get("/api/v3/ping", headers: gw.bearer).status, 200)
        XCTAssertFalse(signInDone.withLock { $0 }, "the sign-in was still waiting on the provider")
        XCTAssertTrue(waitUntil(seconds: 15) { signInDone.withLock { $0 } }, "the fetch times out and the sign-in is answered")
    }

    // MARK: about, routes, configuration

    func testAboutListsEachTenantAsDatarheiCoreDoes() throws {
        let gw = try gateway()
        let r = try gw.get("/api")
        let body = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any])
        XCTAssertEqual(body["auths"] as? [String], ["localjwt", "auth0 domain=localhost:\(idp.port) audience=\(audience) clientid=abc123"])
    }

    func testARouteWithAcceptIdPTokensIsOpenedByAProviderTokenAndOthersAreNot() throws {
        let gw = try gateway(routes: """
            [[route]]
            prefix = "/api/v3/"
            upstream = "UPSTREAM"
            auth = "required"
            accept_idp_tokens = true

            [[route]]
            prefix = "/private/"
            upstream = "UPSTREAM"
            auth = "required"
            """)
        waitForFirstFetch(gw)
        let t = try token()
        let r = try gw.get("/api/v3/direct", headers: "Authorization: Bearer \(t)\r\n")
        XCTAssertEqual(r.status, 200, r.text)
        XCTAssertEqual(r.upstreamHeader("X-Forwarded-User"), ["auth0|alice"])
        XCTAssertEqual(try gw.get("/private/direct", headers: "Authorization: Bearer \(t)\r\n").status, 401)
        XCTAssertEqual(try gw.get("/api/v3/direct", headers: "Authorization: Bearer \(try token(claims(sub: "auth0|mallory")))\r\n").status, 401)
        XCTAssertEqual(try gw.get("/api/v3/direct", headers: "Authorization: Bearer \(try token(claims(aud: "https://other")))\r\n").status, 401)
        XCTAssertEqual(try gw.get("/api/v3/direct", headers: gw.bearer).status, 200, "the gateway's own tokens still open it")
        // RFC 9068 access tokens (typ at+jwt), as Okta and Keycloak issue them.
        let typed = try TLSFixture.sign(key: Self.keys.path("rsa.pem"), alg: "RS256", kid: "k1", claims(), typ: "at+jwt")
        XCTAssertEqual(try gw.get("/api/v3/direct", headers: "Authorization: Bearer \(typed)\r\n").status, 200)
    }
}
