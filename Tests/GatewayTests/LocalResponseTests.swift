import Foundation
import XCTest
@testable import Gateway

/// The endpoint table and the response writer, without a socket: where each path goes, and that
/// every answer the gateway gives itself is well-formed HTTP with valid JSON.
final class LocalResponseTests: XCTestCase {
    private func route(_ prefix: String) -> CompiledRoute {
        CompiledRoute(prefix: Array(prefix.utf8), upstreamIndex: 0, authRequired: true, forwardAuthorization: false,
                      maxBodyBytes: 1 << 20, envelopeErrors: false, closeOnExpiry: true)
    }

    private func table(auth: Bool = true, envelope: Bool = false) -> EndpointTable {
        var config = GatewayConfig()
        config.auth.enable = auth
        config.profiles.envelope = envelope
        return EndpointTable(config: config, routes: [route("/api/v3/"), route("/api/")])
    }

    private func match(_ t: EndpointTable, _ path: String) -> Endpoint {
        Array(path.utf8).withUnsafeBytes { t.match($0) }
    }

    func testOwnEndpointsAreMatchedExactlyThenTheLongestRoutePrefix() {
        let t = table(envelope: true)
        XCTAssertEqual(match(t, "/healthz"), .health)
        XCTAssertEqual(match(t, "/readyz"), .ready)
        XCTAssertEqual(match(t, "/api"), .about)
        XCTAssertEqual(match(t, "/api/login"), .login(.datarhei))
        XCTAssertEqual(match(t, "/api/login/refresh"), .refresh(.datarhei))
        XCTAssertEqual(match(t, "/api/logout"), .logout)
        XCTAssertEqual(match(t, "/api/v1/auth/login"), .login(.envelope))
        XCTAssertEqual(match(t, "/api/v1/auth/refresh"), .refresh(.envelope))
        XCTAssertEqual(match(t, "/api/v3/x"), .proxy(0))
        XCTAssertEqual(match(t, "/api/login/"), .proxy(1), "not the login endpoint: a route's")
        XCTAssertEqual(match(t, "/healthz/x"), .notFound)
        XCTAssertEqual(match(t, "/other"), .notFound)
    }

    func testMatchingIsCaseSensitiveAsRoutesAre() {
        let t = table()
        XCTAssertEqual(match(t, "/HEALTHZ"), .notFound)
        XCTAssertEqual(match(t, "/Readyz"), .notFound)
        XCTAssertEqual(match(t, "/API/LOGIN"), .notFound)
        XCTAssertEqual(match(t, "/Api"), .notFound)
        XCTAssertEqual(match(t, "/api/Login"), .proxy(1))
    }

    func testLoginEndpointsExistOnlyWithPasswordLoginAndTheEnvelopeOnlyWithItsProfile() {
        let off = table(auth: false, envelope: true)
        XCTAssertEqual(match(off, "/api/login"), .proxy(1))
        XCTAssertEqual(match(off, "/api/v1/auth/login"), .proxy(1))
        XCTAssertEqual(match(off, "/api"), .about)
        XCTAssertEqual(match(table(), "/api/v1/auth/login"), .proxy(1))
    }

    // MARK: the writer

    private struct Parsed {
        let status: Int
        let fields: [String: String]
        let body: [UInt8]
    }

    private func parse(_ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line) -> Parsed? {
        let fields = UnsafeMutablePointer<HeaderField>.allocate(capacity: 32)
        defer { fields.deallocate() }
        return bytes.withUnsafeBytes { b -> Parsed? in
            guard case let .complete(head) = parseResponseHead(b, fields: fields, limits: HTTPLimits()) else {
                XCTFail("does not parse: \(String(decoding: bytes, as: UTF8.self))", file: file, line: line)
                return nil
            }
            var named: [String: String] = [:]
            for i in 0..<head.fieldCount {
                let f = fields[i]
                named[String(decoding: b[f.name.start..<f.name.end], as: UTF8.self).lowercased()] =
                    String(decoding: b[f.value.start..<f.value.end], as: UTF8.self)
            }
            return Parsed(status: head.status, fields: named, body: Array(b[head.headLength...]))
        }
    }

    private var everyResponse: [LocalResponse] {
        var all: [LocalResponse] = [.json(Array("{\"a\":1}".utf8)), .noContent, .healthy, .ready,
                                    .error(.tooManyRequests, retryAfter: 7), .envelope(.tooManyAttempts, retryAfter: 3),
                                    .error(.serviceUnavailable, detail: "upstream 1: \"refused\"\r\n\tat\u{1}once\\")]
        all += GatewayResponse.allCases.map { .error($0) }
        all += EnvelopeError.allCases.map { .envelope($0) }
        return all
    }

    func testEveryAnswerParsesWithItsLengthAndValidJSONInBothShapesOpenOrClosing() throws {
        for response in everyResponse {
            for (envelope, close) in [(false, false), (true, false), (false, true), (true, true)] {
                let shaped = response.shaped(envelopeErrors: envelope)
                let p = try XCTUnwrap(parse(ResponseWriter.bytes(shaped, close: close)), "\(response)")
                XCTAssertEqual(p.status, shaped.status, "\(response)")
                XCTAssertEqual(p.fields["connection"], close ? "close" : nil, "\(response)")
                XCTAssertEqual(p.fields["www-authenticate"] != nil, p.status == 401, "\(response)")
                guard p.status != 204 else { XCTAssertTrue(p.body.isEmpty); continue }
                XCTAssertEqual(p.fields["content-length"], String(p.body.count), "\(response)")
                XCTAssertEqual(p.fields["content-type"], "application/json")
                let json = try JSONSerialization.jsonObject(with: Data(p.body)) as? [String: Any]
                XCTAssertNotNil(json, "\(response): \(String(decoding: p.body, as: UTF8.self))")
            }
        }
    }

    func testADetailWithControlCharactersIsEscapedNotBroken() throws {
        let detail = "upstream 1: \"refused\"\r\n\tat\u{1}once\\"
        let p = try XCTUnwrap(parse(ResponseWriter.bytes(.error(.serviceUnavailable, detail: detail), close: false)))
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(p.body)) as? [String: Any])
        XCTAssertEqual(json["details"] as? [String], [detail])
        XCTAssertEqual(json["code"] as? Int, 503)
        XCTAssertEqual(json["message"] as? String, "Service Unavailable")
    }

    func testErrorsTakeTheEnvelopeShapeOnEnvelopeRoutesAndCarryRetryAfter() throws {
        let p = try XCTUnwrap(parse(ResponseWriter.bytes(LocalResponse.error(.tooManyRequests, retryAfter: 7).shaped(envelopeErrors: true), close: false)))
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(p.body)) as? [String: Any])
        XCTAssertEqual(json["error"] as? String, "too_many_attempts")
        XCTAssertEqual(json["code"] as? Int, 1005)
        XCTAssertEqual(p.fields["retry-after"], "7")
        XCTAssertEqual(p.status, 429)
    }

    func testAnAnswerToHEADIsTheHeadAlone() throws {
        for response in everyResponse {
            let get = ResponseWriter.bytes(response, close: false)
            let head = ResponseWriter.bytes(response, close: false, isHEAD: true)
            let p = try XCTUnwrap(parse(head))
            XCTAssertTrue(p.body.isEmpty, "\(response)")
            XCTAssertEqual(Array(get.prefix(head.count)), head, "the same head as GET's")
        }
    }
}
