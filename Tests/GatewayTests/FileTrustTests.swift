import Foundation
import Glibc
@testable import Gateway
import XCTest

/// Files another user could change (keys, configuration, secrets, TLS key) are refused: at start,
/// by check-config and on reload, with a line naming the file and the fix.
final class FileTrustTests: XCTestCase {
    func testAFileWritableByOthersOrInAFolderOthersCanWriteIsRefused() throws {
        let dir = try TempDir()
        chmod(dir.url.path, 0o755)
        let file = try dir.write("keys.json", "{}")
        chmod(file, 0o600)
        XCTAssertNil(FileTrust.problem(file))
        chmod(file, 0o644)
        XCTAssertNil(FileTrust.problem(file), "reading is not checked (container secrets are 0444)")
        chmod(file, 0o646)
        XCTAssertEqual(FileTrust.problem(file), "\(file) is writable by group or others (mode 0646); run chmod go-w on it")
        chmod(file, 0o620)
        let st = try FileManager.default.attributesOfItem(atPath: file)
        let gid = gid_t((st[.groupOwnerAccountID] as! NSNumber).uint32Value)
        XCTAssertEqual(FileTrust.problem(file) == nil, FileTrust.isPrivateGroup(gid, of: geteuid()),
                       "group write only for the owner's private group")

        chmod(file, 0o600)
        chmod(dir.url.path, 0o777)
        XCTAssertEqual(FileTrust.problem(file),
                       "\(file) is in \(dir.url.path), which is writable by group or others (mode 0777); run chmod go-w on it")
        chmod(dir.url.path, 0o1777)
        XCTAssertNil(FileTrust.problem(file), "a sticky folder (like /tmp) lets no one else replace the file")
        chmod(dir.url.path, 0o755)
        XCTAssertNil(FileTrust.problem(dir.path("missing")), "a missing file is the reader's to report")
    }

    func testAFileOwnedByAnotherUserIsRefusedButRootsIsTrusted() throws {
        let dir = try TempDir()
        let file = try dir.write("gateway.conf", "")
        chmod(file, 0o600)
        let me = geteuid()
        if me == 0 {
            XCTAssertNil(FileTrust.problem(file, euid: 1234), "root's files are trusted by any user")
            chown(file, 65534, 65534)
            XCTAssertEqual(FileTrust.problem(file, euid: 0), "\(file) is owned by uid 65534, not by the gateway's user (uid 0) or root")
        } else {
            XCTAssertEqual(FileTrust.problem(file, euid: me + 1),
                           "\(file) is owned by uid \(me), not by the gateway's user (uid \(me + 1)) or root")
        }
    }

    func testCheckConfigAndStartRefuseAConfigurationOthersCanWrite() throws {
        let dir = try TempDir()
        chmod(dir.url.path, 0o755)
        let conf = try dir.write("gateway.conf", "[server]\nlisten = \"127.0.0.1:\(try freePort())\"\n")
        chmod(conf, 0o666)
        let check = try GatewayBinary.run(["check-config", "--config", conf])
        XCTAssertNotEqual(check.status, 0)
        XCTAssertTrue(check.stderr.contains("refused: \(conf) is writable by group or others (mode 0666)"), check.stderr)
        let run = try GatewayBinary.run(["run", "--config", conf], timeout: 10)
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.stderr.contains("writable by group or others"), run.stderr)
    }

    func testASecretFileOthersCanWriteIsRefused() throws {
        let dir = try TempDir()
        chmod(dir.url.path, 0o755)
        let conf = try dir.write("gateway.conf", "")
        chmod(conf, 0o600)
        let secret = try dir.write("secret", String(repeating: "s", count: 40))
        chmod(secret, 0o602)
        let check = try GatewayBinary.run(["check-config", "--config", conf], environment: ["GATEWAY_API_AUTH_JWT_SECRET_FILE": secret])
        XCTAssertNotEqual(check.status, 0)
        XCTAssertTrue(check.stderr.contains("GATEWAY_API_AUTH_JWT_SECRET_FILE: refused: \(secret) is writable by group or others"), check.stderr)
    }

    func testAKeysFileMadeWritableByOthersIsRefusedOnReloadAndTheOldKeysStay() throws {
        let gw = try GatewayHarness()
        let keys = gw.dir.path("keys.json")
        chmod(keys, 0o666)
        gw.signal(SIGHUP)
        XCTAssertTrue(waitUntil { gw.log.contains("reload refused") }, gw.log)
        XCTAssertTrue(gw.log.contains("keys file refused: \(keys) is writable by group or others (mode 0666)"), gw.log)
        XCTAssertEqual(try gw.get("/api/v3/x", headers: gw.bearer).status, 200, "the running keys still verify")
        gw.stop()
        let restart = try GatewayBinary.run(["run", "--config", gw.configPath], timeout: 10)
        XCTAssertNotEqual(restart.status, 0, "a restart with the file as it is is refused")
        XCTAssertTrue(restart.stderr.contains("keys file refused: \(keys)"), restart.stderr)
    }
}
