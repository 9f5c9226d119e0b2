import Foundation
import Glibc
import TokenCore
import XCTest

/// What a request made on another thread saw (written from that thread, read after it is done).
private struct EnvelopeOutcome {
    var response: HTTPResponse?
    var failure: String?
    var seconds: Double = 0
    var answeredAt = Date.distantFuture
}

extension Locked where Value == EnvelopeOutcome {
    fileprivate func record(_ r: HTTPResponse, seconds: Double) {
        withLock { $0.response = r; $0.seconds = seconds; $0.answeredAt = Date() }
    }

    fileprivate func fail(_ why: String) { withLock { $0.failure = why } }

    fileprivate var result: EnvelopeOutcome { value }
}

/// The "envelope" login profile, end to end against the real binary, written from its contract:
/// `POST <login path>` / `POST <refresh path>` answering `{"code":0,"result":{...}}`, refresh-token
/// rotation with reuse detection, the `{"code","error","desc"}` error table (1001 to 1006),
/// `Accept` negotiation, `errors = "envelope"` routes, tokens shared with the datarhei profile,
/// the shared login throttle and failure delay, the profile being off by default, and nothing of
/// it ever reaching an upstream.
///
/// Every request has a socket timeout and every wait a deadline; tearDown checks the test's
/// total time.
final class EnvelopeProfileTests: XCTestCase {
    let password = "correct-horse-battery-staple"
    let loginPath = "/api/v1/auth/login"
    let refreshPath = "/api/v1/auth/refresh"
    /// No test may take longer than this (each socket read is bounded far below it anyway).
    let timeBudget: Double = 90
    private var testStarted = Date()

    override func setUp() {
        super.setUp()
        testStarted = Date()
    }

    override func tearDown() {
        let took = Date().timeIntervalSince(testStarted)
        XCTAssertLessThan(took, timeBudget, "the test took \(took) s")
        super.tearDown()
    }

    // MARK: configuration

    /// The users besides the datarhei single user "admin".
    static let users = """
        [[user]]
        name = "alice"
        password = "alice-secret-1"

        [[user]]
        name = "carol"
        password = "carol-secret-1"
        must_change_password = true

        [[user]]
        name = "dave"
        password = "dave-secret-1"
        enabled = false
        """

    /// /api/v3/ as a normal (datarhei errors) protected route, /env/ as an envelope-errors one.
    static let routes = """
        [[route]]
        prefix = "/api/v3/"
        upstream = "UPSTREAM"
        auth = "required"

        [[route]]
        prefix = "/env/"
        upstream = "UPSTREAM"
        auth = "required"
        errors = "envelope"
        """

    /// Failures answered at once and never throttled, unless a test says otherwise.
    static let quickLogin = "failure_delay = 0\nmax_failures_per_user = 1000\nmax_failures_per_address = 1000"

    /// A gateway with the envelope profile (`profiles`: the body of `[profiles]`; nil: no such
    /// table at all), the users above, and `login` as the body of `[login]`.
    private func gateway(profiles: String? = "envelope = true", login: String = EnvelopeProfileTests.quickLogin,
                         settings: String = "", routes: String? = EnvelopeProfileTests.routes,
                         startUpstream: Bool = true) throws -> GatewayHarness {
        var sections = "[login]\n\(login)\n\n"
        if let profiles { sections += "[profiles]\n\(profiles)\n\n" }
        sections += Self.users + "\n"
        return try GatewayHarness(settings: settings, sections: sections, routes: routes, startUpstream: startUpstream,
                                  workers: 1, password: password)
    }

    // MARK: requests

    private func now() -> Int64 { Int64(Date().timeIntervalSince1970) }

