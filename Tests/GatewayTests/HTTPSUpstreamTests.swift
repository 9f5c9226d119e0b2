import Foundation
import XCTest
@testable import Gateway

/// `https://` upstreams: the real gateway in front of a python HTTPS server whose certificate a
/// CA of the test's own signed; the gateway verifies chain and name (SNI), pools the
/// connections, and refuses (502, nothing sent) a certificate it cannot trust.
final class HTTPSUpstreamTests: XCTestCase {
    private var pki: TempDir!
    private var upstream: TLSFixture.Server!

    override func setUpWithError() throws {
        pki = try TempDir()
        try TLSFixture.makePKI(in: pki)
        upstream = try TLSFixture.Server(mode: "upstream", cert: pki.path("server.pem"), key: pki.path("server.key"))
    }

    override func tearDown() {
        upstream?.stop()
    }

    private func gateway(upstreamURL: String, extra: String) throws -> GatewayHarness {
        try GatewayHarness(routes: """
            [[route]]
            prefix = "/api/v3/"
            upstream = "\(upstreamURL)"
            auth = "required"
            \(extra)
            """, startUpstream: false)
    }

    private func json(_ r: HTTPResponse) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any])
    }

    func testAnUpstreamWhoseCertificateChainsToTheRouteCAIsReachedOverOnePooledConnection() throws {
        let gw = try gateway(upstreamURL: "https://localhost:\(upstream.port)", extra: "ca_file = \"\(pki.path("ca.pem"))\"")
        let c = try gw.connect()
        var ports: [Int] = []
        for i in 0..<3 {
            try c.send("GET /api/v3/item/\(i) HTTP/1.1\r\nHost: gw.test\r\n\(gw.bearer)\r\n")
            let r = try c.readResponse()
            XCTAssertEqual(r.status, 200, r.text)
            let body = try json(r)
            XCTAssertEqual(body["path"] as? String, "/api/v3/item/\(i)")
            XCTAssertEqual(body["user"] as? String, "alice")
            ports.append(try XCTUnwrap(body["peer_port"] as? Int))
        }
        XCTAssertEqual(Set(ports).count, 1, "one TLS connection carried every request: \(ports)")
        XCTAssertEqual(upstream.count("requests"), 3)
    }

    func testAnAddressIsCheckedAgainstTheCertificatesIPEntries() throws {
        let gw = try gateway(upstreamURL: "https://127.0.0.1:\(upstream.port)", extra: "ca_file = \"\(pki.path("ca.pem"))\"")
        let r = try gw.get("/api/v3/by-address", headers: gw.bearer)
        XCTAssertEqual(r.status, 200, r.text)
    }

    func testACertificateFromAnotherCAIsRefusedAndNothingIsSent() throws {
        let gw = try gateway(upstreamURL: "https://localhost:\(upstream.port)", extra: "ca_file = \"\(pki.path("other-ca.pem"))\"")
        let r = try gw.get("/api/v3/secret", headers: gw.bearer)
        XCTAssertEqual(r.status, 502, r.text)
        XCTAssertEqual(upstream.count("requests"), 0)
        XCTAssertTrue(waitUntil { gw.log.contains("certificate refused") }, gw.log)
    }

    func testAnotherServerNameIsRefused() throws {
        let gw = try gateway(upstreamURL: "https://localhost:\(upstream.port)",
                             extra: "ca_file = \"\(pki.path("ca.pem"))\"\ntls_server_name = \"api.example.com\"")
        let r = try gw.get("/api/v3/secret", headers: gw.bearer)
        XCTAssertEqual(r.status, 502, r.text)
        XCTAssertEqual(upstream.count("requests"), 0)
        XCTAssertTrue(waitUntil { gw.log.contains("hostname mismatch") }, gw.log)
    }

    func testTheSystemStoreDoesNotTrustTheTestsCA() throws {
        let gw = try gateway(upstreamURL: "https://localhost:\(upstream.port)", extra: "")
        let r = try gw.get("/api/v3/secret", headers: gw.bearer)
        XCTAssertEqual(r.status, 502, r.text)
        XCTAssertEqual(upstream.count("requests"), 0)
    }

    func testAPlainHTTPUpstreamBehindAnHTTPSURLIsABadGatewayNotAHang() throws {
        let plainPort = try freePort()
        let gw = try GatewayHarness(routes: """
            [[route]]
            prefix = "/api/v3/"
            upstream = "https://127.0.0.1:\(plainPort)"
            auth = "none"
            """, startUpstream: true, upstreamPort: plainPort)
        let r = try gw.get("/api/v3/about")
        XCTAssertEqual(r.status, 502, r.text)
        XCTAssertTrue(waitUntil { gw.log.contains("TLS") }, gw.log)
    }

    func testAnAnswerNobodyAskedForInARecordOfItsOwnNeverReachesTheNextClient() throws {
        upstream.stop()
        upstream = try TLSFixture.Server(mode: "records", cert: pki.path("server.pem"), key: pki.path("server.key"))
        let gw = try gateway(upstreamURL: "https://localhost:\(upstream.port)", extra: "ca_file = \"\(pki.path("ca.pem"))\"")
        let first = try gw.get("/api/v3/stray/1", headers: gw.bearer)
        XCTAssertEqual(first.status, 200)
        XCTAssertEqual(first.text.suffix(5), "first")
        for i in 0..<3 {
            let next = try gw.get("/api/v3/own/\(i)", headers: gw.bearer)
            XCTAssertEqual(next.status, 200, next.text)
            XCTAssertTrue(next.text.hasSuffix("/api/v3/own/\(i)"), "another client's leftovers: \(next.text)")
        }
    }

    func testAnAnswerInManySmallRecordsArrivingTogetherIsRelayedWhole() throws {
        upstream.stop()
        upstream = try TLSFixture.Server(mode: "records", cert: pki.path("server.pem"), key: pki.path("server.key"))
        let gw = try gateway(upstreamURL: "https://localhost:\(upstream.port)", extra: "ca_file = \"\(pki.path("ca.pem"))\"")
        let c = try gw.connect()
        c.setTimeout(10)
        try c.send("GET /api/v3/drip/1 HTTP/1.1\r\nHost: gw.test\r\n\(gw.bearer)\r\n")
        let r = try c.readResponse()
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.body.count, 300)
    }

    func testCAFileOnAPlainUpstreamIsAConfigurationMistake() throws {
        let text = """
            [[route]]
            prefix = "/api/v3/"
            upstream = "http://127.0.0.1:9000"
            ca_file = "/etc/ssl/certs/ca-certificates.crt"
            """
        XCTAssertThrowsError(try ConfigLoader.load(text: text, fileName: "gateway.conf", environment: [:])) { error in
            XCTAssertTrue("\(error)".contains("sets ca_file, but its upstream http://127.0.0.1:9000 is not https://"), "\(error)")
        }
    }
}
