import Foundation
import XCTest

/// `GET /api`: the public part for anyone, the full object for a valid token, optionally the
/// upstream's own object with the gateway's `auths`.
final class AboutTests: XCTestCase {
    func testAboutIsConfigurableAndPublicPartNeedsNoToken() throws {
        let gw = try GatewayHarness(sections: "[about]\napp = \"datarhei-core\"\nversion = \"16.20.1\"\nname = \"edge-1\"\n")
        let pub = try gw.get("/api")
        XCTAssertEqual(pub.status, 200)
        XCTAssertEqual(pub.json?["app"] as? String, "datarhei-core")
        XCTAssertEqual((pub.json?["version"] as? [String: Any])?["number"] as? String, "16.20.1")
        XCTAssertNil(pub.json?["name"])
        let full = try gw.get("/api", headers: gw.bearer)
        XCTAssertEqual(full.json?["name"] as? String, "edge-1")
        XCTAssertEqual(full.json?["auths"] as? [String], ["localjwt"])
    }

    func testAboutFromUpstreamKeepsTheGatewaysAuths() throws {
        let gw = try GatewayHarness(sections: "[about]\nfrom_upstream = true\n")
        var body: [String: Any]?
        XCTAssertTrue(waitUntil(seconds: 5) { body = try? gw.get("/api", headers: gw.bearer).json; return body?["method"] != nil })
        // The demo upstream describes the request it saw: proof the object came from it.
        XCTAssertEqual(body?["path"] as? String, "/api")
        XCTAssertEqual(body?["auths"] as? [String], ["localjwt"], "auths are the gateway's")
        let pub = try gw.get("/api").json
        XCTAssertEqual(pub?["app"] as? String, "datarhei-core", "without a token: the gateway's public part")
        XCTAssertNil(pub?["method"])
    }

    func testLoginDisabledRemovesTheEndpointsAndLocaljwt() throws {
        let off = try GatewayHarness(settings: "", sections: "", routes: """
            [[route]]
            prefix = "/api/v3/"
            upstream = "UPSTREAM"
            auth = "none"
            """, password: "pw", authEnabled: false)
        XCTAssertEqual(try off.request("POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}").status, 404)
        XCTAssertEqual(try off.get("/api").json?["auths"] as? [String], [])
    }
}
