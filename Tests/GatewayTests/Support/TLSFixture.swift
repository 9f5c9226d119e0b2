import Foundation
import Glibc
import XCTest

/// Support/tls_fixture.py (python's `cryptography` and PyJWT): a CA of the test's own, an HTTPS
/// identity provider and an HTTPS upstream on loopback, and tokens signed as an IdP signs them.
enum TLSFixture {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("tls_fixture.py")
    static let python = URL(fileURLWithPath: "/usr/bin/python3")

    @discardableResult
    static func run(_ args: [String]) throws -> String {
        let r = try GatewayBinary.runProgram(python, [script.path] + args, timeout: 60)
        guard r.status == 0 else { throw HarnessError("tls_fixture.py \(args.first ?? "") failed: \(r.stderr)") }
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// ca.pem, server.pem/server.key (localhost and 127.0.0.1, signed by ca.pem), other-ca.pem.
    static func makePKI(in dir: TempDir) throws { try run(["pki", dir.url.path]) }

    /// A JWS of `claims` as an identity provider signs it (`alg` "RS256", "ES256"; "none" and
    /// "HS256" with the public key as secret for the attacks).
    static func sign(key: String, alg: String, kid: String, _ claims: [String: Any], typ: String? = nil) throws -> String {
        let json = String(decoding: try JSONSerialization.data(withJSONObject: claims), as: UTF8.self)
        return try run(["sign", key, alg, kid, json] + (typ.map { [$0] } ?? []))
    }

    /// An HTTPS server of the fixture, stopped (by its pid) when released.
    final class Server {
        let port: UInt16
        let stateDir: TempDir
        private let process: Process

        /// `mode` "idp" or "upstream"; `cert`/`key` the server's pair.
        init(mode: String, cert: String, key: String) throws {
            port = try freePort()
            stateDir = try TempDir()
            let spec = try stateDir.write("spec.json", """
                {"port": \(port), "cert": "\(cert)", "key": "\(key)", "mode": "\(mode)", "dir": "\(stateDir.url.path)"}
                """)
            process = Process()
            process.executableURL = TLSFixture.python
            process.arguments = [TLSFixture.script.path, "serve", spec]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            try waitForPort(port)
        }

        deinit { stop() }

        func stop() {
            guard process.isRunning else { return }
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }

        /// A counter file the server keeps ("fetches", "requests"); 0 before the first.
        func count(_ name: String) -> Int {
            Int((try? String(contentsOfFile: stateDir.path(name), encoding: .utf8)) ?? "") ?? 0
        }

        func setFile(_ name: String, _ text: String) throws { _ = try stateDir.write(name, text) }
        func removeFile(_ name: String) { unlink(stateDir.path(name)) }
    }
}
