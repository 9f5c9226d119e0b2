import Foundation
import XCTest
@testable import Gateway

/// `/metrics` as Prometheus reads it: scraped from the gateway's own metrics listener and parsed
/// by python's `prometheus_client` (the reference parser), with counters that move with the
/// requests the test makes.
final class MetricsTests: XCTestCase {
    /// The samples of a scrape as `name{label="v",...}` → value, through prometheus_client.
    private func parse(_ text: String) throws -> [String: Double] {
        let script = """
            import json, sys
            from prometheus_client.parser import text_string_to_metric_families
            out = {}
            for family in text_string_to_metric_families(sys.stdin.read()):
                for s in family.samples:
                    labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
                    out[s.name + ("{" + labels + "}" if labels else "")] = s.value
            print(json.dumps(out))
            """
        let r = try GatewayBinary.runProgram(URL(fileURLWithPath: "/usr/bin/python3"), ["-c", script], stdin: text)
        guard r.status == 0 else { throw HarnessError("prometheus_client refused the scrape: \(r.stderr)") }
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Double])
    }

    private func scrape(_ port: UInt16) throws -> (HTTPResponse, [String: Double]) {
        let c = try RawClient(port: port)
        try c.send("GET /metrics HTTP/1.1\r\nHost: prometheus\r\n\r\n")
        let r = try c.readResponse()
        return (r, try parse(r.text))
    }

    func testAScrapeParsesAndItsCountersMoveWithTheRequests() throws {
        let metricsPort = try freePort()
        let gw = try GatewayHarness(sections: """
            [metrics]
            enable = true
            listen = "127.0.0.1:\(metricsPort)"

            [login]
            failure_delay = 0
            """, password: "right-password")
        try waitForPort(metricsPort)
        for _ in 0..<2 { XCTAssertEqual(try gw.get("/api/v3/items", headers: gw.bearer).status, 200) }
        XCTAssertEqual(try gw.get("/api/v3/items", headers: "Authorization: Bearer \(gw.token(use: .refresh))\r\n").status, 401)
        XCTAssertEqual(try gw.login(password: "right-password").status, 200)
        XCTAssertEqual(try gw.login(password: "wrong-password").status, 401)
        let held = try gw.connect()   // a keep-alive client that stays
        try held.send("GET /healthz HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        XCTAssertEqual(try held.readResponse().status, 200)

        let (r, m) = try scrape(metricsPort)
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.header("content-type"), "text/plain; version=0.0.4; charset=utf-8")
        XCTAssertEqual(m[#"gateway_requests_total{code="200",route="/api/v3/"}"#], 2)
        XCTAssertEqual(m[#"gateway_requests_total{code="401",route="/api/v3/"}"#], 1)
        XCTAssertEqual(m[#"gateway_requests_total{code="200",route="own"}"#], 2, "the login and the health check")
        XCTAssertEqual(m[#"gateway_token_rejections_total{reason="wrong_use"}"#], 1)
        XCTAssertEqual(m[#"gateway_logins_total{api="datarhei",result="success"}"#], 1)
        XCTAssertEqual(m[#"gateway_logins_total{api="datarhei",result="invalid"}"#], 1)
        XCTAssertEqual(m["gateway_upstream_duration_seconds_count"], 2)
        XCTAssertEqual(m["gateway_request_duration_seconds_count"], 6)
        XCTAssertEqual(m[#"gateway_request_duration_seconds_bucket{le="+Inf"}"#], 6)
        XCTAssertGreaterThan(m["gateway_request_duration_seconds_sum"] ?? 0, 0)
        XCTAssertEqual(m[#"gateway_connections{protocol="http1"}"#], 1, "the keep-alive client (the scrape is not a client)")
        XCTAssertEqual(m[#"gateway_connections{protocol="tls"}"#], 0)
        XCTAssertNotNil(m[#"gateway_upstream_connections{state="idle",upstream="http://127.0.0.1:\#(gw.upstreamPort)"}"#])
        XCTAssertEqual(m[#"gateway_build_info{version="\#(Version.number)"}"#], 1)
        XCTAssertNotNil(m[#"gateway_signing_key_age_seconds{kid="cur",state="active"}"#] ?? m["gateway_revocations"])
        XCTAssertGreaterThan(m["process_resident_memory_bytes"] ?? 0, 1_000_000)
        XCTAssertGreaterThan(m["process_open_fds"] ?? 0, 3)
        XCTAssertGreaterThan(m["process_start_time_seconds"] ?? 0, 1_700_000_000)
        XCTAssertEqual(m["gateway_scrape_missing_workers"], 0)

        gw.signal(SIGHUP)
        XCTAssertTrue(waitUntil { gw.log.contains("reloaded configuration") })
        XCTAssertEqual(try gw.get("/api/v3/items", headers: gw.bearer).status, 200)
        let (_, again) = try scrape(metricsPort)
        XCTAssertEqual(again[#"gateway_requests_total{code="200",route="/api/v3/"}"#], 3, "a reload keeps the route's counters")
        XCTAssertEqual(again[#"gateway_config_reloads_total{result="success"}"#], 1)
    }

    func testTheMetricsAreNotOnThePublicListenerAndServeOnlyGETMetrics() throws {
        let metricsPort = try freePort()
        let gw = try GatewayHarness(sections: "[metrics]\nenable = true\nlisten = \"127.0.0.1:\(metricsPort)\"")
        try waitForPort(metricsPort)
        XCTAssertEqual(try gw.get("/metrics").status, 404)
        let c = try RawClient(port: metricsPort)
        try c.send("POST /metrics HTTP/1.1\r\nHost: p\r\nContent-Length: 0\r\n\r\n")
        XCTAssertEqual(try c.readResponse().status, 404)
    }

    func testATricklingClientCannotHoldTheScrapes() throws {
        let metricsPort = try freePort()
        let gw = try GatewayHarness(sections: "[metrics]\nenable = true\nlisten = \"127.0.0.1:\(metricsPort)\"")
        try waitForPort(metricsPort)
        let trickleDone = Locked(false), trickleStarted = Locked(false)
        Thread.detachNewThread {
            if let c = try? RawClient(port: metricsPort) {
                for byte in "GET /metrics HTTP/1.1\r\nHost: slow\r\n".utf8 {
                    try? c.send([byte])
                    trickleStarted.withLock { $0 = true }
                    usleep(400_000)   // 36 bytes over about 14 s
                    if trickleDone.value { break }
                }
            }
            trickleDone.withLock { $0 = true }
        }
        XCTAssertTrue(waitUntil { trickleStarted.value }, "the trickling client is connected and sending")
        let (r, m) = try scrape(metricsPort)
        XCTAssertEqual(r.status, 200)
        XCTAssertNotNil(m["gateway_build_info{version=\"\(Version.number)\"}"])
        XCTAssertFalse(trickleDone.value, "the scrape was answered while the trickling client was still sending")
        trickleDone.withLock { $0 = true }
        _ = gw
    }

    func testBucketBoundsAreWrittenAsPrometheusClientsWriteThem() {
        let text = MetricsExposition.render(MetricsSnapshot())
        XCTAssertTrue(text.contains(#"gateway_request_duration_seconds_bucket{le="1"} 0"#), text)
        XCTAssertTrue(text.contains(#"gateway_request_duration_seconds_bucket{le="0.0005"} 0"#), text)
        XCTAssertTrue(text.contains(#"gateway_request_duration_seconds_bucket{le="+Inf"} 0"#), text)
    }

    func testAMetricsAddressSharedWithThePublicListenerIsRefused() {
        let text = "[server]\nlisten = \"0.0.0.0:8080\"\n[metrics]\nenable = true\nlisten = \"127.0.0.1:8080\""
        XCTAssertThrowsError(try ConfigLoader.load(text: text, fileName: "gateway.conf", environment: [:])) { error in
            XCTAssertTrue("\(error)".contains("would share 0.0.0.0:8080 with the public listener"), "\(error)")
        }
    }

    func testLabelValuesAreEscaped() {
        XCTAssertEqual(MetricsExposition.escape("a\"b\\c\nd"), #"a\"b\\c\nd"#)
    }
}
