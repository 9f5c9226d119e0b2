import Foundation
import Glibc
import TokenCore
import XCTest

/// A client of the datarhei Core login API, written the way datarhei Core's own clients
/// (core-client-go, the UI) behave: check `GET /api` first (app, major version 16, `localjwt`),
/// log in with `{"username","password"}`, send `Authorization: Bearer <access>` on every call,
/// refresh a minute before the access token's `exp`, and log in again when a call answers 401.
/// It speaks plain HTTP/1.1 over one keep-alive socket (RawClient), reconnecting when needed.
final class DatarheiStyleClient {
    let port: UInt16
    let username: String
    let password: String
    private(set) var accessToken: String?
    private(set) var refreshToken: String?
    private(set) var logins = 0
    /// The 401 answers the client saw on API calls (each followed by a new login).
    private(set) var unauthorizedAnswers: [HTTPResponse] = []
    private var connection: RawClient?

    init(port: UInt16, username: String, password: String) {
        self.port = port
        self.username = username
        self.password = password
    }

    struct ClientError: Error, CustomStringConvertible {
        let description: String
    }

    /// One request on the client's keep-alive connection (a new connection if the old one died).
    func send(_ method: String, _ path: String, headers: [String] = [], body: String? = nil) throws -> HTTPResponse {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nAccept: application/json\r\n"
        for h in headers { head += h + "\r\n" }
        if let body { head += "Content-Length: \(body.utf8.count)\r\n" }
        let raw = head + "\r\n" + (body ?? "")
        for attempt in 0..<2 {
            if connection == nil { connection = try RawClient(port: port) }
            do {
                try connection!.send(raw)
                let r = try connection!.readResponse()
                if r.header("connection")?.lowercased() == "close" { connection = nil }
                return r
            } catch {
                connection = nil
                if attempt == 1 { throw error }
            }
        }
        throw ClientError(description: "unreachable")
    }

    /// What core-client-go does first: `GET /api`, and refuse anything that is not a datarhei
    /// Core of major version 16 offering the local JWT login.
    func checkAbout() throws -> [String: Any] {
        let r = try send("GET", "/api")
        guard r.status == 200, let about = r.json else { throw ClientError(description: "GET /api answered \(r.status): \(r.text)") }
        guard about["app"] as? String == "datarhei-core" else { throw ClientError(description: "not a datarhei core: \(r.text)") }
        guard let version = about["version"] as? [String: Any], let number = version["number"] as? String,
              number.split(separator: ".").first == "16" else { throw ClientError(description: "unsupported version: \(r.text)") }
        guard (about["auths"] as? [String])?.contains("localjwt") == true else {
            throw ClientError(description: "no localjwt login: \(r.text)")
        }
        return about
    }

    /// `POST /api/login`; keeps both tokens on success.
    @discardableResult
    func login() throws -> HTTPResponse {
        let body = try String(decoding: JSONSerialization.data(withJSONObject: ["username": username, "password": password]), as: UTF8.self)
        let r = try send("POST", "/api/login", headers: ["Content-Type: application/json"], body: body)
        logins += 1
        if r.status == 200, let json = r.json, let access = json["access_token"] as? String, let refresh = json["refresh_token"] as? String {
            accessToken = access
            refreshToken = refresh
        }
        return r
    }

    /// `GET /api/login/refresh` with the refresh token; keeps the new access token on success.
    @discardableResult
    func refresh() throws -> HTTPResponse {
        guard let refreshToken else { throw ClientError(description: "no refresh token") }
        let r = try send("GET", "/api/login/refresh", headers: ["Authorization: Bearer \(refreshToken)"])
        if r.status == 200, let access = r.json?["access_token"] as? String { accessToken = access }
        return r
    }

    /// When the access token should be refreshed: a minute before its `exp`.
    static func refreshTime(ofAccessToken token: String) -> Int64? {
        guard let exp = DatarheiStyleClient.claims(of: token)?["exp"] as? NSNumber else { return nil }
        return exp.int64Value - 60
    }

    /// A call to the API with the access token; on 401 the client logs in again and retries once.
    func call(_ path: String, method: String = "GET") throws -> HTTPResponse {
        guard let accessToken else { throw ClientError(description: "not logged in") }
        let r = try send(method, path, headers: ["Authorization: Bearer \(accessToken)"])
        guard r.status == 401 else { return r }
        unauthorizedAnswers.append(r)
        let l = try login()
        guard l.status == 200, let fresh = self.accessToken else { return r }
        return try send(method, path, headers: ["Authorization: Bearer \(fresh)"])
    }

