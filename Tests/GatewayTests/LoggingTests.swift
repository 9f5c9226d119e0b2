import Foundation
import Glibc
import XCTest
@testable import Gateway

/// The logs as an operator ships them: JSON lines a parser takes whole, holding no token or
/// password; a log file that logrotate can move away (SIGUSR1 reopens it).
final class LoggingTests: XCTestCase {
    private func objects(_ text: String) throws -> [[String: Any]] {
        try text.split(separator: "\n").map { line in
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8))
            return try XCTUnwrap(object as? [String: Any], String(line))
        }
    }

    func testJSONLinesParseAndHoldNoSecret() throws {
        let password = "s3cret-password-for-json"
        let gw = try GatewayHarness(sections: "[log]\nformat = \"json\"", password: password)
        let token = gw.token()
        XCTAssertEqual(try gw.get("/api/v3/items?apikey=query-secret", headers: "Authorization: Bearer \(token)\r\n").status, 200)
        XCTAssertEqual(try gw.get("/api/v3/items", headers: "Authorization: Bearer not.a.token\r\n").status, 401)
        let login = try gw.login(password: password)
        XCTAssertEqual(login.status, 200)
        let issued = try XCTUnwrap(login.json?["access_token"] as? String)
        XCTAssertTrue(waitUntil { gw.log.components(separatedBy: "\"msg\":\"access\"").count > 3 }, gw.log)
        let lines = try objects(gw.log)
        for line in lines {
            for key in ["time", "level", "msg"] { XCTAssertNotNil(line[key], "\(key) in \(line)") }
            let time = try XCTUnwrap(line["time"] as? String)
            XCTAssertNotNil(time.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"#, options: .regularExpression), time)
        }
        let access = lines.filter { $0["msg"] as? String == "access" }
        XCTAssertEqual(access.count, 3, "\(access)")
        let proxied = try XCTUnwrap(access.first { $0["status"] as? Int == 200 && $0["method"] as? String == "GET" })
        XCTAssertEqual(proxied["path"] as? String, "/api/v3/items", "no query string")
        XCTAssertEqual(proxied["user"] as? String, "alice")
        XCTAssertEqual(proxied["protocol"] as? String, "HTTP/1.1")
        XCTAssertEqual(proxied["client"] as? String, "127.0.0.1")
        for key in ["bytes", "duration_ms", "request_id"] { XCTAssertNotNil(proxied[key], key) }
        let refused = try XCTUnwrap(access.first { $0["status"] as? Int == 401 })
        XCTAssertEqual(refused["rule"] as? String, "bad_encoding")
        XCTAssertTrue(lines.contains { ($0["msg"] as? String)?.contains("listening on") ?? false }, "the event log is JSON too")
        for secret in [token, issued, password, "query-secret", "not.a.token"] {
            XCTAssertFalse(gw.log.contains(secret), "\(secret) in the log")
        }
    }

    func testSIGUSR1ReopensTheLogFileLogrotateMovedAway() throws {
        let dir = try TempDir()
        let file = dir.path("gateway.log")
        let gw = try GatewayHarness(sections: "[log]\nfile = \"\(file)\"")
        XCTAssertEqual(try gw.get("/api/v3/before", headers: gw.bearer).status, 200)
        XCTAssertTrue(waitUntil { ((try? String(contentsOfFile: file, encoding: .utf8)) ?? "").contains("/api/v3/before") })
        XCTAssertEqual(rename(file, file + ".1"), 0)
        gw.signal(SIGUSR1)
        XCTAssertTrue(waitUntil { FileManager.default.fileExists(atPath: file) }, "a new file once SIGUSR1 was handled")
        XCTAssertEqual(try gw.get("/api/v3/after", headers: gw.bearer).status, 200)
        XCTAssertTrue(waitUntil { ((try? String(contentsOfFile: file, encoding: .utf8)) ?? "").contains("/api/v3/after") })
        let rotated = try String(contentsOfFile: file + ".1", encoding: .utf8)
        XCTAssertTrue(rotated.contains("/api/v3/before"))
        XCTAssertFalse(rotated.contains("/api/v3/after"), "nothing more in the moved file")
        XCTAssertFalse(gw.log.contains("/api/v3/"), "the access log went to the file, not standard output")
    }

    func testARefusedReloadLeavesTheLogAsItWas() throws {
        let gw = try GatewayHarness(sections: "[log]\nformat = \"json\"")
        let good = try String(contentsOfFile: gw.configPath, encoding: .utf8)
        try (good.replacingOccurrences(of: "format = \"json\"", with: "format = \"text\"") + "\n[server]\nnonsense = 1\n")
            .write(toFile: gw.configPath, atomically: true, encoding: .utf8)
        gw.signal(SIGHUP)
        XCTAssertTrue(waitUntil { gw.log.contains("reload refused") }, gw.log)
        XCTAssertEqual(try gw.get("/api/v3/after", headers: gw.bearer).status, 200)
        XCTAssertTrue(waitUntil { gw.log.contains("/api/v3/after") })
        XCTAssertNoThrow(try objects(gw.log), "still one JSON object per line")
    }

    func testRFC3339TimesAreUTCWithMilliseconds() {
        func text(_ ms: Int64) -> String { var out: [UInt8] = []; LogLine.rfc3339(&out, ms: ms); return String(decoding: out, as: UTF8.self) }
        XCTAssertEqual(text(0), "1970-01-01T00:00:00.000Z")
        XCTAssertEqual(text(951_782_400_123), "2000-02-29T00:00:00.123Z")
        XCTAssertEqual(text(1_796_558_399_999), "2026-12-06T11:59:59.999Z")
        XCTAssertEqual(text(4_102_444_800_000), "2100-01-01T00:00:00.000Z")
    }

    func testJSONStringsEscapeWhatWouldBreakALine() {
        var out: [UInt8] = []
        LogLine.string(&out, Array("a\"b\\c\nd\u{01}".utf8))
        XCTAssertEqual(String(decoding: out, as: UTF8.self), #""a\"b\\c\nd\u0001""#)
    }
}
