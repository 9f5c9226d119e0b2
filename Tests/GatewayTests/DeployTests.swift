import Foundation
import XCTest
@testable import Gateway

/// What deploy/ ships: the systemd unit passes systemd's own check and keeps its hardening, the
/// container image is built the way its README says, the compose configuration loads, and the
/// healthcheck verb the image relies on tells a live gateway from a dead one.
final class DeployTests: XCTestCase {
    private var deploy: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("deploy")
    }

    private func text(_ name: String) throws -> String {
        try String(contentsOf: deploy.appendingPathComponent(name), encoding: .utf8)
    }

    private func lines(_ name: String) throws -> Set<String> {
        Set(try text(name).split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) })
    }

    func testTheSystemdUnitPassesSystemdAnalyzeVerify() throws {
        let analyze = "/usr/bin/systemd-analyze"
        guard FileManager.default.isExecutableFile(atPath: analyze) else { throw XCTSkip("systemd-analyze is not installed") }
        let dir = try TempDir()
        // verify checks that ExecStart's program exists: the one just built stands in for it.
        let unit = try dir.write("gateway.service", try text("gateway.service")
            .replacingOccurrences(of: "/usr/local/bin/gateway", with: GatewayBinary.url.path))
        let r = try GatewayBinary.runProgram(URL(fileURLWithPath: analyze), ["verify", unit])
        XCTAssertEqual(r.status, 0, r.stderr)
        let complaints = r.stderr.split(separator: "\n").filter { $0.contains("gateway.service") }
        XCTAssertEqual(complaints, [], "systemd-analyze has something to say about the unit")
    }

    func testTheSystemdUnitIsANotifyServiceWithItsHardening() throws {
        let unit = try lines("gateway.service")
        for line in ["Type=notify", "DynamicUser=yes", "StateDirectory=gateway", "ProtectSystem=strict", "NoNewPrivileges=yes",
                     "PrivateTmp=yes", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE", "SystemCallFilter=@system-service",
                     "ExecReload=/bin/kill -HUP $MAINPID", "Environment=GATEWAY_SERVER_DATA_DIR=/var/lib/gateway"] {
            XCTAssertTrue(unit.contains(line), "deploy/gateway.service lacks \(line)")
        }
        XCTAssertTrue(unit.contains { $0.hasPrefix("ExecStartPre=") && $0.contains("check-config") })
    }

    func testTheContainerImageIsMultiStageNonRootWithAVolumeAndAHealthcheck() throws {
        let file = try text("Containerfile")
        XCTAssertEqual(file.components(separatedBy: "\nFROM ").count + (file.hasPrefix("FROM ") ? 1 : 0), 3, "two stages")
        XCTAssertTrue(file.contains("--static-swift-stdlib"))
        XCTAssertTrue(file.contains("\nUSER gateway"))
        XCTAssertTrue(file.contains("\nVOLUME /data"))
        XCTAssertTrue(file.contains("\"healthcheck\""))
        // Whatever the image copies must exist in the repository.
        let top = deploy.deletingLastPathComponent()
        for line in file.split(separator: "\n") where line.hasPrefix("COPY ") && !line.contains("--from") {
            let source = line.split(separator: " ")[1]
            XCTAssertTrue(FileManager.default.fileExists(atPath: top.appendingPathComponent(String(source)).path), "COPY \(source)")
        }
    }

    func testTheComposeConfigurationLoadsAndSendsTheAPIToCore() throws {
        let loaded = try ConfigLoader.load(text: try text("compose.gateway.conf"), fileName: "compose.gateway.conf",
                                           environment: ["GATEWAY_API_AUTH_USERNAME": "admin", "GATEWAY_API_AUTH_PASSWORD": "x"])
        XCTAssertEqual(loaded.config.routes.map(\.upstream), ["http://core:8080"])
        XCTAssertEqual(loaded.config.server.dataDir, "/data")
        let compose = try text("compose.yaml")
        for secret in ["GATEWAY_API_AUTH_PASSWORD_FILE", "GATEWAY_API_AUTH_JWT_SECRET_FILE", "compose.gateway.conf"] {
            XCTAssertTrue(compose.contains(secret), "compose.yaml lacks \(secret)")
        }
    }

    func testHealthcheckTellsALiveGatewayFromAnAbsentOne() throws {
        let gw = try GatewayHarness()
        XCTAssertEqual(try GatewayBinary.run(["healthcheck", "--address", "127.0.0.1:\(gw.port)"]).status, 0)
        let absent = try GatewayBinary.run(["healthcheck", "--address", "127.0.0.1:\(try freePort())"])
        XCTAssertEqual(absent.status, 1)
        XCTAssertTrue(absent.stderr.contains("cannot connect"), absent.stderr)
        let notFound = try GatewayBinary.run(["healthcheck", "--address", "127.0.0.1:\(gw.port)", "--path", "/nothing-here"])
        XCTAssertEqual(notFound.status, 1)
        XCTAssertTrue(notFound.stderr.contains("answered 404"), notFound.stderr)
    }
}