    /// Forget the access token and use `token` instead (a test's way to present a bad one).
    func replaceAccessToken(with token: String) { accessToken = token }

    /// The claims of a JWS compact token: base64url of the middle part, as JSON.
    static func claims(of token: String) -> [String: Any]? {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else { return nil }
        var b64 = parts[1].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while b64.count % 4 != 0 { b64 += "=" }
        guard let data = Data(base64Encoded: b64) else { return nil }
        return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
    }
}

/// What one login thread saw.
private struct LoginOutcome {
    var response: HTTPResponse?
    var error: String?
    var seconds: Double
    var answeredAt: Date
}

/// datarhei Core's login contract (DESIGN.md section 1) end to end against the real binary, as
/// a datarhei client uses it.
final class DatarheiClientTests: XCTestCase {
    let password = "correct-horse-battery-staple"
    let invalidCredentials = "Invalid authorization credentials: invalid username or password"
    let missingCredentials = "Missing authorization credentials"
    let invalidToken = "Missing or invalid JWT token"

    private func int64(_ v: Any?) -> Int64? { (v as? NSNumber)?.int64Value }

    private func isUUID(_ v: Any?) -> Bool {
        guard let s = v as? String else { return false }
        return UUID(uuidString: s) != nil && s.count == 36
    }

    // MARK: 1. a datarhei-style client end to end

    func testDatarheiStyleClientWorksEndToEnd() throws {
        let gw = try GatewayHarness(password: password)
        let client = DatarheiStyleClient(port: gw.port, username: "admin", password: password)

        // (a) GET /api: what the client checks before anything else.
        let about = try client.checkAbout()
        XCTAssertEqual(about["app"] as? String, "datarhei-core")
        let number = (about["version"] as? [String: Any])?["number"] as? String
        XCTAssertEqual(number?.split(separator: ".").first, "16", "major version 16: \(String(describing: number))")
        XCTAssertTrue((about["auths"] as? [String])?.contains("localjwt") == true, "\(about)")

        // (b) POST /api/login with JSON credentials.
        let before = Int64(Date().timeIntervalSince1970)
        let login = try client.login()
        let after = Int64(Date().timeIntervalSince1970)
        XCTAssertEqual(login.status, 200, login.text)
        XCTAssertEqual(login.header("content-type"), "application/json")
        XCTAssertEqual(Set(login.json?.keys.map { $0 } ?? []), ["access_token", "refresh_token"], login.text)
        let access = try XCTUnwrap(client.accessToken)
        let refresh = try XCTUnwrap(client.refreshToken)
        XCTAssertNotEqual(access, refresh)

        // (c) several API calls with the access token: the upstream sees the user.
        for i in 0..<4 {
            let r = try client.call("/api/v3/process/\(i)")
            XCTAssertEqual(r.status, 200, r.text)
            XCTAssertEqual(r.json?["user"] as? String, "admin")
            XCTAssertEqual(r.upstreamHeader("x-forwarded-user"), ["admin"])
            XCTAssertEqual(r.upstreamHeader("authorization"), [], "the token is not passed upstream")
        }
        XCTAssertEqual(client.unauthorizedAnswers.count, 0)

        // (d) the claims, as the client decodes them.
        let ac = try XCTUnwrap(DatarheiStyleClient.claims(of: access), "access token claims decode")
        XCTAssertEqual(ac["iss"] as? String, "datarhei-core")
        XCTAssertEqual(ac["sub"] as? String, "admin")
        XCTAssertEqual(ac["usefor"] as? String, "access")
        let iat = try XCTUnwrap(int64(ac["iat"]), "iat is a number")
        let exp = try XCTUnwrap(int64(ac["exp"]), "exp is a number")
        let exi = try XCTUnwrap(int64(ac["exi"]), "exi is a number")
        XCTAssertEqual(exi, 600, "default access lifetime")
        XCTAssertEqual(exp, iat + exi)
        XCTAssertTrue((before - 1)...(after + 1) ~= iat, "iat \(iat) is the login time (\(before)...\(after))")
        XCTAssertTrue(isUUID(ac["jti"]), "jti is a UUID: \(String(describing: ac["jti"]))")

        let rc = try XCTUnwrap(DatarheiStyleClient.claims(of: refresh), "refresh token claims decode")
        XCTAssertEqual(rc["iss"] as? String, "datarhei-core")
        XCTAssertEqual(rc["sub"] as? String, "admin")
        XCTAssertEqual(rc["usefor"] as? String, "refresh")
        XCTAssertEqual(int64(rc["exi"]), 86_400, "default refresh lifetime")
        XCTAssertEqual(int64(rc["exp"]), try XCTUnwrap(int64(rc["iat"])) + 86_400)
        XCTAssertTrue(isUUID(rc["jti"]))
        XCTAssertNotEqual(rc["jti"] as? String, ac["jti"] as? String)

        // (e) refresh a minute before exp: the computation, then the refresh itself (no sleeping).
        let refreshAt = try XCTUnwrap(DatarheiStyleClient.refreshTime(ofAccessToken: access))
        XCTAssertEqual(refreshAt, exp - 60)
        XCTAssertEqual(refreshAt, iat + 540)
        XCTAssertGreaterThan(refreshAt, Int64(Date().timeIntervalSince1970), "not due yet for a fresh token")
        let refreshed = try client.refresh()
        XCTAssertEqual(refreshed.status, 200, refreshed.text)
        XCTAssertEqual(refreshed.header("content-type"), "application/json")
        XCTAssertEqual(Set(refreshed.json?.keys.map { $0 } ?? []), ["access_token"], "refresh answers the access token only: \(refreshed.text)")
        let access2 = try XCTUnwrap(client.accessToken)
        XCTAssertNotEqual(access2, access)
        XCTAssertEqual(client.refreshToken, refresh, "the refresh token is kept")
        let ac2 = try XCTUnwrap(DatarheiStyleClient.claims(of: access2))
        XCTAssertEqual(ac2["usefor"] as? String, "access")
        XCTAssertEqual(ac2["sub"] as? String, "admin")
        XCTAssertEqual(int64(ac2["exi"]), 600)
        XCTAssertTrue(isUUID(ac2["jti"]))
        XCTAssertNotEqual(ac2["jti"] as? String, ac["jti"] as? String, "a new jti")
        let afterRefresh = try client.call("/api/v3/after-refresh")
        XCTAssertEqual(afterRefresh.status, 200, afterRefresh.text)
        XCTAssertEqual(afterRefresh.json?["user"] as? String, "admin")
        XCTAssertEqual(client.unauthorizedAnswers.count, 0, "the refreshed token was accepted the first time")

        // (f) a 401 makes the client log in again, and then it works.
        client.replaceAccessToken(with: "garbage.garbage.garbage")
        let loginsBefore = client.logins
        let recovered = try client.call("/api/v3/after-401")
        XCTAssertEqual(client.unauthorizedAnswers.count, 1)
        if let denied = client.unauthorizedAnswers.first {
            XCTAssertEqual(denied.status, 401)
            XCTAssertEqual(denied.json?["details"] as? [String], [invalidToken], denied.text)
            XCTAssertEqual(denied.json?["code"] as? Int, 401)
        }
        XCTAssertEqual(client.logins, loginsBefore + 1, "one new login")
        XCTAssertEqual(recovered.status, 200, recovered.text)
        XCTAssertEqual(recovered.json?["user"] as? String, "admin")
        XCTAssertNotEqual(client.accessToken, "garbage.garbage.garbage")

        // (g) a refresh token never opens the API.
        for token in [refresh, try XCTUnwrap(client.refreshToken)] {
            let r = try gw.get("/api/v3/with-refresh-token", headers: "Authorization: Bearer \(token)\r\n")
            XCTAssertEqual(r.status, 401, r.text)
            XCTAssertEqual(r.json?["details"] as? [String], [invalidToken])
        }
    }