    private func jsonText(_ object: [String: Any]) -> String {
        String(decoding: try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
    }

    /// One request on a fresh connection with a 10 s timeout.
    private func send(_ gw: GatewayHarness, _ raw: String, timeout: Double = 10) throws -> HTTPResponse {
        let c = try RawClient(port: gw.port, timeout: timeout)
        try c.send(raw)
        return try c.readResponse()
    }

    private func request(_ gw: GatewayHarness, _ method: String, _ path: String, body: String? = nil,
                         contentType: String? = "application/json", accept: String? = nil,
                         headers: [String] = []) throws -> HTTPResponse {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: gw.test\r\n"
        if body != nil, let contentType { head += "Content-Type: \(contentType)\r\n" }
        if let accept { head += "Accept: \(accept)\r\n" }
        for h in headers { head += h + "\r\n" }
        if let body { head += "Content-Length: \(body.utf8.count)\r\n" }
        return try send(gw, head + "\r\n" + (body ?? ""))
    }

    private func post(_ gw: GatewayHarness, _ path: String, _ body: String, contentType: String? = "application/json",
                      accept: String? = nil, headers: [String] = []) throws -> HTTPResponse {
        try request(gw, "POST", path, body: body, contentType: contentType, accept: accept, headers: headers)
    }

    private func envelopeLogin(_ gw: GatewayHarness, _ user: String, _ password: String, path: String? = nil,
                               accept: String? = nil) throws -> HTTPResponse {
        try post(gw, path ?? loginPath, jsonText(["user": user, "password": password]), accept: accept)
    }

    /// `POST <refresh path>` with `{"refresh_token"}`, and `Authorization: Bearer <authorization>` if given.
    private func envelopeRefresh(_ gw: GatewayHarness, _ token: String, authorization: String? = nil, path: String? = nil,
                                 accept: String? = nil) throws -> HTTPResponse {
        try post(gw, path ?? refreshPath, jsonText(["refresh_token": token]), accept: accept,
                 headers: authorization.map { ["Authorization: Bearer \($0)"] } ?? [])
    }

    private func datarheiLogin(_ gw: GatewayHarness, _ user: String, _ password: String) throws -> HTTPResponse {
        try post(gw, "/api/login", jsonText(["username": user, "password": password]))
    }

    private func bearer(_ token: String) -> String { "Authorization: Bearer \(token)\r\n" }

    // MARK: tokens

    struct Tokens {
        let access: String
        let refresh: String
    }

    private func int64(_ v: Any?) -> Int64? { (v as? NSNumber)?.int64Value }

    /// Part `index` of a JWS compact token (0 header, 1 claims), as a JSON object.
    private func jwtPart(_ token: String, _ index: Int) -> [String: Any]? {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else { return nil }
        var b64 = parts[index].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while b64.count % 4 != 0 { b64 += "=" }
        guard let data = Data(base64Encoded: b64) else { return nil }
        return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
    }

    private func base64URL(_ text: String) -> String {
        Data(text.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// A token signed by a key the gateway does not know.
    private func foreignToken(sub: String, use: TokenUse) throws -> String {
        let ring = try KeyRing.single(secret: Crypto.randomBytes(32), kid: "cur")
        return try TokenIssuer(settings: IssuerSettings()).issue(subject: sub, use: use, ring: ring, now: now()).token
    }

    /// `token` with the signature of `other` (the same key ring): a signature that does not verify.
    private func withWrongSignature(_ token: String, from other: String) -> String {
        let a = token.split(separator: ".", omittingEmptySubsequences: false)
        let b = other.split(separator: ".", omittingEmptySubsequences: false)
        return "\(a[0]).\(a[1]).\(b[2])"
    }

    /// An unsigned ("alg": "none") token with otherwise valid claims.
    private func unsignedToken(sub: String, use: String) -> String {
        let t = now()
        let claims = "{\"iss\":\"datarhei-core\",\"sub\":\"\(sub)\",\"iat\":\(t),\"exp\":\(t + 600),\"exi\":600,"
            + "\"jti\":\"\(UUID().uuidString.lowercased())\",\"usefor\":\"\(use)\"}"
        return base64URL("{\"alg\":\"none\",\"typ\":\"JWT\"}") + "." + base64URL(claims) + "."
    }

    /// The claims of a token the gateway issued: the normal JWT of the gateway's key ring, with
    /// the given use and lifetime.
    private func assertClaims(_ token: String, sub: String, use: String, exi: Int64, _ why: String,
                              file: StaticString = #filePath, line: UInt = #line) {
        guard let header = jwtPart(token, 0), let claims = jwtPart(token, 1) else {
            XCTFail("\(why): \(use) token is a JWS compact token: \(token)", file: file, line: line)
            return
        }
        XCTAssertEqual(header["alg"] as? String, "HS256", "\(why): \(header)", file: file, line: line)
        XCTAssertEqual(header["kid"] as? String, "cur", "\(why): signed with the ring's active key: \(header)", file: file, line: line)
        let required: Set<String> = ["iss", "sub", "iat", "exp", "exi", "jti", "usefor"]
        XCTAssertTrue(required.isSubset(of: Set(claims.keys)), "\(why): claims iss/sub/iat/exp/exi/jti/usefor: \(claims)", file: file, line: line)
        XCTAssertEqual(claims["iss"] as? String, "datarhei-core", "\(why)", file: file, line: line)
        XCTAssertEqual(claims["sub"] as? String, sub, "\(why)", file: file, line: line)
        XCTAssertEqual(claims["usefor"] as? String, use, "\(why)", file: file, line: line)
        XCTAssertEqual(int64(claims["exi"]), exi, "\(why): \(use) lifetime", file: file, line: line)
        let iat = int64(claims["iat"]) ?? 0
        XCTAssertLessThanOrEqual(abs(iat - now()), 10, "\(why): iat \(iat) is now", file: file, line: line)
        XCTAssertEqual(int64(claims["exp"]), iat + exi, "\(why): exp = iat + exi", file: file, line: line)
        let jti = claims["jti"] as? String
        XCTAssertTrue(jti.map { UUID(uuidString: $0) != nil && $0.count == 36 } ?? false,
                      "\(why): jti is a UUID: \(String(describing: jti))", file: file, line: line)
    }

    /// A successful login (`refresh: false`) or refresh answer: the envelope, the result's
    /// members, and both tokens' claims. Returns the tokens.
    @discardableResult
    private func assertTokenAnswer(_ r: HTTPResponse, refresh isRefresh: Bool, user: String, accessTTL: Int64 = 1800,
                                   refreshTTL: Int64 = 14_400, redirect: String? = nil, _ why: String,
                                   file: StaticString = #filePath, line: UInt = #line) throws -> Tokens {
        XCTAssertEqual(r.status, 200, "\(why): \(r.text)", file: file, line: line)
        XCTAssertEqual(r.header("content-type"), "application/json", why, file: file, line: line)
        let json = try XCTUnwrap(r.json, "\(why): the body is a JSON object: \(r.text)", file: file, line: line)
        var top: Set<String> = ["code", "result"]
        if redirect != nil { top.insert("redirect") }
        XCTAssertEqual(Set(json.keys), top, "\(why): \(r.text)", file: file, line: line)
        XCTAssertEqual(json["code"] as? Int, 0, "\(why): \(r.text)", file: file, line: line)
        if let redirect {
            XCTAssertEqual(json["redirect"] as? String, redirect, "\(why): \(r.text)", file: file, line: line)
        } else {
            XCTAssertNil(json["redirect"], "\(why): no redirect member: \(r.text)", file: file, line: line)
        }
        let result = try XCTUnwrap(json["result"] as? [String: Any], "\(why): result is an object: \(r.text)", file: file, line: line)
        var members: Set<String> = ["token_type", "access_token", "access_token_expires_in", "refresh_token", "refresh_token_expires_in"]
        if isRefresh {
            members.formUnion(["code", "desc"])
            XCTAssertEqual(result["code"] as? Int, 0, "\(why): result.code: \(r.text)", file: file, line: line)
            XCTAssertFalse(((result["desc"] as? String) ?? "").isEmpty, "\(why): result.desc is a non-empty string: \(r.text)",
                           file: file, line: line)
        }
        XCTAssertEqual(Set(result.keys), members, "\(why): \(r.text)", file: file, line: line)
        XCTAssertEqual(result["token_type"] as? String, "Bearer", "\(why): \(r.text)", file: file, line: line)
        XCTAssertEqual(int64(result["access_token_expires_in"]), accessTTL, "\(why): \(r.text)", file: file, line: line)
        XCTAssertEqual(int64(result["refresh_token_expires_in"]), refreshTTL, "\(why): \(r.text)", file: file, line: line)
        let access = try XCTUnwrap(result["access_token"] as? String, "\(why): \(r.text)", file: file, line: line)
        let refresh = try XCTUnwrap(result["refresh_token"] as? String, "\(why): \(r.text)", file: file, line: line)
        XCTAssertNotEqual(access, refresh, why, file: file, line: line)
        assertClaims(access, sub: user, use: "access", exi: accessTTL, "\(why) (access token)", file: file, line: line)
        assertClaims(refresh, sub: user, use: "refresh", exi: refreshTTL, "\(why) (refresh token)", file: file, line: line)
        XCTAssertNotEqual(jwtPart(access, 1)?["jti"] as? String, jwtPart(refresh, 1)?["jti"] as? String, "\(why): two jti",
                          file: file, line: line)
        return Tokens(access: access, refresh: refresh)
    }

    /// An envelope failure: the status, `Content-Type: application/json`, exactly the members
    /// code, error and desc, the stable code and word, and a non-empty desc.
    private func assertEnvelopeError(_ r: HTTPResponse, _ status: Int, _ code: Int, _ error: String, _ why: String,
                                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(r.status, status, "\(why): \(r.text)", file: file, line: line)
        XCTAssertEqual(r.header("content-type"), "application/json", "\(why)", file: file, line: line)
        guard let json = r.json else {
            XCTFail("\(why): the body is a JSON object: \(r.text)", file: file, line: line)
            return
        }
        XCTAssertEqual(Set(json.keys), ["code", "error", "desc"], "\(why): \(r.text)", file: file, line: line)
        XCTAssertEqual(json["code"] as? Int, code, "\(why): \(r.text)", file: file, line: line)
        XCTAssertEqual(json["error"] as? String, error, "\(why): \(r.text)", file: file, line: line)
        XCTAssertFalse(((json["desc"] as? String) ?? "").isEmpty, "\(why): desc is a non-empty string: \(r.text)", file: file, line: line)
    }

    /// A token refused on the refresh endpoint after a reuse revoked its login: 401 with
    /// invalid_token (1003) or token_reused (1004); the contract does not say which.
    private func assertRevokedOnRefresh(_ r: HTTPResponse, _ why: String, file: StaticString = #filePath, line: UInt = #line) {
        if r.json?["code"] as? Int == 1004 {
            assertEnvelopeError(r, 401, 1004, "token_reused", why, file: file, line: line)
        } else {
            assertEnvelopeError(r, 401, 1003, "invalid_token", why, file: file, line: line)
        }
    }

    /// An access token opens the protected /api/v3/ route as `user`.
    private func assertOpensAPI(_ gw: GatewayHarness, _ access: String, as user: String, path: String = "/api/v3/items/1",
                                _ why: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try gw.get(path, headers: bearer(access))
        XCTAssertEqual(r.status, 200, "\(why): \(r.text)", file: file, line: line)
        XCTAssertEqual(r.json?["user"] as? String, user, "\(why): \(r.text)", file: file, line: line)
        XCTAssertEqual(r.upstreamHeader("x-forwarded-user"), [user], "\(why)", file: file, line: line)
    }

    // MARK: login

    /// Contract: POST <login path> {"user","password"} → 200 {"code":0,"result":{token_type "Bearer",
    /// access_token, access_token_expires_in 1800, refresh_token, refresh_token_expires_in 14400}},
    /// no redirect member; the gateway's normal JWTs with exi 1800 / 14400.
    func testLoginAnswersTheEnvelopeWithTheEnvelopeLifetimes() throws {
        let gw = try gateway()
        for (user, pw) in [("admin", password), ("alice", "alice-secret-1")] {
            let tokens = try assertTokenAnswer(try envelopeLogin(gw, user, pw), refresh: false, user: user, "envelope login of \(user)")
            try assertOpensAPI(gw, tokens.access, as: user, "the envelope access token of \(user) opens /api/v3/")
            try assertOpensAPI(gw, tokens.access, as: user, path: "/env/items/1", "the envelope access token of \(user) opens /env/")
            let withRefresh = try gw.get("/api/v3/items/1", headers: bearer(tokens.refresh))
            XCTAssertEqual(withRefresh.status, 401, "a refresh token never opens the API: \(withRefresh.text)")
        }
    }

    /// Contract: the tokens are the gateway's normal JWTs (claims iss/sub/iat/exp/exi/jti/usefor)
    /// with the envelope lifetimes, plus `lid`: the login family that reuse detection revokes
    /// together (README, "Envelope login API"); one login's tokens and its rotations share it.
    func testEnvelopeTokensCarryTheNormalClaimSetAndTheirLoginFamily() throws {
        let gw = try gateway()
        let envelope = try assertTokenAnswer(try envelopeLogin(gw, "admin", password), refresh: false, user: "admin", "envelope login")
        let rotated = try assertTokenAnswer(try envelopeRefresh(gw, envelope.refresh), refresh: true, user: "admin", "envelope refresh")
        let datarhei = try datarheiLogin(gw, "admin", password)
        XCTAssertEqual(datarhei.status, 200, datarhei.text)
        let normal = try XCTUnwrap(datarhei.json?["access_token"] as? String, datarhei.text)
        let normalKeys = Set(jwtPart(normal, 1)?.keys.map { $0 } ?? [])
        XCTAssertEqual(normalKeys, ["iss", "sub", "iat", "exp", "exi", "jti", "usefor"], "a datarhei login's token")
        var families = Set<String>()
        for (token, what) in [(envelope.access, "login access"), (envelope.refresh, "login refresh"),
                              (rotated.access, "refreshed access"), (rotated.refresh, "refreshed refresh")] {
            let claims = jwtPart(token, 1) ?? [:]
            XCTAssertEqual(Set(claims.keys), normalKeys.union(["lid"]), "the envelope \(what) token: the normal claims and lid: \(claims)")
            if let lid = claims["lid"] as? String { families.insert(lid) }
        }
        XCTAssertEqual(families.count, 1, "one login, one family across its rotation")
    }

    /// Contract: with must_change_password = true the answer also carries "redirect": "pw/reset".
    func testLoginOfAUserWhoMustChangeThePasswordCarriesTheRedirect() throws {
        let gw = try gateway()
        try assertTokenAnswer(try envelopeLogin(gw, "carol", "carol-secret-1"), refresh: false, user: "carol",
                              redirect: "pw/reset", "login of a user with must_change_password = true")
        try assertTokenAnswer(try envelopeLogin(gw, "alice", "alice-secret-1"), refresh: false, user: "alice",
                              "login of a user without must_change_password: no redirect")
    }

    /// Contract: envelope_login_path, envelope_refresh_path, envelope_access_ttl, envelope_refresh_ttl
    /// and envelope_redirect are configurable; the default paths then are not the gateway's.
    func testPathsLifetimesAndRedirectAreConfigurable() throws {
        let gw = try gateway(profiles: """
            envelope = true
            envelope_login_path = "/auth/v2/signin"
            envelope_refresh_path = "/auth/v2/renew"
            envelope_access_ttl = "5m"
            envelope_refresh_ttl = 7200
            envelope_redirect = "account/password"
            """, routes: nil)
        let login = try envelopeLogin(gw, "admin", password, path: "/auth/v2/signin")
        let tokens = try assertTokenAnswer(login, refresh: false, user: "admin", accessTTL: 300, refreshTTL: 7200,
                                           "login at the configured path with configured lifetimes")
        try assertOpensAPI(gw, tokens.access, as: "admin", "the access token opens /api/v3/")
        try assertTokenAnswer(try envelopeLogin(gw, "carol", "carol-secret-1", path: "/auth/v2/signin"), refresh: false, user: "carol",
                              accessTTL: 300, refreshTTL: 7200, redirect: "account/password", "the configured redirect")
        let refreshed = try envelopeRefresh(gw, tokens.refresh, authorization: tokens.access, path: "/auth/v2/renew")
        let next = try assertTokenAnswer(refreshed, refresh: true, user: "admin", accessTTL: 300, refreshTTL: 7200,
                                         "refresh at the configured path with configured lifetimes")
        try assertOpensAPI(gw, next.access, as: "admin", "the refreshed access token opens /api/v3/")

        for path in [loginPath, refreshPath] {
            let r = try post(gw, path, jsonText(["user": "admin", "password": password, "refresh_token": next.refresh]))
            XCTAssertEqual(r.status, 404, "\(path) is not an endpoint when other paths are configured: \(r.text)")
            XCTAssertEqual(r.header("content-type"), "application/json", path)
            XCTAssertNotNil(r.json, "\(path): \(r.text)")
        }
    }

    // MARK: refresh

    /// Contract: POST <refresh path> {"refresh_token"} → 200 {"code":0,"result":{"code":0,"desc",
    /// token_type, access_token, access_token_expires_in, refresh_token, refresh_token_expires_in}};
    /// the refresh token is rotated (a new one each time); Authorization is optional.
    func testRefreshRotatesTheTokensAndAnswersTheEnvelope() throws {
        let gw = try gateway()
        var current = try assertTokenAnswer(try envelopeLogin(gw, "admin", password), refresh: false, user: "admin", "login")
        var seen: Set<String> = [current.access, current.refresh]
        for step in 1...3 {
            // The first without Authorization, then with the client's access token.
            let r = try envelopeRefresh(gw, current.refresh, authorization: step == 1 ? nil : current.access)
            let next = try assertTokenAnswer(r, refresh: true, user: "admin", "refresh #\(step)")
            XCTAssertFalse(seen.contains(next.access), "refresh #\(step): a new access token")
            XCTAssertFalse(seen.contains(next.refresh), "refresh #\(step): the refresh token is rotated")
            seen.formUnion([next.access, next.refresh])
            try assertOpensAPI(gw, next.access, as: "admin", "the access token of refresh #\(step) opens /api/v3/")
            current = next
        }

        // A [[user]] keeps its name through a refresh.
        let alice = try assertTokenAnswer(try envelopeLogin(gw, "alice", "alice-secret-1"), refresh: false, user: "alice", "login of alice")
        let aliceNext = try assertTokenAnswer(try envelopeRefresh(gw, alice.refresh, authorization: alice.access), refresh: true,
                                              user: "alice", "refresh of alice")
        try assertOpensAPI(gw, aliceNext.access, as: "alice", "alice's refreshed access token")
    }

    /// Contract: the Authorization access token may be expired; its signature must verify and its
    /// sub must equal the refresh token's.
    func testRefreshAcceptsAnExpiredAccessTokenOfTheSameUserInAuthorization() throws {
        let gw = try gateway()
        let tokens = try assertTokenAnswer(try envelopeLogin(gw, "admin", password), refresh: false, user: "admin", "login")
        let expired = gw.token(sub: "admin", use: .access, now: now() - 7200, lifetime: 1800)
        let r = try envelopeRefresh(gw, tokens.refresh, authorization: expired)
        let next = try assertTokenAnswer(r, refresh: true, user: "admin", "refresh with an expired access token of the same user")
        try assertOpensAPI(gw, next.access, as: "admin", "the new access token opens /api/v3/")
    }

    /// Contract: 1003 invalid_token for an Authorization access token whose signature fails or
    /// whose sub differs from the refresh token's.
    func testRefreshRefusesAnAuthorizationTokenWithABadSignatureOrAnotherSubject() throws {
        let gw = try gateway()
        let other = gw.token(sub: "admin")
        let cases: [(String, (Tokens) throws -> String)] = [
            ("an access token signed by an unknown key", { _ in try self.foreignToken(sub: "admin", use: .access) }),
            ("the client's access token with a signature that does not verify", { t in self.withWrongSignature(t.access, from: other) }),
            ("an unsigned access token", { _ in self.unsignedToken(sub: "admin", use: "access") }),
            ("a valid access token of another user", { _ in gw.token(sub: "alice") }),
            ("an expired access token of another user", { _ in gw.token(sub: "alice", now: self.now() - 7200, lifetime: 1800) }),
        ]
        for (why, make) in cases {
            let tokens = try assertTokenAnswer(try envelopeLogin(gw, "admin", password), refresh: false, user: "admin", "login for: \(why)")
            let r = try envelopeRefresh(gw, tokens.refresh, authorization: try make(tokens))
            assertEnvelopeError(r, 401, 1003, "invalid_token", "refresh with \(why) in Authorization")
        }
    }

    /// Contract: 1003 invalid_token for a bad, expired or wrong-use refresh token.
    func testRefreshRefusesBadExpiredAndWrongUseRefreshTokens() throws {
        let gw = try gateway()
        let tokens = try assertTokenAnswer(try envelopeLogin(gw, "admin", password), refresh: false, user: "admin", "login")
        let cases: [(String, String)] = [
            ("garbage", "not a token"),
            ("a.b.c", "three parts of garbage"),
            (gw.token(sub: "admin", use: .refresh, now: now() - 100_000, lifetime: 14_400), "an expired refresh token"),
            (gw.token(sub: "admin", use: .access), "an access token (wrong use)"),
            (try foreignToken(sub: "admin", use: .refresh), "a refresh token signed by an unknown key"),
            (withWrongSignature(tokens.refresh, from: gw.token(sub: "admin", use: .refresh)), "a refresh token whose signature does not verify"),
            (unsignedToken(sub: "admin", use: "refresh"), "an unsigned refresh token"),
        ]
        for (token, why) in cases {
            assertEnvelopeError(try envelopeRefresh(gw, token), 401, 1003, "invalid_token", "refresh with \(why)")
        }
        // None of that touched the login's own refresh token.
        try assertTokenAnswer(try envelopeRefresh(gw, tokens.refresh), refresh: true, user: "admin",
                              "the real refresh token still works after the refused ones")
    }

    /// Contract: the old refresh token is revoked on use; presenting it again is 1004 token_reused and
    /// revokes every token of that login: the access and refresh tokens of the rotation that followed
    /// are refused on the refresh endpoint and, for the access token, on /api/v3/ (401).
    func testReusingARotatedRefreshTokenRevokesEveryTokenOfThatLogin() throws {
        let gw = try gateway()
        let first = try assertTokenAnswer(try envelopeLogin(gw, "admin", password), refresh: false, user: "admin", "login")
        // Another login of the same user, before the reuse: not "that login".
        let bystander = try assertTokenAnswer(try envelopeLogin(gw, "admin", password), refresh: false, user: "admin", "second login")

        let second = try assertTokenAnswer(try envelopeRefresh(gw, first.refresh, authorization: first.access), refresh: true,
                                           user: "admin", "rotation")
        try assertOpensAPI(gw, second.access, as: "admin", "the rotated access token works before the reuse")

        // The rotated-out refresh token presented again.
        assertEnvelopeError(try envelopeRefresh(gw, first.refresh), 401, 1004, "token_reused", "the old refresh token presented again")

        // Every token of that login is refused now.
        assertRevokedOnRefresh(try envelopeRefresh(gw, second.refresh, authorization: second.access),
                               "the refresh token issued by the rotation after a reuse")
        assertRevokedOnRefresh(try envelopeRefresh(gw, second.refresh), "the refresh token issued by the rotation after a reuse (no Authorization)")
        for (token, why) in [(second.access, "the access token issued by the rotation"), (first.access, "the login's first access token")] {
            let r = try gw.get("/api/v3/after-reuse", headers: bearer(token))
            XCTAssertEqual(r.status, 401, "\(why) is refused on /api/v3/ after the reuse: \(r.text)")
            XCTAssertEqual(r.json?["code"] as? Int, 401, "\(why): the datarhei body on /api/v3/: \(r.text)")
        }
        let env = try gw.get("/env/after-reuse", headers: bearer(second.access))
        assertEnvelopeError(env, 401, 1003, "invalid_token", "the rotated access token on an envelope route after the reuse")

        // The other login is untouched.
        try assertOpensAPI(gw, bystander.access, as: "admin", "another login's access token still works")
        try assertTokenAnswer(try envelopeRefresh(gw, bystander.refresh, authorization: bystander.access), refresh: true, user: "admin",
                              "another login's refresh token still works")
    }

    /// Contract: the old refresh token is revoked on use; presenting it again fails. Also when the
    /// presentations race on two workers: exactly one rotation wins, the others are token_reused,
    /// and that reuse voids the winner's tokens too.
    func testConcurrentPresentationsOfOneRefreshTokenRotateItOnlyOnce() throws {
        let gw = try GatewayHarness(sections: "[login]\n\(Self.quickLogin)\n\n[profiles]\nenvelope = true\n",
                                    routes: Self.routes, workers: 2, password: password)
        let tokens = try assertTokenAnswer(try envelopeLogin(gw, "admin", password), refresh: false, user: "admin", "login")
        let body = jsonText(["refresh_token": tokens.refresh])
        let raw = "POST \(refreshPath) HTTP/1.1\r\nHost: gw.test\r\nContent-Type: application/json\r\n"
            + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
        let port = gw.port
        let count = 6
        let outcomes = (0..<count).map { _ in Locked(EnvelopeOutcome()) }
        let connected = DispatchGroup()
        let finished = DispatchGroup()
        let go = DispatchSemaphore(value: 0)
        for outcome in outcomes {
            connected.enter()
            finished.enter()
            Thread {
                defer { finished.leave() }
                let c: RawClient
                do { c = try RawClient(port: port, timeout: 10) } catch {
                    connected.leave()
                    outcome.fail("connect: \(error)")
                    return
                }
                connected.leave()
                go.wait()
                let start = Date()
                do {
                    try c.send(raw)
                    outcome.record(try c.readResponse(), seconds: Date().timeIntervalSince(start))
                } catch {
                    outcome.fail("\(error)")
                }
            }.start()
        }
        XCTAssertEqual(connected.wait(timeout: .now() + 10), .success, "the clients connected")
        for _ in 0..<count { go.signal() }
        XCTAssertEqual(finished.wait(timeout: .now() + 20), .success, "every refresh was answered in time")

        var winners: [HTTPResponse] = []
        for (i, outcome) in outcomes.enumerated() {
            guard let r = outcome.result.response else {
                XCTFail("presentation #\(i) got no answer: \(outcome.result.failure ?? "?")")
                continue
            }
            if r.status == 200 {
                winners.append(r)
            } else {
                assertEnvelopeError(r, 401, 1004, "token_reused", "a concurrent presentation that lost the rotation (#\(i))")
            }
        }
        XCTAssertEqual(winners.count, 1, "exactly one concurrent presentation rotates the refresh token")
        if let winner = winners.first {
            let next = try assertTokenAnswer(winner, refresh: true, user: "admin", "the winning rotation")
            assertRevokedOnRefresh(try envelopeRefresh(gw, next.refresh), "the winner's refresh token after the losers' reuse")
            let api = try gw.get("/api/v3/after-race", headers: bearer(next.access))
            XCTAssertEqual(api.status, 401, "the winner's access token after the losers' reuse: \(api.text)")
        }
    }

    /// An envelope refresh token rotates: each is spent when used. The datarhei refresh endpoint,
    /// whose refresh tokens stay usable until they expire, would let one mint access tokens over
    /// and over outside its rotation, so it refuses them, current or rotated out; and the envelope
    /// endpoint refuses datarhei refresh tokens. A refusal spends nothing: the rotation goes on.
    func testEachRefreshTokenIsRefreshedOnlyWhereItWasIssued() throws {
        let gw = try gateway()
        let first = try assertTokenAnswer(try envelopeLogin(gw, "admin", password), refresh: false, user: "admin", "login")
        let viaDatarhei = try gw.get("/api/login/refresh", headers: bearer(first.refresh))
        XCTAssertEqual(viaDatarhei.status, 401, "an envelope refresh token on GET /api/login/refresh: \(viaDatarhei.text)")
        XCTAssertEqual(viaDatarhei.json?["details"] as? [String], ["Missing or invalid JWT token"])
        XCTAssertTrue(waitUntil { gw.log.contains("rule=rotating_refresh") }, gw.log)

        let second = try assertTokenAnswer(try envelopeRefresh(gw, first.refresh), refresh: true, user: "admin", "rotation after the refusal")
        XCTAssertEqual(try gw.get("/api/login/refresh", headers: bearer(second.refresh)).status, 401, "the rotated token too")
        XCTAssertEqual(try gw.get("/api/login/refresh", headers: bearer(first.refresh)).status, 401, "and the rotated-out one")

        let datarhei = try datarheiLogin(gw, "admin", password)
        let datarheiRefresh = try XCTUnwrap(datarhei.json?["refresh_token"] as? String, datarhei.text)
        assertEnvelopeError(try envelopeRefresh(gw, datarheiRefresh), 401, 1003, "invalid_token", "a datarhei refresh token on the envelope refresh")
        XCTAssertEqual(try gw.get("/api/login/refresh", headers: bearer(datarheiRefresh)).status, 200, "which still works where it was issued")
    }

    private func postRaw(_ path: String, _ body: String, contentType: String = "application/json", accept: String? = nil,
                         authorization: String? = nil) -> String {
        "POST \(path) HTTP/1.1\r\nHost: gw.test\r\nContent-Type: \(contentType)\r\n" + (accept.map { "Accept: \($0)\r\n" } ?? "")
            + (authorization.map { "Authorization: Bearer \($0)\r\n" } ?? "")
            + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
    }

    /// A client's session on one keep-alive connection: login, failures, refresh, an API call.
    /// Every answer (failures too) leaves the connection in step.
    func testEnvelopeRequestsShareAKeepAliveConnection() throws {
        let gw = try gateway()
        var c = try RawClient(port: gw.port, timeout: 10)
        func exchange(_ raw: String) throws -> HTTPResponse {
            try c.send(raw)
            let r = try c.readResponse()
            if r.header("connection")?.lowercased() == "close" { c = try RawClient(port: gw.port, timeout: 10) }
            return r
        }
        let good = jsonText(["user": "admin", "password": password])
        let tokens = try assertTokenAnswer(try exchange(postRaw(loginPath, good)), refresh: false, user: "admin", "keep-alive login")
        assertEnvelopeError(try exchange(postRaw(loginPath, "{\"user\":\"admin\",")), 400, 1001, "invalid_request", "keep-alive malformed login")
        assertEnvelopeError(try exchange(postRaw(loginPath, jsonText(["user": "admin", "password": "wrong"]))), 401, 1002,
                            "invalid_credentials", "keep-alive wrong login")
        assertEnvelopeError(try exchange(postRaw(loginPath, good, contentType: "text/plain")), 400, 1001, "invalid_request",
                            "keep-alive wrong Content-Type")
        assertEnvelopeError(try exchange(postRaw(refreshPath, jsonText(["refresh_token": "garbage"]))), 401, 1003, "invalid_token",
                            "keep-alive garbage refresh")
        let next = try assertTokenAnswer(try exchange(postRaw(refreshPath, jsonText(["refresh_token": tokens.refresh]))), refresh: true,
                                         user: "admin", "keep-alive refresh")
        let api = try exchange("GET /api/v3/keep-alive HTTP/1.1\r\nHost: gw.test\r\n\(bearer(next.access))\r\n")
        XCTAssertEqual(api.status, 200, api.text)
        XCTAssertEqual(api.json?["user"] as? String, "admin", api.text)
    }

    /// Each kind of envelope answer, pipelined with a health check in one write: the request's
    /// body is consumed whatever the answer, so the next request on the connection is parsed as sent.
    func testEveryEnvelopeAnswerConsumesItsRequestBody() throws {
        let gw = try gateway()
        let good = jsonText(["user": "admin", "password": password])
        let t1 = try assertTokenAnswer(try envelopeLogin(gw, "admin", password), refresh: false, user: "admin", "login")
        let t2 = try assertTokenAnswer(try envelopeLogin(gw, "admin", password), refresh: false, user: "admin", "login")
        let cases: [(String, String, (HTTPResponse, String) throws -> Void)] = [
            ("login", postRaw(loginPath, good), { r, why in try self.assertTokenAnswer(r, refresh: false, user: "admin", why) }),
            ("malformed login", postRaw(loginPath, "{\"user\":\"admin\","),
             { r, why in self.assertEnvelopeError(r, 400, 1001, "invalid_request", why) }),
            ("login with the wrong Content-Type", postRaw(loginPath, good, contentType: "text/plain"),
             { r, why in self.assertEnvelopeError(r, 400, 1001, "invalid_request", why) }),
            ("wrong password", postRaw(loginPath, jsonText(["user": "admin", "password": "wrong"])),
             { r, why in self.assertEnvelopeError(r, 401, 1002, "invalid_credentials", why) }),
            ("login with Accept text/html", postRaw(loginPath, good, accept: "text/html"),
             { r, why in self.assertEnvelopeError(r, 406, 1006, "not_acceptable", why) }),
            ("refresh", postRaw(refreshPath, jsonText(["refresh_token": t1.refresh])),
             { r, why in try self.assertTokenAnswer(r, refresh: true, user: "admin", why) }),
            ("malformed refresh", postRaw(refreshPath, "[]"), { r, why in self.assertEnvelopeError(r, 400, 1001, "invalid_request", why) }),
            ("garbage refresh", postRaw(refreshPath, jsonText(["refresh_token": "garbage"])),
             { r, why in self.assertEnvelopeError(r, 401, 1003, "invalid_token", why) }),
            ("reused refresh", postRaw(refreshPath, jsonText(["refresh_token": t1.refresh])),
             { r, why in self.assertEnvelopeError(r, 401, 1004, "token_reused", why) }),
            ("refresh with a foreign Authorization", postRaw(refreshPath, jsonText(["refresh_token": t2.refresh]), authorization: gw.token(sub: "alice")),
             { r, why in self.assertEnvelopeError(r, 401, 1003, "invalid_token", why) }),
            ("refresh with Accept application/xml", postRaw(refreshPath, jsonText(["refresh_token": t2.refresh]), accept: "application/xml"),
             { r, why in self.assertEnvelopeError(r, 406, 1006, "not_acceptable", why) }),
        ]
        for (what, raw, check) in cases {
            let c = try RawClient(port: gw.port, timeout: 10)
            try c.send(raw + "GET /healthz HTTP/1.1\r\nHost: gw.test\r\n\r\n")
            let first = try c.readResponse()
            try check(first, "pipelined \(what)")
            if first.header("connection")?.lowercased() == "close" { continue }
            let second = try c.readResponse()
            XCTAssertEqual(second.status, 200, "the health check pipelined after a \(what) (\(first.status)): \(second.text)")
        }
    }

    // MARK: failures

    /// Contract: 1001 invalid_request (400) for malformed JSON, a missing or empty field, a wrong
    /// Content-Type, a body that is not an object; on both endpoints.
    func testMalformedRequestsAreInvalidRequestOnBothEndpoints() throws {
        let gw = try gateway()
        let valid = try assertTokenAnswer(try envelopeLogin(gw, "admin", password), refresh: false, user: "admin", "login")
        let loginBody = jsonText(["user": "admin", "password": password])
        let loginCases: [(String, String, String)] = [
            ("", "application/json", "an empty body"),
            ("{\"user\":\"admin\",\"password\":", "application/json", "malformed JSON"),
            ("{\"user\":\"admin\" \"password\":\"x\"}", "application/json", "malformed JSON (no comma)"),
            ("[\"admin\",\"\(password)\"]", "application/json", "a JSON array"),
            ("\"admin\"", "application/json", "a JSON string"),
            ("null", "application/json", "JSON null"),
            (jsonText(["password": password]), "application/json", "no user"),
            (jsonText(["user": "admin"]), "application/json", "no password"),
            (jsonText(["user": "", "password": password]), "application/json", "an empty user"),
            (jsonText(["user": "admin", "password": ""]), "application/json", "an empty password"),
            (jsonText(["username": "admin", "password": password]), "application/json", "the datarhei field name username"),
            (loginBody, "text/plain", "Content-Type text/plain"),
            (loginBody, "application/x-www-form-urlencoded", "Content-Type application/x-www-form-urlencoded"),
        ]
        for (body, type, why) in loginCases {
            assertEnvelopeError(try post(gw, loginPath, body, contentType: type), 400, 1001, "invalid_request", "login with \(why)")
        }
        let refreshCases: [(String, String, String)] = [
            ("", "application/json", "an empty body"),
            ("{\"refresh_token\":", "application/json", "malformed JSON"),
            ("[\"\(valid.refresh)\"]", "application/json", "a JSON array"),
            ("\"\(valid.refresh)\"", "application/json", "a JSON string"),
            ("{}", "application/json", "no refresh_token"),
            (jsonText(["token": valid.refresh]), "application/json", "another field name"),
            (jsonText(["refresh_token": ""]), "application/json", "an empty refresh_token"),
            (jsonText(["refresh_token": valid.refresh]), "text/plain", "Content-Type text/plain"),
        ]
        for (body, type, why) in refreshCases {
            assertEnvelopeError(try post(gw, refreshPath, body, contentType: type), 400, 1001, "invalid_request", "refresh with \(why)")
        }
    }

    /// Contract: 1002 invalid_credentials (401) for an unknown user or a wrong password.
    func testUnknownUsersAndWrongPasswordsAreInvalidCredentials() throws {
        let gw = try gateway()
        let cases: [(String, String, String)] = [
            ("nobody", password, "an unknown user"),
            ("admin", "not-\(password)", "a wrong password for the datarhei user"),
            ("alice", "not-alice-secret-1", "a wrong password for a [[user]]"),
            ("alice", password, "another user's password"),
            ("dave", "dave-secret-1", "a disabled user (enabled = false) with its password"),
        ]
        for (user, pw, why) in cases {
            assertEnvelopeError(try envelopeLogin(gw, user, pw), 401, 1002, "invalid_credentials", "login with \(why)")
        }
        // The datarhei user's right password still works after all that.
        try assertTokenAnswer(try envelopeLogin(gw, "admin", password), refresh: false, user: "admin", "login after the failures")
    }

    /// Contract: Accept application/json, */*, application/* or none → JSON; anything else (e.g.
    /// text/html, application/xml) → 406 with 1006 not_acceptable, on both endpoints.
    func testAcceptNegotiationOnBothEndpoints() throws {
        let gw = try gateway()
        let accepted: [String?] = [nil, "application/json", "*/*", "application/*"]
        for accept in accepted {
            try assertTokenAnswer(try envelopeLogin(gw, "admin", password, accept: accept), refresh: false, user: "admin",
                                  "login with Accept \(accept ?? "(none)")")
        }
        var current = try assertTokenAnswer(try envelopeLogin(gw, "admin", password), refresh: false, user: "admin", "login")
        for accept in accepted {
            current = try assertTokenAnswer(try envelopeRefresh(gw, current.refresh, accept: accept), refresh: true, user: "admin",
                                            "refresh with Accept \(accept ?? "(none)")")
        }
        for accept in ["text/html", "application/xml"] {
            assertEnvelopeError(try envelopeLogin(gw, "admin", password, accept: accept), 406, 1006, "not_acceptable",
                                "login with Accept \(accept)")
            let own = try assertTokenAnswer(try envelopeLogin(gw, "admin", password), refresh: false, user: "admin", "login for a 406 refresh")
            assertEnvelopeError(try envelopeRefresh(gw, own.refresh, accept: accept), 406, 1006, "not_acceptable",
                                "refresh with Accept \(accept)")
        }
    }

    /// Contract: a route with errors = "envelope" answers its 401 (missing/invalid token) with the
    /// envelope body, 1003 invalid_token, still 401 with WWW-Authenticate: Bearer error="invalid_token";
    /// a normal route keeps the datarhei body.
    func testEnvelopeRoutesAnswerTheir401InTheEnvelope() throws {
        let gw = try gateway()
        let cases: [(String, String)] = [
            ("", "no Authorization"),
            ("Authorization: Bearer garbage\r\n", "a garbage token"),
            (bearer(gw.token(sub: "admin", now: now() - 7200, lifetime: 600)), "an expired token"),
            (bearer(gw.token(sub: "admin", use: .refresh)), "a refresh token"),
            (bearer(try foreignToken(sub: "admin", use: .access)), "a token of an unknown key"),
        ]
        for (headers, why) in cases {
            let env = try gw.get("/env/secret", headers: headers)
            assertEnvelopeError(env, 401, 1003, "invalid_token", "envelope route, \(why)")
            XCTAssertEqual(env.header("www-authenticate"), "Bearer error=\"invalid_token\"", "envelope route, \(why)")

            let normal = try gw.get("/api/v3/secret", headers: headers)
            XCTAssertEqual(normal.status, 401, "normal route, \(why): \(normal.text)")
            XCTAssertEqual(normal.header("content-type"), "application/json", "normal route, \(why)")
            XCTAssertEqual(normal.header("www-authenticate"), "Bearer error=\"invalid_token\"", "normal route, \(why)")
            XCTAssertEqual(normal.json?["code"] as? Int, 401, "normal route, \(why): \(normal.text)")
            XCTAssertEqual(normal.json?["message"] as? String, "Unauthorized", "normal route, \(why): \(normal.text)")
            XCTAssertEqual(normal.json?["details"] as? [String], ["Missing or invalid JWT token"], "normal route, \(why): \(normal.text)")
            XCTAssertEqual(Set(normal.json?.keys.map { $0 } ?? []), ["code", "message", "details"], "normal route, \(why): \(normal.text)")
        }
        // A valid token passes the envelope route like any other.
        try assertOpensAPI(gw, gw.token(sub: "admin"), as: "admin", path: "/env/items/2", "a valid token on the envelope route")
    }

    // MARK: the two profiles together

    /// Contract: an envelope access token opens /api/v3/ (X-Forwarded-User = the user); a datarhei
    /// access token works too (also on an envelope route). (Refresh tokens do not cross: see
    /// testEachRefreshTokenIsRefreshedOnlyWhereItWasIssued.)
    func testTokensWorkAcrossTheProfiles() throws {
        let gw = try gateway()
        let envelope = try assertTokenAnswer(try envelopeLogin(gw, "alice", "alice-secret-1"), refresh: false, user: "alice", "envelope login")
        try assertOpensAPI(gw, envelope.access, as: "alice", "an envelope access token on /api/v3/")

        let datarhei = try datarheiLogin(gw, "admin", password)
        XCTAssertEqual(datarhei.status, 200, datarhei.text)
        let datarheiAccess = try XCTUnwrap(datarhei.json?["access_token"] as? String, datarhei.text)
        try assertOpensAPI(gw, datarheiAccess, as: "admin", "a datarhei access token on /api/v3/")
        try assertOpensAPI(gw, datarheiAccess, as: "admin", path: "/env/items/3", "a datarhei access token on an envelope route")

    }

    // MARK: throttling and the failure delay

    /// Contract: the datarhei throttling applies with shared counters per user and per client
    /// address: with max_failures_per_user = 2 and failure_delay = 0, the third wrong envelope
    /// login for the same user is 429 / 1005 with Retry-After.
    func testTheLoginThrottleIsSharedWithTheDatarheiLogin() throws {
        func assertThrottled(_ r: HTTPResponse, _ why: String, file: StaticString = #filePath, line: UInt = #line) {
            assertEnvelopeError(r, 429, 1005, "too_many_attempts", why, file: file, line: line)
            let retry = r.header("retry-after")
            XCTAssertNotNil(retry.flatMap { Int($0) }.flatMap { $0 > 0 ? $0 : nil },
                            "\(why): Retry-After is a positive integer: \(String(describing: retry))", file: file, line: line)
        }
        do {
            let gw = try gateway(login: "failure_delay = 0\nmax_failures_per_user = 2\nmax_failures_per_address = 100")
            for i in 1...2 {
                assertEnvelopeError(try envelopeLogin(gw, "alice", "wrong-\(i)"), 401, 1002, "invalid_credentials", "wrong envelope login #\(i)")
            }
            assertThrottled(try envelopeLogin(gw, "alice", "wrong-3"), "the third wrong envelope login for the same user")
            // The throttled answer consumes the body: a pipelined request after it is parsed as sent.
            let p = try RawClient(port: gw.port, timeout: 10)
            try p.send(postRaw(loginPath, jsonText(["user": "alice", "password": "wrong-5"])) + "GET /healthz HTTP/1.1\r\nHost: gw.test\r\n\r\n")
            let throttled = try p.readResponse()
            assertThrottled(throttled, "a pipelined throttled envelope login")
            if throttled.header("connection")?.lowercased() != "close" {
                XCTAssertEqual(try p.readResponse().status, 200, "the health check pipelined after a 429")
            }
            let viaDatarhei = try datarheiLogin(gw, "alice", "wrong-4")
            XCTAssertEqual(viaDatarhei.status, 429, "the datarhei login shares the per-user counter: \(viaDatarhei.text)")
            XCTAssertEqual(viaDatarhei.json?["code"] as? Int, 429, viaDatarhei.text)

            // One datarhei failure plus one envelope failure: the third (envelope) is throttled.
            let d = try datarheiLogin(gw, "admin", "wrong-1")
            XCTAssertEqual(d.status, 401, d.text)
            assertEnvelopeError(try envelopeLogin(gw, "admin", "wrong-2"), 401, 1002, "invalid_credentials", "wrong envelope login after a datarhei one")
            assertThrottled(try envelopeLogin(gw, "admin", "wrong-3"), "a datarhei failure and an envelope failure count together per user")
        }
        do {
            let gw = try gateway(login: "failure_delay = 0\nmax_failures_per_user = 100\nmax_failures_per_address = 2")
            let d = try datarheiLogin(gw, "alice", "wrong-1")
            XCTAssertEqual(d.status, 401, d.text)
            assertEnvelopeError(try envelopeLogin(gw, "nobody", "wrong-2"), 401, 1002, "invalid_credentials", "second failure from the address")
            assertThrottled(try envelopeLogin(gw, "admin", "wrong-3"), "the third failure from one address, across profiles and users")
        }
    }

    /// Contract: with failure_delay = "1s" a wrong envelope login takes ≥ 0.9 s while a concurrent
    /// GET /healthz on the same single worker answers in < 0.5 s.
    func testAFailedEnvelopeLoginIsDelayedWithoutHoldingUpTheWorker() throws {
        let gw = try gateway(login: "failure_delay = \"1s\"\nmax_failures_per_user = 100\nmax_failures_per_address = 100")
        let body = jsonText(["user": "admin", "password": "not-\(password)"])
        let raw = "POST \(loginPath) HTTP/1.1\r\nHost: gw.test\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
        let port = gw.port
        let outcome = Locked(EnvelopeOutcome())
        let clientPort = Locked<UInt16>(0)
        let sent = DispatchSemaphore(value: 0)
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            defer { done.signal() }
            let start = Date()
            var signalled = false
            do {
                let c = try RawClient(port: port, timeout: 10)
                clientPort.withLock { $0 = KernelSocketView.localPort(of: c.fd) }
                try c.send(raw)
                sent.signal()
                signalled = true
                let r = try c.readResponse()
                outcome.record(r, seconds: Date().timeIntervalSince(start))
            } catch {
                if !signalled { sent.signal() }
                outcome.fail("\(error)")
            }
        }
        thread.start()
        XCTAssertEqual(sent.wait(timeout: .now() + 10), .success, "the login was sent")
        // The gateway has read the login (nothing of it waits in its socket): its answer is pending.
        XCTAssertTrue(waitUntil { KernelSocketView.unreadBytes(localPort: port, remotePort: clientPort.value) == 0 },
                      "the gateway read the login")

        var timings: [Double] = []
        for _ in 0..<5 {
            let start = Date()
            let r = try gw.get("/healthz")
            timings.append(Date().timeIntervalSince(start))
            XCTAssertEqual(r.status, 200, r.text)
        }
        let healthzDone = Date()
        for (i, seconds) in timings.enumerated() {
            XCTAssertLessThan(seconds, 0.5, "GET /healthz #\(i) took \(seconds) s while a failed envelope login was pending")
        }

        XCTAssertEqual(done.wait(timeout: .now() + 15), .success, "the login finished in time")
        let result = outcome.result
        guard let r = result.response else {
            XCTFail("the wrong login got no answer: \(result.failure ?? "?")")
            return
        }
        assertEnvelopeError(r, 401, 1002, "invalid_credentials", "the delayed wrong login")
        XCTAssertGreaterThanOrEqual(result.seconds, 0.9, "a wrong envelope login is answered after the failure delay")
        XCTAssertGreaterThan(result.answeredAt, healthzDone, "the health checks were answered while the failed login was pending")
    }

    // MARK: off by default; nothing forwarded

    /// Contract: with envelope = false (the default) the envelope paths are not answered by the
    /// gateway: 404 JSON, since no route matches.
    func testTheEnvelopeEndpointsDoNotExistWhenTheProfileIsOff() throws {
        for profiles in [nil, "envelope = false"] {
            let gw = try gateway(profiles: profiles, routes: nil)
            let what = profiles ?? "no [profiles] table"
            for (path, body) in [(loginPath, jsonText(["user": "admin", "password": password])),
                                 (refreshPath, jsonText(["refresh_token": gw.token(sub: "admin", use: .refresh)]))] {
                let r = try post(gw, path, body)
                XCTAssertEqual(r.status, 404, "\(what): POST \(path): \(r.text)")
                XCTAssertEqual(r.header("content-type"), "application/json", "\(what): POST \(path)")
                XCTAssertNotNil(r.json, "\(what): POST \(path) answers JSON: \(r.text)")
                XCTAssertNil(r.json?["result"], "\(what): POST \(path) is no envelope answer: \(r.text)")
            }
            // The datarhei login is there as always.
            XCTAssertEqual(try datarheiLogin(gw, "admin", password).status, 200, what)
        }
    }

    /// Contract: nothing on these endpoints is forwarded to the upstream (here a spy on the
    /// /api/v1/ prefix, open so that anything not answered by the gateway would reach it).
    func testNothingOnTheEnvelopeEndpointsReachesTheUpstream() throws {
        let spy = try SpyUpstream()
        let gw = try gateway(settings: "response_timeout = \"2s\"", routes: """
            [[route]]
            prefix = "/api/v1/"
            upstream = "http://127.0.0.1:\(spy.port)"
            auth = "none"
            """, startUpstream: false)

        var answers: [(String, HTTPResponse)] = []
        let good = try envelopeLogin(gw, "admin", password)
        answers.append(("login", good))
        let tokens = try assertTokenAnswer(good, refresh: false, user: "admin", "login behind a spy route")
        answers.append(("wrong password", try envelopeLogin(gw, "admin", "wrong")))
        answers.append(("malformed login", try post(gw, loginPath, "{\"user\":")))
        answers.append(("login with Accept text/html", try envelopeLogin(gw, "admin", password, accept: "text/html")))
        answers.append(("login with a query", try post(gw, loginPath + "?next=%2F", jsonText(["user": "admin", "password": password]))))
        answers.append(("login with Authorization", try post(gw, loginPath, jsonText(["user": "admin", "password": password]),
                                                             headers: ["Authorization: Bearer \(tokens.access)"])))
        let rotated = try envelopeRefresh(gw, tokens.refresh, authorization: tokens.access)
        answers.append(("refresh", rotated))
        try assertTokenAnswer(rotated, refresh: true, user: "admin", "refresh behind a spy route")
        answers.append(("reused refresh", try envelopeRefresh(gw, tokens.refresh)))
        answers.append(("garbage refresh", try envelopeRefresh(gw, "garbage")))
        answers.append(("malformed refresh", try post(gw, refreshPath, "[]")))
        answers.append(("refresh with Accept application/xml", try envelopeRefresh(gw, "garbage", accept: "application/xml")))
        answers.append(("GET of the login path", try request(gw, "GET", loginPath, headers: ["Authorization: Bearer \(tokens.access)"])))
        answers.append(("GET of the refresh path", try request(gw, "GET", refreshPath, headers: ["Authorization: Bearer \(tokens.access)"])))

        XCTAssertEqual(spy.received(wait: 0.3), [], "nothing on the envelope endpoints reached the upstream")
        for (why, r) in answers {
            XCTAssertFalse([502, 503, 504].contains(r.status), "\(why) was answered by the gateway itself: \(r.status) \(r.text)")
            XCTAssertEqual(r.header("content-type"), "application/json", "\(why): every body is JSON")
            XCTAssertNotNil(r.json, "\(why): \(r.text)")
        }

        // The spy does see what the route forwards (so the check above means something).
        let other = try request(gw, "GET", "/api/v1/other")
        XCTAssertNotEqual(other.status, 200, "the spy never answers: \(other.text)")
        XCTAssertEqual(spy.received().count, 1, "a request for another /api/v1/ path is forwarded")
    }
}
