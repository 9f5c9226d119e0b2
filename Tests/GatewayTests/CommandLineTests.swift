import Foundation
import TokenCore
import XCTest

/// The command-line verbs of the real binary: outputs, exit codes, and refusals.
final class CommandLineTests: XCTestCase {
    func testVersionNamesTheLibraries() throws {
        let r = try GatewayBinary.run(["version"])
        XCTAssertEqual(r.status, 0)
        XCTAssertTrue(r.stdout.hasPrefix("gateway "), r.stdout)
        XCTAssertTrue(r.stdout.contains("OpenSSL 3"), r.stdout)
        XCTAssertTrue(r.stdout.contains("nghttp2"), r.stdout)
    }

    func testUsageErrorsExitWith2AndPrintUsage() throws {
        for args in [["frobnicate"], ["token", "issue", "--sub"], ["token", "issue", "--bogus", "x"],
                     ["token", "verify", "--keys", "/nonexistent"], ["keys", "generate", "--alg", "RS256"],
                     ["token", "issue", "--keys", "k", "--sub", "a", "--use", "sideways"]] {
            let r = try GatewayBinary.run(args)
            XCTAssertEqual(r.status, 2, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("usage: gateway"), "\(args)")
            XCTAssertTrue(r.stdout.isEmpty, "\(args)")
        }
    }

    func testRunWithAMissingConfigFileExitsWith1AndSaysWhy() throws {
        let r = try GatewayBinary.run(["run", "--config", "/nonexistent/gateway.conf"], timeout: 20)
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("/nonexistent/gateway.conf"), r.stderr)
    }

    func testKeysGenerateIssueAndVerifyRoundTrip() throws {
        let dir = try TempDir()
        let gen = try GatewayBinary.run(["keys", "generate"])
        XCTAssertEqual(gen.status, 0)
        let keys = try dir.write("keys.json", gen.stdout)
        let ring = try KeyRing.fromJWKSet(gen.stdout)
        XCTAssertEqual(ring.keys.count, 1)
        XCTAssertEqual(ring.activeKey?.secret?.count, 32)

        let issued = try GatewayBinary.run(["token", "issue", "--keys", keys, "--sub", "alice", "--use", "refresh"])
        XCTAssertEqual(issued.status, 0, issued.stderr)
        let token = issued.stdout.trimmingCharacters(in: .whitespacesAndNewlines)

        let ok = try GatewayBinary.run(["token", "verify", "--keys", keys, "--use", "refresh", token])
        XCTAssertEqual(ok.status, 0, ok.stderr)
        let claims = try JSONValue.parse(ok.stdout)
        XCTAssertEqual(claims["sub"], .string("alice"))
        XCTAssertEqual(claims["usefor"], .string("refresh"))
        XCTAssertEqual(claims["iss"], .string("datarhei-core"))
        XCTAssertEqual(claims["exi"], .number("86400"))

        let wrongUse = try GatewayBinary.run(["token", "verify", "--keys", keys, token])
        XCTAssertEqual(wrongUse.status, 1)
        XCTAssertTrue(wrongUse.stderr.contains("wrong_use"), wrongUse.stderr)
        XCTAssertTrue(wrongUse.stdout.isEmpty)

        let wrongIssuer = try GatewayBinary.run(["token", "verify", "--keys", keys, "--use", "refresh", "--iss", "other", token])
        XCTAssertEqual(wrongIssuer.status, 1)
        XCTAssertTrue(wrongIssuer.stderr.contains("wrong_issuer"), wrongIssuer.stderr)
    }

    func testAKeysFileOthersCouldChangeIsRefusedByTheCommandsToo() throws {
        let dir = try TempDir()
        let keys = try dir.write("keys.json", try GatewayBinary.run(["keys", "generate"]).stdout)
        chmod(keys, 0o666)
        for args in [["token", "issue", "--keys", keys, "--sub", "mallory"], ["keys", "list", "--keys", keys],
                     ["keys", "rotate", "--keys", keys]] {
            let r = try GatewayBinary.run(args)
            XCTAssertEqual(r.status, 1, args.joined(separator: " "))
            XCTAssertTrue(r.stderr.contains("refused"), r.stderr)
            XCTAssertTrue(r.stdout.isEmpty, "no token signed with a key others could have planted")
        }
        chmod(keys, 0o600)
        XCTAssertEqual(try GatewayBinary.run(["token", "issue", "--keys", keys, "--sub", "alice"]).status, 0)
    }

    func testVerifyOfATokenFromAnotherKeyFailsWithUnknownKid() throws {
        let dir = try TempDir()
        let a = try dir.write("a.json", try GatewayBinary.run(["keys", "generate"]).stdout)
        let b = try dir.write("b.json", try GatewayBinary.run(["keys", "generate"]).stdout)
        let token = try GatewayBinary.run(["token", "issue", "--keys", a, "--sub", "x"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let r = try GatewayBinary.run(["token", "verify", "--keys", b, token])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("unknown_kid"), r.stderr)
    }

    func testBrokenKeysFileIsAClearErrorNotACrash() throws {
        let dir = try TempDir()
        let bad = try dir.write("bad.json", #"{"keys":[{"kty":"oct","kid":"a","k":"c2hvcnQ"}]}"#)
        let r = try GatewayBinary.run(["token", "issue", "--keys", bad, "--sub", "x"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("at least 32"), r.stderr)
    }

    func testHashPasswordReadsStdinAndPrintsAVerifiablePHCString() throws {
        let r = try GatewayBinary.run(["hash-password"], stdin: "s3cret pass\n")
        XCTAssertEqual(r.status, 0, r.stderr)
        let phc = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertTrue(phc.hasPrefix("$scrypt$ln=15,r=8,p=1$"), phc)
        XCTAssertTrue(try PasswordHasher.verify(Array("s3cret pass".utf8), against: phc))
        XCTAssertFalse(r.stdout.contains("s3cret"))
        XCTAssertFalse(r.stderr.contains("s3cret"))
    }

    func testHashPasswordRefusesAnEmptyPassword() throws {
        let r = try GatewayBinary.run(["hash-password"], stdin: "\n")
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stdout.isEmpty)
    }

    func testHashPasswordRefusesThePasswordAsAnArgument() throws {
        let r = try GatewayBinary.run(["hash-password", "secret"])
        XCTAssertEqual(r.status, 2)
    }
}