    // MARK: 2. failed logins in parallel do not hold up anyone else

    func testTwelveParallelFailedLoginsAreEach401Or429WhileOtherClientsAreServedPromptly() throws {
        let gw = try GatewayHarness(sections: "[login]\nfailure_delay = \"1s\"\nmax_failures_per_address = 5\nmax_failures_per_user = 100\n",
                                    workers: 1, password: password)
        let port = gw.port
        let outcomes = Locked<[LoginOutcome]>([])
        let connected = DispatchGroup()
        let finished = DispatchGroup()
        let go = DispatchSemaphore(value: 0)
        let body = "{\"username\":\"admin\",\"password\":\"wrong-password\"}"
        let request = "POST /api/login HTTP/1.1\r\nHost: gw.test\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
        let threads = 12
        for _ in 0..<threads {
            connected.enter()
            finished.enter()
            let t = Thread {
                defer { finished.leave() }
                let client: RawClient
                do { client = try RawClient(port: port, timeout: 20) } catch {
                    connected.leave()
                    outcomes.withLock { $0.append(LoginOutcome(response: nil, error: "connect: \(error)", seconds: 0, answeredAt: Date())) }
                    return
                }
                connected.leave()
                go.wait()
                let start = Date()
                do {
                    try client.send(request)
                    let r = try client.readResponse()
                    outcomes.withLock { $0.append(LoginOutcome(response: r, error: nil, seconds: Date().timeIntervalSince(start), answeredAt: Date())) }
                } catch {
                    outcomes.withLock { $0.append(LoginOutcome(response: nil, error: "\(error)", seconds: Date().timeIntervalSince(start), answeredAt: Date())) }
                }
            }
            t.start()
        }
        XCTAssertEqual(connected.wait(timeout: .now() + 10), .success, "the login clients connected")
        for _ in 0..<threads { go.signal() }

        // Meanwhile, on the same single worker: health checks and authorized API calls.
        let bearer = "Authorization: Bearer \(gw.token(sub: "admin"))\r\n"
        var timings: [(String, Double)] = []
        let other = try gw.connect()
        for i in 0..<20 {
            let start = Date()
            let r = try gw.get("/healthz")
            timings.append(("healthz #\(i)", Date().timeIntervalSince(start)))
            XCTAssertEqual(r.status, 200)
        }
        for i in 0..<5 {
            let start = Date()
            try other.send("GET /api/v3/while-logins-fail/\(i) HTTP/1.1\r\nHost: gw.test\r\n\(bearer)\r\n")
            let r = try other.readResponse()
            timings.append(("api #\(i)", Date().timeIntervalSince(start)))
            XCTAssertEqual(r.status, 200, r.text)
            XCTAssertEqual(r.json?["user"] as? String, "admin")
        }
        let othersDone = Date()
        for (what, seconds) in timings {
            XCTAssertLessThan(seconds, 0.5, "\(what) took \(seconds) s while failed logins were pending")
        }

        XCTAssertEqual(finished.wait(timeout: .now() + 30), .success, "every login thread finished in time")
        let all = outcomes.value
        XCTAssertEqual(all.count, threads)
        var unauthorized = 0, throttled = 0
        for o in all {
            guard let r = o.response else { XCTFail("a login got no answer: \(o.error ?? "?")"); continue }
            switch r.status {
            case 401:
                unauthorized += 1
                XCTAssertEqual(r.json?["details"] as? [String], [invalidCredentials], r.text)
                XCTAssertGreaterThanOrEqual(o.seconds, 0.9, "a failed login is answered after the delay")
                XCTAssertGreaterThan(o.answeredAt, othersDone, "the other clients were served while this 401 was pending")
            case 429:
                throttled += 1
                let retry = r.header("retry-after")
                XCTAssertNotNil(retry.flatMap(Int.init).flatMap { $0 > 0 ? $0 : nil }, "Retry-After is a positive integer: \(String(describing: retry))")
                XCTAssertEqual(r.json?["code"] as? Int, 429, r.text)
            default:
                XCTFail("a failed login answered \(r.status): \(r.text)")
            }
        }
        XCTAssertGreaterThanOrEqual(throttled, 1,
                                    "12 failures from one address with max_failures_per_address = 5: at least one 429 (got \(unauthorized) x 401, \(throttled) x 429)")
        XCTAssertLessThanOrEqual(unauthorized, 5,
                                 "no more password checks than the per-address limit allows (got \(unauthorized) x 401)")
    }

    // MARK: 3. the error contract

    private func postLogin(_ gw: GatewayHarness, _ body: String, contentType: String? = "application/json") throws -> HTTPResponse {
        var head = "POST /api/login HTTP/1.1\r\nHost: gw.test\r\n"
        if let contentType { head += "Content-Type: \(contentType)\r\n" }
        head += "Content-Length: \(body.utf8.count)\r\n\r\n"
        return try gw.request(head + body)
    }

    private func assertError(_ r: HTTPResponse, _ status: Int, _ message: String, _ detail: String, _ why: String,
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(r.status, status, "\(why): \(r.text)", file: file, line: line)
        XCTAssertEqual(r.header("content-type"), "application/json", why, file: file, line: line)
        XCTAssertEqual(r.json?["code"] as? Int, status, why, file: file, line: line)
        XCTAssertEqual(r.json?["message"] as? String, message, why, file: file, line: line)
        XCTAssertEqual(r.json?["details"] as? [String], [detail], "\(why): \(r.text)", file: file, line: line)
    }

    func testLoginAndRefreshErrorsFollowTheContract() throws {
        let gw = try GatewayHarness(sections: "[login]\nfailure_delay = 0\n", password: password)

        // Malformed logins: 400.
        let malformed: [(String, String?, String)] = [
            ("", "application/json", "empty body"),
            ("{\"username\":\"admin\",\"password\":", "application/json", "invalid JSON"),
            ("[\"admin\",\"\(password)\"]", "application/json", "JSON array"),
            ("{\"password\":\"\(password)\"}", "application/json", "missing username"),
            ("{\"username\":\"admin\",\"password\":\"\"}", "application/json", "empty password"),
            ("{\"username\":\"admin\",\"password\":\"\(password)\"}", "text/plain", "wrong Content-Type"),
        ]
        for (body, type, why) in malformed {
            assertError(try postLogin(gw, body, contentType: type), 400, "Bad Request", missingCredentials, why)
        }

        // A charset parameter is fine.
        let ok = try postLogin(gw, "{\"username\":\"admin\",\"password\":\"\(password)\"}", contentType: "application/json; charset=utf-8")
        XCTAssertEqual(ok.status, 200, ok.text)
        let access = try XCTUnwrap(ok.json?["access_token"] as? String, ok.text)
        let refresh = try XCTUnwrap(ok.json?["refresh_token"] as? String, ok.text)

        // Unknown user and wrong password: the same 401.
        let unknown = try postLogin(gw, "{\"username\":\"nobody\",\"password\":\"\(password)\"}")
        assertError(unknown, 401, "Unauthorized", invalidCredentials, "unknown user")
        let wrong = try postLogin(gw, "{\"username\":\"admin\",\"password\":\"not-\(password)\"}")
        assertError(wrong, 401, "Unauthorized", invalidCredentials, "wrong password")
        XCTAssertEqual(unknown.text, wrong.text, "unknown user and wrong password are indistinguishable")

        // Only POST logs in.
        let get = try gw.get("/api/login")
        XCTAssertEqual(get.status, 405, get.text)
        XCTAssertEqual(get.json?["code"] as? Int, 405)

        // Refresh failures.
        func refreshWith(_ headers: String) throws -> HTTPResponse { try gw.get("/api/login/refresh", headers: headers) }
        assertError(try refreshWith(""), 401, "Unauthorized", invalidToken, "refresh without a token")
        assertError(try refreshWith("Authorization: Bearer \(access)\r\n"), 401, "Unauthorized", invalidToken, "refresh with an access token")
        let past = Int64(Date().timeIntervalSince1970) - 3600
        assertError(try refreshWith("Authorization: Bearer \(gw.token(sub: "admin", use: .refresh, now: past, lifetime: 60))\r\n"),
                    401, "Unauthorized", invalidToken, "refresh with an expired refresh token")
        assertError(try refreshWith("Authorization: Bearer \(gw.token(sub: "ghost", use: .refresh))\r\n"),
                    403, "Forbidden", "Invalid subject", "refresh for a user that does not exist")
        // The real refresh token still works after all that.
        let good = try refreshWith("Authorization: Bearer \(refresh)\r\n")
        XCTAssertEqual(good.status, 200, good.text)
        XCTAssertEqual(Set(good.json?.keys.map { $0 } ?? []), ["access_token"], good.text)

        // GET /api: public part without a token, the full object with one.
        let publicAbout = try gw.get("/api")
        XCTAssertEqual(publicAbout.status, 200, publicAbout.text)
        let pub = try XCTUnwrap(publicAbout.json, publicAbout.text)
        XCTAssertEqual(Set(pub.keys), ["app", "auths", "version"], publicAbout.text)
        XCTAssertEqual(Set((pub["version"] as? [String: Any])?.keys.map { $0 } ?? []), ["number"], publicAbout.text)
        XCTAssertEqual(pub["app"] as? String, "datarhei-core")
        XCTAssertEqual(pub["auths"] as? [String], ["localjwt"])

        let fullAbout = try gw.get("/api", headers: "Authorization: Bearer \(access)\r\n")
        XCTAssertEqual(fullAbout.status, 200, fullAbout.text)
        let full = try XCTUnwrap(fullAbout.json, fullAbout.text)
        for key in ["app", "auths", "version", "name", "id", "created_at", "uptime_seconds"] {
            XCTAssertNotNil(full[key], "full about has \(key): \(fullAbout.text)")
        }
        XCTAssertNotNil(full["uptime_seconds"] as? NSNumber, fullAbout.text)
        let version = try XCTUnwrap(full["version"] as? [String: Any], fullAbout.text)
        for key in ["number", "repository_commit", "repository_branch", "build_date", "arch", "compiler"] {
            XCTAssertNotNil(version[key], "full about has version.\(key): \(fullAbout.text)")
        }

        // A refresh token does not unlock the full object.
        let withRefresh = try gw.get("/api", headers: "Authorization: Bearer \(refresh)\r\n")
        XCTAssertEqual(Set(withRefresh.json?.keys.map { $0 } ?? []), ["app", "auths", "version"], withRefresh.text)
    }
}
